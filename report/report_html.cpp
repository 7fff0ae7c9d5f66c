// The HTML page of `qtune report`.
#include "report/report_html.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "report/report_plots.h"
#include "report/report_tables.h"
#include "report/svg_plot.h"

namespace qtune {
namespace {

constexpr const char* kStyle = R"(
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px auto; max-width: 1240px; padding: 0 16px; color: #222; }
h1 { font-size: 1.5em; margin-bottom: 4px; } h2 { font-size: 1.15em; margin-top: 28px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
.sub { color: #666; margin-top: 0; }
.plots { display: grid; grid-template-columns: repeat(auto-fill, minmax(380px, 1fr)); gap: 14px; }
figure { margin: 0; border: 1px solid #e3e3e3; border-radius: 6px; padding: 8px; background: #fff; }
figcaption { font-weight: 600; font-size: 0.95em; margin-bottom: 4px; }
svg.plot { width: 100%; height: auto; display: block; }
svg.plot .grid { stroke: #eee; } svg.plot .frame { fill: none; stroke: #bbb; }
svg.plot text { font-size: 11px; fill: #555; } svg.plot .legend { fill: #222; }
table { border-collapse: collapse; font-size: 0.93em; } th, td { border: 1px solid #ddd; padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #f6f6f6; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f7f7f7; border: 1px solid #e3e3e3; padding: 10px; overflow-x: auto; font-size: 0.85em; }
)";

std::string plots_section(const std::vector<RunFiles>& runs) {
  std::string out = R"(<section id="plots"><h2>Curves</h2><div class="plots">)";
  for (const Plot& plot : report_plots(runs))
    out += fmt::format(R"(<figure><figcaption>{}</figcaption>{}</figure>)", escape_html(plot.title), svg_plot(plot));
  return out + "</div></section>";
}

// One <pre> per run under a heading naming it (the run's own text when there is one run).
std::string text_section(const std::string& id, const std::string& title, const std::vector<RunFiles>& runs,
                         std::string (*text_of)(const RunFiles&)) {
  std::string out = fmt::format(R"(<section id="{}"><h2>{}</h2>)", id, title);
  for (const auto& run : runs) {
    if (runs.size() > 1) out += fmt::format("<h3>{}</h3>", escape_html(run.name));
    out += fmt::format("<pre>{}</pre>", escape_html(text_of(run)));
  }
  return out + "</section>";
}

std::string memory_plan_text(const RunFiles& run) {
  const nlohmann::json::json_pointer text("/memory_plan/text");
  if (run.record.is_object() && run.record.contains(text) && run.record.at(text).is_string()) return run.record.at(text).get<std::string>();
  return std::string("(no memory plan: this folder has no ") + kRunRecordFile + ")";
}

std::string config_text(const RunFiles& run) { return run.config_yaml.empty() ? "(no config recorded)" : run.config_yaml; }

std::string title_of(const std::vector<RunFiles>& runs) {
  if (runs.size() > 1) return fmt::format("qtune report: {} runs", runs.size());
  return "qtune report: " + runs.front().name;
}

}  // namespace

std::string report_html(const std::vector<RunFiles>& runs) {
  std::string out = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">";
  out += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">";
  out += fmt::format("<title>{}</title><style>{}</style></head><body>", escape_html(title_of(runs)), kStyle);
  out += fmt::format("<h1>{}</h1><p class=\"sub\">", escape_html(title_of(runs)));
  for (std::size_t i = 0; i < runs.size(); ++i) out += (i ? " · " : "") + escape_html(runs[i].dir);
  out += "</p>";
  out += summary_table(runs);
  out += plots_section(runs);
  out += data_table(runs);
  out += text_section("memory-plan", "Memory plan (estimated before loading; the curves above are the measurement)", runs, memory_plan_text);
  out += text_section("config", "Config as run", runs, config_text);
  return out + "</body></html>\n";
}

void write_report(const std::vector<std::string>& run_dirs, const std::string& path) {
  std::vector<RunFiles> runs;
  for (const auto& dir : run_dirs) runs.push_back(read_run_files(dir));
  name_runs(runs);
  std::string page;
  try {
    page = report_html(runs);
  } catch (const nlohmann::json::exception& e) {  // a value of another type than qtune writes, in a file edited by hand
    input_error("{}: unexpected content in {} or {} ({}); rerun qtune train", fmt::join(run_dirs, ", "), kMetricsFile, kRunRecordFile, e.what());
  }
  AtomicFile::write_all(path, page);
}

}  // namespace qtune
