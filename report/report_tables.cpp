// The report's tables.
#include "report/report_tables.h"

#include <algorithm>
#include <cmath>
#include <optional>

#include <fmt/format.h>

#include "report/svg_plot.h"

namespace qtune {
namespace {

using nlohmann::json;

struct Row {
  std::string label;
  std::vector<std::string> cells;  // one per run, already HTML
  bool numeric = true;
};

std::string table(const std::string& id, const std::string& title, const std::vector<RunFiles>& runs, const std::vector<Row>& rows) {
  std::string out = fmt::format(R"(<section id="{}"><h2>{}</h2><table><tr><th></th>)", id, title);
  for (const auto& run : runs) out += fmt::format("<th>{}</th>", escape_html(run.name));
  out += "</tr>";
  for (const auto& row : rows) {
    if (std::all_of(row.cells.begin(), row.cells.end(), [](const std::string& c) { return c.empty(); })) continue;  // nobody has it
    out += fmt::format("<tr><th>{}</th>", escape_html(row.label));
    for (const auto& cell : row.cells) out += fmt::format("<td{}>{}</td>", row.numeric ? R"( class="num")" : "", cell.empty() ? "—" : cell);
    out += "</tr>";
  }
  return out + "</table></section>";
}

std::optional<double> number_at(const json& object, const json::json_pointer& pointer) {
  if (!object.is_object() || !object.contains(pointer)) return std::nullopt;
  const json& value = object.at(pointer);
  return value.is_number() ? std::optional<double>(value.get<double>()) : std::nullopt;
}

std::string text_at(const json& object, const json::json_pointer& pointer) {
  if (!object.is_object() || !object.contains(pointer) || !object.at(pointer).is_string()) return "";
  return escape_html(object.at(pointer).get<std::string>());
}

// (step, value) of the last finite logged value of `key`.
std::optional<std::pair<double, double>> last_logged(const RunFiles& run, const std::string& key) {
  const auto values = logged_values(run, key);
  for (auto v = values.rbegin(); v != values.rend(); ++v)
    if (std::isfinite(v->second)) return *v;
  return std::nullopt;
}

// (step, value) of the largest finite logged value of `key`, or the smallest when `lowest`.
std::optional<std::pair<double, double>> extreme_logged(const RunFiles& run, const std::string& key, bool lowest) {
  std::optional<std::pair<double, double>> best;
  for (const auto& v : logged_values(run, key))
    if (std::isfinite(v.second) && (!best || (lowest ? v.second < best->second : v.second > best->second))) best = v;
  return best;
}

std::string fixed(std::optional<double> value, int digits) { return value ? fmt::format("{:.{}f}", *value, digits) : ""; }
std::string gib(std::optional<double> bytes) { return bytes ? fmt::format("{:.2f} GiB", *bytes / (1024.0 * 1024.0 * 1024.0)) : ""; }
std::string count(std::optional<double> value) { return value ? fmt::format("{}", static_cast<int64_t>(*value)) : ""; }

std::string duration(std::optional<double> seconds) {
  if (!seconds) return "";
  const auto s = static_cast<int64_t>(std::llround(*seconds));
  return s >= 3600 ? fmt::format("{}h {:02}m {:02}s", s / 3600, s / 60 % 60, s % 60) : fmt::format("{}m {:02}s", s / 60, s % 60);
}

// /final/eval/<key> with the key's '/' escaped as a JSON pointer needs it.
std::string pointer_key(std::string key) {
  for (std::size_t at = key.find('/'); at != std::string::npos; at = key.find('/', at + 2)) key.replace(at, 1, "~1");
  return key;
}

// A final evaluation metric: the record's final evaluation, else the last logged one.
std::optional<double> final_eval(const RunFiles& run, const std::string& key) {
  if (auto value = number_at(run.record, json::json_pointer("/final/eval/" + pointer_key(key)))) return value;
  if (auto logged = last_logged(run, key)) return logged->second;
  return std::nullopt;
}

std::string with_step(std::optional<std::pair<double, double>> point, int digits) {
  return point ? fmt::format("{:.{}f} (step {})", point->second, digits, static_cast<int64_t>(point->first)) : "";
}

template <typename F>
Row row_of(const std::string& label, const std::vector<RunFiles>& runs, F cell, bool numeric = true) {
  Row row{label, {}, numeric};
  for (const auto& run : runs) row.cells.push_back(cell(run));
  return row;
}

std::string steps_cell(const RunFiles& run) {
  std::optional<double> done = number_at(run.record, json::json_pointer("/final/steps"));
  if (!done && !run.metrics.empty()) done = run.metrics.back()["step"].get<double>();
  const std::optional<double> total = number_at(run.record, json::json_pointer("/total_steps"));
  if (!done) return "";
  return total ? fmt::format("{} of {}", static_cast<int64_t>(*done), static_cast<int64_t>(*total)) : count(done);
}

std::string device_cell(const RunFiles& run) {
  const std::string device = text_at(run.record, json::json_pointer("/device"));
  const std::optional<double> ranks = number_at(run.record, json::json_pointer("/world_size"));
  return device.empty() || !ranks || *ranks <= 1 ? device : fmt::format("{} × {} ranks", device, static_cast<int64_t>(*ranks));
}

}  // namespace

std::string summary_table(const std::vector<RunFiles>& runs) {
  const auto eval = [](const std::string& key) { return [key](const RunFiles& run) { return fixed(final_eval(run, key), 4); }; };
  const auto last = [](const std::string& key, int digits) {
    return [key, digits](const RunFiles& run) {
      const auto value = last_logged(run, key);
      return value ? fixed(value->second, digits) : "";
    };
  };
  const auto peak = [](const std::string& key) {
    return [key](const RunFiles& run) {
      const auto value = extreme_logged(run, key, false);
      return value ? gib(value->second) : "";
    };
  };
  std::vector<Row> rows = {
      row_of("status", runs, [](const RunFiles& r) { return text_at(r.record, json::json_pointer("/status")); }, false),
      row_of("recipe", runs, [](const RunFiles& r) { return text_at(r.record, json::json_pointer("/recipe")); }, false),
      row_of("base model", runs, [](const RunFiles& r) { return text_at(r.record, json::json_pointer("/base_model")); }, false),
      row_of("device", runs, device_cell, false),
      row_of("adapter", runs, [](const RunFiles& r) { return text_at(r.record, json::json_pointer("/adapter")); }, false),
      row_of("steps", runs, steps_cell),
      row_of("final train loss", runs, last("loss", 4)),
      row_of("final eval loss", runs, eval("eval_loss")),
      row_of("best eval loss", runs, [](const RunFiles& r) { return with_step(extreme_logged(r, "eval_loss", true), 4); }),
      row_of("final eval reward accuracy", runs, eval("eval_rewards/accuracies")),
      row_of("final eval reward margin", runs, eval("eval_rewards/margins")),
      row_of("runtime", runs, [](const RunFiles& r) {
        const auto s = number_at(r.record, json::json_pointer("/final/runtime_s"));
        const auto logged = last_logged(r, "elapsed_s");
        return duration(s ? s : logged ? std::optional<double>(logged->second) : std::nullopt);
      }),
      row_of("tokens/s", runs, last("tokens_per_s", 0)),
      row_of("peak host memory (RSS)", runs, peak("host_memory_bytes")),
      row_of("peak GPU memory allocated", runs, peak("device_peak_allocated_bytes")),
      row_of("peak GPU memory reserved", runs, peak("device_peak_reserved_bytes")),
  };
  return table("summary", "Final numbers", runs, rows);
}

std::string data_table(const std::vector<RunFiles>& runs) {
  const auto field = [](const std::string& key) {
    return [key](const RunFiles& run) { return count(number_at(run.record, json::json_pointer("/data/" + key))); };
  };
  const auto datasets = [](const RunFiles& run) {
    std::string out;
    if (!run.record.is_object() || !run.record.contains("data")) return out;
    for (const auto& d : run.record["data"].value("datasets", json::array()))
      out += fmt::format("{}{}: {} samples, {} tokens, {} trained, {} skipped", out.empty() ? "" : "<br>", escape_html(d.value("path", "")),
                         d.value("samples", 0), d.value("tokens", 0), d.value("trained_tokens", 0), d.value("skipped", 0));
    return out;
  };
  std::vector<Row> rows = {
      row_of("template", runs, [](const RunFiles& r) { return text_at(r.record, json::json_pointer("/data/template")); }, false),
      row_of("datasets", runs, datasets, false),
      row_of("training samples", runs, field("train_samples")),
      row_of("validation samples", runs, field("validation_samples")),
      row_of("rows per epoch", runs, field("rows")),
      row_of("tokens per epoch", runs, field("tokens")),
      row_of("trained tokens per epoch", runs, field("trained_tokens")),
      row_of("padding tokens per epoch", runs, field("padding_tokens")),
      row_of("packing efficiency (real tokens)", runs, [](const RunFiles& r) {
        const auto fill = number_at(r.record, json::json_pointer("/data/packing_efficiency"));
        return fill ? fmt::format("{:.1f}%", 100 * *fill) : "";
      }),
      row_of("truncated to sequence_len", runs, field("truncated")),
      row_of("dropped: longer than sequence_len", runs, field("dropped_overlong")),
      row_of("dropped: nothing to train", runs, field("dropped_untrained")),
      row_of("dropped: identical pair", runs, [&](const RunFiles& r) {  // preference data only
        const bool pairs = r.record.is_object() && r.record.contains(json::json_pointer("/data/pairs")) && r.record.at(json::json_pointer("/data/pairs")) == true;
        return pairs ? field("dropped_identical")(r) : std::string();
      }),
  };
  return table("data", "Data", runs, rows);
}

}  // namespace qtune
