// `qtune report`: SVG chart geometry, reading output folders (and refusing bad ones with one line), which
// plots a run gets, the page being self-contained and escaped, and the files `qtune train` leaves for it.
// How the page renders in a browser is tests/report/test_report_chromium.py.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <regex>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "report/report_html.h"
#include "report/report_plots.h"
#include "report/run_files.h"
#include "report/svg_plot.h"
#include "tests/support/files.h"

namespace qtune {
namespace {

namespace fs = std::filesystem;
using test::read_file;
using test::run_qtune;
using test::temp_dir;
using test::write_file;

// (x, y) of every point of every polyline in `svg`.
std::vector<std::pair<double, double>> polyline_points(const std::string& svg) {
  std::vector<std::pair<double, double>> points;
  const std::regex polyline(R"re(<polyline points="([^"]*)")re"), point(R"re(([-0-9.]+),([-0-9.]+))re");
  for (auto p = std::sregex_iterator(svg.begin(), svg.end(), polyline); p != std::sregex_iterator(); ++p) {
    const std::string list = (*p)[1];
    for (auto q = std::sregex_iterator(list.begin(), list.end(), point); q != std::sregex_iterator(); ++q)
      points.emplace_back(std::stod((*q)[1]), std::stod((*q)[2]));
  }
  return points;
}

std::size_t count_of(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(SvgPlot, NiceTicksAreRoundAndCoverTheRange) {
  for (auto [low, high] : std::vector<std::pair<double, double>>{{0.0123, 0.3306}, {1, 340}, {-2.5, 7.25}, {31000, 50447}, {1.1e-7, 4.99e-3}}) {
    const std::vector<double> ticks = nice_ticks(low, high, 5);
    ASSERT_GE(ticks.size(), 3u) << low << " " << high;
    EXPECT_LE(ticks.front(), low);
    EXPECT_GE(ticks.back(), high);
    const double step = ticks[1] - ticks[0];
    const double mantissa = step / std::pow(10.0, std::floor(std::log10(step)));  // 1, 2 or 5
    EXPECT_TRUE(std::abs(mantissa - 1) < 1e-6 || std::abs(mantissa - 2) < 1e-6 || std::abs(mantissa - 5) < 1e-6) << step;
    EXPECT_LE(ticks.size(), 12u);
    for (double t : ticks) EXPECT_NEAR(std::remainder(t, step), 0.0, step * 1e-6) << t;
  }
}

TEST(SvgPlot, ShortNumbers) {
  EXPECT_EQ(short_number(0), "0");
  EXPECT_EQ(short_number(0.25), "0.25");
  EXPECT_EQ(short_number(3.1e-5), "3.1e-05");
  EXPECT_EQ(short_number(12500), "12.5k");
  EXPECT_EQ(short_number(1.2e6), "1.2M");
  EXPECT_EQ(short_number(340), "340");
}

TEST(SvgPlot, ThinningKeepsEndsAndSpikes) {
  std::vector<std::pair<double, double>> points;
  for (int i = 0; i < 10000; ++i) points.emplace_back(i, std::sin(i * 0.01));
  points[4321].second = 50;   // a loss spike
  points[7777].second = -50;  // and a dip
  const auto thin = thin_points(points, 300);
  EXPECT_LE(thin.size(), 300u);
  EXPECT_EQ(thin.front(), points.front());
  EXPECT_EQ(thin.back(), points.back());
  EXPECT_NE(std::find(thin.begin(), thin.end(), points[4321]), thin.end());
  EXPECT_NE(std::find(thin.begin(), thin.end(), points[7777]), thin.end());
  EXPECT_TRUE(std::is_sorted(thin.begin(), thin.end()));  // still in step order
  EXPECT_EQ(thin_points(points, 20000).size(), points.size());
}

TEST(SvgPlot, PointsMapIntoTheFrameInOrderAndNaNBreaksTheLine) {
  Plot plot{"loss", "Loss", "", {{"train", "#000", {{1, 2.0}, {2, 1.0}, {3, std::nan("")}, {4, 0.5}, {5, 0.25}}, "", false},
                                 {"eval", "#111", {{2, 1.5}, {5, 0.4}}, "", true}}};
  const std::string svg = svg_plot(plot);
  EXPECT_EQ(count_of(svg, "<polyline"), 3u);  // train split in two at the NaN, eval one
  EXPECT_EQ(count_of(svg, "<circle"), 2u);    // eval markers
  EXPECT_NE(svg.find(R"(data-metric="loss")"), std::string::npos);
  const auto points = polyline_points(svg);
  ASSERT_EQ(points.size(), 6u);
  for (const auto& [x, y] : points) {  // inside the frame: x in [58, 466], y in [30, 256] of the 480 × 290 viewBox
    EXPECT_GE(x, 58 - 0.1);
    EXPECT_LE(x, 466 + 0.1);
    EXPECT_GE(y, 30 - 0.1);
    EXPECT_LE(y, 256 + 0.1);
  }
  // Later steps lie further right; a lower loss lies lower (a larger SVG y).
  EXPECT_LT(points[0].first, points[1].first);
  EXPECT_LT(points[0].second, points[1].second);
  EXPECT_LT(points[2].second, points[3].second);
  EXPECT_NEAR(points[0].first, 58, 0.1);  // the first step sits on the left edge of the frame
  EXPECT_NEAR(points[3].first, 480 - 14, 0.1);
}

TEST(SvgPlot, ALongLegendWrapsAndMakesTheChartTaller) {
  Plot plot{"rewards", "Rewards", "", {}};
  for (int i = 0; i < 8; ++i) plot.series.push_back({"run-" + std::to_string(i) + " eval rejected", "#000", {{1, 1.0 * i}, {2, 2.0}}, "", false});
  const std::string svg = svg_plot(plot);
  std::smatch box;
  ASSERT_TRUE(std::regex_search(svg, box, std::regex(R"re(viewBox="0 0 480 ([0-9.]+)")re")));
  EXPECT_GT(std::stod(box[1]), 290 + 14 * 2);  // at least 3 legend rows
  EXPECT_NE(svg.find(R"(height="226")"), std::string::npos);  // the plotting area keeps its size
  const std::regex text(R"re(<text class="legend" x="([0-9.]+)" y="([0-9.]+)">([^<]*)</text>)re");
  int entries = 0;
  for (auto t = std::sregex_iterator(svg.begin(), svg.end(), text); t != std::sregex_iterator(); ++t, ++entries)
    EXPECT_LE(std::stod((*t)[1]) + 6.2 * (*t)[3].length(), 480) << (*t)[0];  // inside the chart's width
  EXPECT_EQ(entries, 8);
}

TEST(SvgPlot, LabelsAreEscaped) {
  Plot plot{"x<y", "a & b", "", {{"<script>", "#000", {{1, 1.0}, {2, 2.0}}, "", true}}};
  const std::string svg = svg_plot(plot);
  EXPECT_EQ(svg.find("<script>"), std::string::npos);
  EXPECT_NE(svg.find("&lt;script&gt;"), std::string::npos);
  EXPECT_EQ(escape_html(R"(<a href="x">'&')"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;");
}

// A run folder with `lines` as metrics.jsonl and an optional run record.
std::string write_run(const std::string& name, const std::vector<nlohmann::json>& lines, const nlohmann::json& record = nullptr) {
  const std::string dir = temp_dir("report_" + name) + "/" + name;
  fs::create_directories(dir);
  std::string text;
  for (const auto& line : lines) text += line.dump() + "\n";
  write_file(dir + "/metrics.jsonl", text);
  if (!record.is_null()) write_file(dir + "/qtune_run.json", record.dump(2));
  return dir;
}

std::vector<nlohmann::json> sft_lines(int steps) {
  std::vector<nlohmann::json> lines;
  for (int s = 1; s <= steps; ++s) {
    nlohmann::json line = {{"step", s},          {"epoch", s / 10.0},      {"loss", 2.0 / s},         {"lr", 1e-3},
                           {"grad_norm", 0.5},   {"trained_tokens", 10},   {"tokens", 100},           {"elapsed_s", s * 0.1},
                           {"wall_time", 1e9 + s}, {"tokens_per_s", 1000}, {"step_time_s", 0.1},      {"host_memory_bytes", 1 << 30}};
    if (s % 5 == 0) line["eval_loss"] = 2.5 / s;
    lines.push_back(line);
  }
  return lines;
}

std::vector<std::string> plot_ids(const std::vector<Plot>& plots) {
  std::vector<std::string> ids;
  for (const auto& p : plots) ids.push_back(p.id);
  return ids;
}

TEST(ReportPlots, AnSftRunGetsItsCurvesAndEvaluationsAsMarkers) {
  RunFiles run = read_run_files(write_run("sft", sft_lines(20)));
  const std::vector<Plot> plots = report_plots({run});
  EXPECT_EQ(plot_ids(plots), (std::vector<std::string>{"loss", "lr", "grad_norm", "tokens_per_s", "step_time_s", "memory"}));
  const Plot& loss = plots[0];
  ASSERT_EQ(loss.series.size(), 2u);
  EXPECT_EQ(loss.series[0].points.size(), 20u);
  EXPECT_EQ(loss.series[1].points.size(), 4u);  // steps 5, 10, 15, 20
  EXPECT_TRUE(loss.series[1].markers);
  EXPECT_DOUBLE_EQ(plots[5].series[0].points[0].second, 1.0);  // host memory in GiB
}

// A GPU run's lines also have the caching allocator's peaks: they join host RSS on the memory plot, in GiB.
TEST(ReportPlots, AGpuRunsMemoryPlotHasTheAllocatorsPeaks) {
  std::vector<nlohmann::json> lines = sft_lines(3);
  for (auto& line : lines) {
    line["device_peak_allocated_bytes"] = int64_t{3} << 30;
    line["device_peak_reserved_bytes"] = int64_t{4} << 30;
  }
  RunFiles run = read_run_files(write_run("gpu", lines));
  const std::vector<Plot> plots = report_plots({run});
  const Plot& memory = plots[5];
  ASSERT_EQ(memory.id, "memory");
  ASSERT_EQ(memory.series.size(), 3u);
  EXPECT_EQ(memory.series[1].label, "GPU allocated (peak)");
  EXPECT_DOUBLE_EQ(memory.series[1].points[0].second, 3.0);
  EXPECT_EQ(memory.series[2].label, "GPU reserved (peak)");
  EXPECT_DOUBLE_EQ(memory.series[2].points[2].second, 4.0);
  const std::string page = report_html({run});
  EXPECT_NE(page.find("peak GPU memory reserved</th><td class=\"num\">4.00 GiB"), std::string::npos);
}

TEST(ReportPlots, PreferenceMetricsAndUnknownKeysGetPlots) {
  std::vector<nlohmann::json> lines = sft_lines(4);
  for (auto& line : lines) {
    line["rewards/chosen"] = 0.1;
    line["rewards/rejected"] = -0.1;
    line["rewards/margins"] = 0.2;
    line["rewards/accuracies"] = 0.75;
    line["nll_loss"] = 1.0;
  }
  lines[3]["eval_rewards/accuracies"] = 0.5;
  lines[3]["eval_only_metric"] = 3.0;
  RunFiles run = read_run_files(write_run("dpo", lines));
  const std::vector<Plot> plots = report_plots({run});
  EXPECT_EQ(plot_ids(plots), (std::vector<std::string>{"loss", "lr", "grad_norm", "tokens_per_s", "step_time_s", "memory", "rewards", "margins",
                                                      "accuracies", "nll_loss", "only_metric"}));
  EXPECT_EQ(plots[6].series.size(), 2u);  // chosen and rejected
  EXPECT_EQ(plots[8].series.size(), 2u);  // train and eval accuracy
}

TEST(ReportPlots, SeveralRunsAreOverlaidWithTheirNames) {
  std::vector<RunFiles> runs = {read_run_files(write_run("a", sft_lines(10))), read_run_files(write_run("b", sft_lines(30)))};
  name_runs(runs);
  const Plot loss = report_plots(runs)[0];
  ASSERT_EQ(loss.series.size(), 4u);
  EXPECT_EQ(loss.series[0].label, "a train");
  EXPECT_EQ(loss.series[3].label, "b eval");
  EXPECT_EQ(loss.series[0].color, loss.series[1].color);  // one color per run
  EXPECT_NE(loss.series[0].color, loss.series[2].color);
  EXPECT_EQ(loss.series[2].points.size(), 30u);
}

TEST(ReportPlots, TheFinalEvaluationOfTheRecordEndsTheEvalCurve) {
  const nlohmann::json record = {{"status", "done"}, {"final", {{"steps", 22}, {"loss", 0.1}, {"eval", {{"eval_loss", 0.05}}}}}};
  RunFiles run = read_run_files(write_run("final", sft_lines(22), record));
  const std::vector<Plot> plots = report_plots({run});
  const PlotSeries& eval = plots[0].series[1];
  ASSERT_EQ(eval.points.size(), 5u);  // steps 5..20 logged, 22 from the record
  EXPECT_EQ(eval.points.back(), std::make_pair(22.0, 0.05));
}

TEST(RunFiles, ACutShortLastLineIsLeftOutAndBadLinesAreNamed) {
  const std::string dir = write_run("cut", sft_lines(3));
  write_file(dir + "/metrics.jsonl", read_file(dir + "/metrics.jsonl") + R"({"step": 4, "loss": 0.)");
  EXPECT_EQ(read_run_files(dir).metrics.size(), 3u);
  write_file(dir + "/metrics.jsonl", read_file(dir + "/metrics.jsonl") + "\n[1, 2]\n");
  try {
    read_run_files(dir);
    FAIL() << "a line that is not an object was accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("metrics.jsonl:4:"), std::string::npos) << e.what();
  }
}

TEST(RunFiles, BadFoldersAndRecordsAreRefused) {
  EXPECT_THROW(read_run_files("/nonexistent/run"), InputError);
  EXPECT_THROW(read_run_files(temp_dir("report_empty")), InputError);  // neither file
  const std::string dir = write_run("badrecord", sft_lines(2), nlohmann::json{{"data", "not an object"}});
  EXPECT_THROW(read_run_files(dir), InputError);
  write_file(dir + "/qtune_run.json", "{\"status\": ");  // truncated
  EXPECT_THROW(read_run_files(dir), InputError);
  write_file(dir + "/qtune_run.json", R"({"final": {"eval": [1]}})");
  EXPECT_THROW(read_run_files(dir), InputError);
}

TEST(ReportHtml, IsSelfContainedAndEscapesTheConfig) {
  const nlohmann::json record = {{"status", "done"}, {"config", "datasets:\n  - path: <script>alert(1)</script>.jsonl\n"},
                                 {"memory_plan", {{"text", "memory plan on cpu (estimate)\n"}}}};
  RunFiles run = read_run_files(write_run("page", sft_lines(5), record));
  const std::string page = report_html({run});
  EXPECT_EQ(page.find("<script"), std::string::npos);
  EXPECT_NE(page.find("&lt;script&gt;alert(1)"), std::string::npos);
  for (const char* external : {"src=", "href=", "@import", "url("}) EXPECT_EQ(page.find(external), std::string::npos) << external;
  for (const char* section : {R"(id="summary")", R"(id="plots")", R"(id="data")", R"(id="memory-plan")", R"(id="config")"})
    EXPECT_NE(page.find(section), std::string::npos) << section;
  EXPECT_EQ(count_of(page, "<svg class=\"plot\""), 6u);
}

TEST(ReportCommand, WritesThePageAndRefusesBadInputWithOneLine) {
  const std::string dir = write_run("cli", sft_lines(5));
  test::CommandResult done = run_qtune("report " + dir);
  ASSERT_EQ(done.exit_code, 0) << done.out;
  EXPECT_NE(done.out.find(dir + "/report.html"), std::string::npos) << done.out;
  EXPECT_NE(read_file(dir + "/report.html").find("<svg class=\"plot\""), std::string::npos);

  const std::string other = write_run("cli2", sft_lines(7)), both = temp_dir("report_both") + "/both.html";
  done = run_qtune("report " + dir + " " + other + " --out " + both);
  ASSERT_EQ(done.exit_code, 0) << done.out;
  EXPECT_NE(read_file(both).find("cli2 train"), std::string::npos);

  for (const std::string& args : {std::string("report /nonexistent/run"), "report " + dir + " --out /nonexistent/folder/r.html"}) {
    const test::CommandResult bad = run_qtune(args);
    EXPECT_EQ(bad.exit_code, 2) << args << "\n" << bad.out;
    EXPECT_EQ(bad.out.rfind("error: ", 0), 0u) << bad.out;
    EXPECT_EQ(count_of(bad.out, "\n"), 1u) << bad.out;
  }
  EXPECT_NE(read_file(dir + "/report.html").find("<svg"), std::string::npos);  // the page already written is kept
}

}  // namespace
}  // namespace qtune
