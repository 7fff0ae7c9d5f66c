// Metrics to plots.
#include "report/report_plots.h"

#include <algorithm>
#include <cmath>
#include <set>

namespace qtune {
namespace {

// Colors that stay apart for the color-blind (Okabe and Ito's palette).
const std::vector<std::string> kPalette = {"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"};
const std::vector<std::string> kDashes = {"", "6 3", "2 2", "8 3 2 3"};
constexpr std::size_t kMaxPointsPerSeries = 1500;  // keeps a long run's report small (spikes survive thinning)

struct Key {
  std::string name;   // metrics.jsonl key
  std::string label;  // legend text
};

struct PlotSpec {
  std::string id, title, unit;
  std::vector<Key> keys;
  double scale = 1;  // plotted value = logged value × scale
};

constexpr double kBytesToGiB = 1.0 / (1024.0 * 1024.0 * 1024.0);

// The fixed plots; a key's "eval_" twin goes on the same plot as markers.
std::vector<PlotSpec> fixed_plots() {
  return {
      {"loss", "Loss", "", {{"loss", "train"}, {"eval_loss", "eval"}}},
      {"lr", "Learning rate", "", {{"lr", "learning rate"}}},
      {"grad_norm", "Gradient norm (before clipping)", "", {{"grad_norm", "gradient norm"}}},
      {"tokens_per_s", "Throughput", "tokens/s", {{"tokens_per_s", "tokens/s since start"}}},
      {"step_time_s", "Step time", "s", {{"step_time_s", "optimizer step"}}},
      {"memory", "Memory", "GiB",
       {{"host_memory_bytes", "host RSS"}, {"device_peak_allocated_bytes", "GPU allocated (peak)"}, {"device_peak_reserved_bytes", "GPU reserved (peak)"}},
       kBytesToGiB},
      {"rewards", "Rewards", "", {{"rewards/chosen", "chosen"}, {"rewards/rejected", "rejected"}, {"eval_rewards/chosen", "eval chosen"},
                                  {"eval_rewards/rejected", "eval rejected"}}},
      {"margins", "Reward margin (chosen − rejected)", "", {{"rewards/margins", "train"}, {"eval_rewards/margins", "eval"}}},
      {"accuracies", "Reward accuracy (chosen above rejected)", "", {{"rewards/accuracies", "train"}, {"eval_rewards/accuracies", "eval"}}},
  };
}

// Keys that are the x axis, counters or clocks rather than curves worth a plot.
const std::set<std::string> kNotPlotted = {"step", "epoch", "wall_time", "elapsed_s", "tokens", "trained_tokens"};

bool is_eval(const std::string& key) { return key.rfind("eval_", 0) == 0; }

// (step, value × scale) of `key` in a run's lines; a line without the key adds nothing (evaluations are sparse).
std::vector<std::pair<double, double>> points_of(const RunFiles& run, const std::string& key, double scale) {
  std::vector<std::pair<double, double>> points = logged_values(run, key);
  for (auto& point : points) point.second *= scale;
  // The final evaluation is in the run record, at the last step.
  if (is_eval(key) && run.record.is_object() && run.record.contains("final")) {
    const nlohmann::json& final = run.record["final"];
    const auto eval = final.find("eval");
    const auto steps = final.find("steps");
    if (eval != final.end() && eval->contains(key) && (*eval)[key].is_number() && steps != final.end() && steps->is_number()) {
      const double step = steps->get<double>();
      if (points.empty() || points.back().first < step) points.emplace_back(step, (*eval)[key].get<double>() * scale);
    }
  }
  return thin_points(points, kMaxPointsPerSeries);
}

// Every plotted key of the runs that no fixed plot takes, in first-seen order, with its eval twin.
std::vector<PlotSpec> other_plots(const std::vector<RunFiles>& runs, const std::vector<PlotSpec>& fixed) {
  std::set<std::string> taken(kNotPlotted);
  for (const auto& spec : fixed)
    for (const auto& key : spec.keys) taken.insert(key.name);
  std::vector<PlotSpec> others;
  for (const auto& run : runs)
    for (const auto& line : run.metrics)
      for (const auto& [key, value] : line.items()) {
        if (!value.is_number() || taken.count(key)) continue;
        const std::string base = is_eval(key) ? key.substr(5) : key;
        taken.insert(base);
        taken.insert("eval_" + base);
        others.push_back({base, base, "", {{base, base}, {"eval_" + base, "eval_" + base}}});
      }
  return others;
}

// A plot's series: one per (run, key) that has points. One run: a color per key. Several: a color per
// run, each key its own dash pattern.
Plot make_plot(const PlotSpec& spec, const std::vector<RunFiles>& runs) {
  Plot plot{spec.id, spec.title, spec.unit, {}};
  for (std::size_t r = 0; r < runs.size(); ++r)
    for (std::size_t k = 0; k < spec.keys.size(); ++k) {
      PlotSeries series;
      series.points = points_of(runs[r], spec.keys[k].name, spec.scale);
      if (series.points.empty()) continue;
      series.markers = is_eval(spec.keys[k].name);
      if (runs.size() == 1) {
        series.label = spec.keys[k].label;
        series.color = kPalette[plot.series.size() % kPalette.size()];
      } else {
        series.label = runs[r].name + " " + spec.keys[k].label;
        series.color = kPalette[r % kPalette.size()];
        series.dash = kDashes[k % kDashes.size()];
      }
      plot.series.push_back(std::move(series));
    }
  return plot;
}

}  // namespace

std::vector<Plot> report_plots(const std::vector<RunFiles>& runs) {
  std::vector<PlotSpec> specs = fixed_plots();
  const std::vector<PlotSpec> others = other_plots(runs, specs);
  specs.insert(specs.end(), others.begin(), others.end());
  std::vector<Plot> plots;
  for (const auto& spec : specs) {
    Plot plot = make_plot(spec, runs);
    const bool has_value = std::any_of(plot.series.begin(), plot.series.end(), [](const PlotSeries& s) {
      return std::any_of(s.points.begin(), s.points.end(), [](const auto& p) { return std::isfinite(p.second); });
    });
    if (has_value) plots.push_back(std::move(plot));
  }
  return plots;
}

}  // namespace qtune
