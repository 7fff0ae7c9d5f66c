// qtune report RUN_DIR [RUN_DIR ...] [--out FILE.html]: the HTML report of training runs.
#include <filesystem>
#include <iostream>
#include <memory>

#include <fmt/format.h>

#include "report/report_html.h"
#include "trainer/commands.h"

namespace qtune {

Command add_report_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("report", "Write one HTML page with the curves, data summary, memory plan and config of training runs");
  auto runs = std::make_shared<std::vector<std::string>>();
  auto out = std::make_shared<std::string>();
  cmd->add_option("runs", *runs, "output_dir of one or more qtune train runs (several are overlaid)")->required();
  cmd->add_option("--out", *out, "the HTML file to write (default: RUN_DIR/report.html for one run, ./report.html for several)");
  return [runs, out]() {
    const std::string path = !out->empty() ? *out : runs->size() == 1 ? (std::filesystem::path(runs->front()) / kReportFile).string() : kReportFile;
    write_report(*runs, path);
    std::cout << fmt::format("report: {} ({} run{})\n", path, runs->size(), runs->size() == 1 ? "" : "s");
    return 0;
  };
}

}  // namespace qtune
