// Line charts as inline SVG for the run report: axes with round ticks, one polyline per series (broken at
// missing values), markers for sparse series such as evaluations, and a legend. No scripts: hovering a
// marker shows its value through SVG's own <title>.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace qtune {

struct PlotSeries {
  std::string label;  // legend text, e.g. "train", "eval", "run-a eval"
  std::string color;  // CSS color
  std::vector<std::pair<double, double>> points;  // (step, value); a NaN value breaks the line there
  std::string dash;  // SVG stroke-dasharray ("6 3"); empty: a solid line
  bool markers = false;  // draw each point (for a few points, e.g. evaluations)
};

struct Plot {
  std::string id;     // data-metric attribute, stable for tests and links
  std::string title;  // heading above the chart
  std::string unit;   // appended to the y axis title ("GiB", "tokens/s"); may be empty
  std::vector<PlotSeries> series;
};

// The chart as an <svg class="plot"> element (fixed viewBox, scales with the page).
std::string svg_plot(const Plot& plot);

// At most `limit` points of a long series, chosen so that each stretch of the curve keeps its lowest and
// highest value (spikes stay visible); the first and last points are always kept.
std::vector<std::pair<double, double>> thin_points(const std::vector<std::pair<double, double>>& points, std::size_t limit);

// Round tick positions covering [low, high]: about `count` of them at 1, 2 or 5 × 10^k spacing.
std::vector<double> nice_ticks(double low, double high, int count);

// A short label for an axis tick or tooltip: 0.25, 3.1e-05, 12.5k, 1.2M.
std::string short_number(double value);

// Text made safe inside HTML/SVG elements and attribute values.
std::string escape_html(const std::string& text);

}  // namespace qtune
