// Line charts as SVG text.
#include "report/svg_plot.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

namespace qtune {
namespace {

// The chart in viewBox units: the plotting area sits inside the margins (ticks left, step axis below, the
// legend's rows on top, so a long legend makes the chart taller, not its plotting area smaller).
constexpr double kWidth = 480, kLeft = 58, kRight = 14, kBottom = 34, kAreaHeight = 226, kLegendRow = 14;

struct Range {
  double low = 0, high = 1;
};

// The smallest and largest finite coordinate (x or y) over all series.
Range data_range(const Plot& plot, bool y) {
  double low = std::numeric_limits<double>::infinity(), high = -low;
  for (const auto& s : plot.series)
    for (const auto& [px, py] : s.points) {
      const double v = y ? py : px;
      if (!std::isfinite(v)) continue;
      low = std::min(low, v);
      high = std::max(high, v);
    }
  if (!std::isfinite(low)) return {0, 1};
  if (low == high) {  // one value: a band around it
    const double pad = low == 0 ? 1 : std::abs(low) * 0.1;
    return {low - pad, high + pad};
  }
  return {low, high};
}

struct Frame {
  Range x, y;
  double top = 0;  // of the plotting area
  double bottom() const { return top + kAreaHeight; }
  double height() const { return bottom() + kBottom; }  // of the whole chart
  double px(double v) const { return kLeft + (v - x.low) / (x.high - x.low) * (kWidth - kLeft - kRight); }
  double py(double v) const { return bottom() - (v - y.low) / (y.high - y.low) * kAreaHeight; }
};

// Where each legend entry goes: left to right, wrapping to a new row at the right edge.
struct LegendSpot {
  double x = 0;
  int row = 0;
};
std::vector<LegendSpot> legend_layout(const Plot& plot) {
  std::vector<LegendSpot> spots;
  LegendSpot next{kLeft, 0};
  for (const auto& s : plot.series) {
    const double width = 30 + 6.2 * static_cast<double>(s.label.size());
    if (next.x + width > kWidth - kRight && next.x > kLeft) next = {kLeft, next.row + 1};
    spots.push_back(next);
    next.x += width;
  }
  return spots;
}

std::string dash_attribute(const PlotSeries& s) { return s.dash.empty() ? "" : fmt::format(R"( stroke-dasharray="{}")", s.dash); }

std::string axes(const Frame& f, const std::vector<double>& xticks, const std::vector<double>& yticks, const std::string& unit) {
  std::string out;
  for (double t : yticks) {
    out += fmt::format(R"(<line class="grid" x1="{:.1f}" x2="{:.1f}" y1="{:.1f}" y2="{:.1f}"/>)", kLeft, kWidth - kRight, f.py(t), f.py(t));
    out += fmt::format(R"(<text class="tick" x="{:.1f}" y="{:.1f}" text-anchor="end">{}</text>)", kLeft - 5, f.py(t) + 3.5, short_number(t));
  }
  for (double t : xticks)
    out += fmt::format(R"(<text class="tick" x="{:.1f}" y="{:.1f}" text-anchor="middle">{}</text>)", f.px(t), f.bottom() + 14, short_number(t));
  out += fmt::format(R"(<rect class="frame" x="{}" y="{}" width="{}" height="{}"/>)", kLeft, f.top, kWidth - kLeft - kRight, kAreaHeight);
  out += fmt::format(R"(<text class="axis" x="{:.1f}" y="{:.1f}" text-anchor="middle">step</text>)", (kLeft + kWidth - kRight) / 2, f.height() - 6);
  if (!unit.empty())
    out += fmt::format(R"svg(<text class="axis" x="12" y="{:.1f}" text-anchor="middle" transform="rotate(-90 12 {:.1f})">{}</text>)svg",
                       f.top + kAreaHeight / 2, f.top + kAreaHeight / 2, escape_html(unit));
  return out;
}

// One series: polylines between missing values, markers with their values as tooltips.
std::string series_svg(const Frame& f, const PlotSeries& s) {
  std::string out = fmt::format(R"(<g class="series" data-label="{}" data-points="{}">)", escape_html(s.label), s.points.size());
  std::string line;
  auto flush = [&] {
    if (line.empty()) return;
    out += fmt::format(R"(<polyline points="{}" stroke="{}" fill="none" stroke-width="1.6"{}/>)", line, s.color, dash_attribute(s));
    line.clear();
  };
  for (const auto& [x, y] : s.points) {
    if (!std::isfinite(x) || !std::isfinite(y)) {
      flush();
      continue;
    }
    line += fmt::format("{}{:.1f},{:.1f}", line.empty() ? "" : " ", f.px(x), f.py(y));
  }
  flush();
  if (s.markers)
    for (const auto& [x, y] : s.points)
      if (std::isfinite(x) && std::isfinite(y))
        out += fmt::format(R"(<circle cx="{:.1f}" cy="{:.1f}" r="3" fill="{}"><title>{} step {}: {}</title></circle>)", f.px(x), f.py(y), s.color,
                           escape_html(s.label), short_number(x), fmt::format("{:.6g}", y));
  return out + "</g>";
}

std::string legend(const Plot& plot, const std::vector<LegendSpot>& spots) {
  std::string out;
  for (std::size_t i = 0; i < plot.series.size(); ++i) {
    const PlotSeries& s = plot.series[i];
    const double x = spots[i].x, y = 14 + kLegendRow * spots[i].row;
    out += fmt::format(R"(<line x1="{:.1f}" x2="{:.1f}" y1="{:.1f}" y2="{:.1f}" stroke="{}" stroke-width="2.5"{}/>)", x, x + 16, y, y, s.color,
                       dash_attribute(s));
    out += fmt::format(R"(<text class="legend" x="{:.1f}" y="{:.1f}">{}</text>)", x + 20, y + 4, escape_html(s.label));
  }
  return out;
}

}  // namespace

std::vector<double> nice_ticks(double low, double high, int count) {
  if (!(high > low) || count < 1) return {low};
  const double raw = (high - low) / count;
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  double step = magnitude;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * magnitude >= raw) {
      step = m * magnitude;
      break;
    }
  std::vector<double> ticks;  // multiples of step from the one at or below low to the one at or above high
  const auto first = static_cast<int64_t>(std::floor(low / step + 1e-9)), last = static_cast<int64_t>(std::ceil(high / step - 1e-9));
  for (int64_t i = first; i <= last; ++i) ticks.push_back(static_cast<double>(i) * step);
  return ticks;
}

std::string short_number(double value) {
  const double a = std::abs(value);
  if (a >= 1e9) return fmt::format("{:.3g}G", value / 1e9);
  if (a >= 1e6) return fmt::format("{:.3g}M", value / 1e6);
  if (a >= 1e4) return fmt::format("{:.3g}k", value / 1e3);
  if (a != 0 && a < 1e-3) return fmt::format("{:.3g}", value);
  return fmt::format("{:.4g}", value);
}

std::string escape_html(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::vector<std::pair<double, double>> thin_points(const std::vector<std::pair<double, double>>& points, std::size_t limit) {
  if (points.size() <= limit || limit < 4) return points;
  const std::size_t buckets = (limit - 2) / 2, inner = points.size() - 2;
  std::vector<std::pair<double, double>> kept{points.front()};
  for (std::size_t b = 0; b < buckets; ++b) {
    const std::size_t begin = 1 + b * inner / buckets, end = 1 + (b + 1) * inner / buckets;
    std::size_t low = begin, high = begin;
    for (std::size_t i = begin; i < end; ++i) {
      if (points[i].second < points[low].second) low = i;
      if (points[i].second > points[high].second) high = i;
    }
    if (begin == end) continue;
    kept.push_back(points[std::min(low, high)]);
    if (low != high) kept.push_back(points[std::max(low, high)]);
  }
  kept.push_back(points.back());
  return kept;
}

std::string svg_plot(const Plot& plot) {
  const Range xdata = data_range(plot, false), ydata = data_range(plot, true);
  const std::vector<double> xticks = nice_ticks(xdata.low, xdata.high, 6), yticks = nice_ticks(ydata.low, ydata.high, 5);
  // x spans the data exactly (ticks outside it are left out); y spans the round ticks around the data.
  const std::vector<LegendSpot> spots = legend_layout(plot);
  const int legend_rows = spots.empty() ? 1 : spots.back().row + 1;
  const Frame frame{{xdata.low, xdata.high}, {yticks.front(), yticks.back()}, 16.0 + kLegendRow * legend_rows};
  std::vector<double> visible_x;
  for (double t : xticks)
    if (t >= xdata.low - 1e-9 && t <= xdata.high + 1e-9) visible_x.push_back(t);
  std::string out = fmt::format(R"(<svg class="plot" data-metric="{}" viewBox="0 0 {} {}" role="img" aria-label="{}">)", escape_html(plot.id), kWidth,
                                frame.height(), escape_html(plot.title));
  out += axes(frame, visible_x, yticks, plot.unit);
  for (const auto& s : plot.series) out += series_svg(frame, s);
  out += legend(plot, spots);
  return out + "</svg>";
}

}  // namespace qtune
