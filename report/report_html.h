// `qtune report`: one self-contained HTML page for one or more training runs (inline CSS and SVG, no
// scripts, nothing fetched): the final numbers, the curves, the data summary, the memory plan and the
// config. Several runs are overlaid on the same plots and sit side by side in the tables.
#pragma once

#include <string>
#include <vector>

#include "report/run_files.h"

namespace qtune {

std::string report_html(const std::vector<RunFiles>& runs);

}  // namespace qtune

namespace qtune {

inline constexpr const char* kReportFile = "report.html";  // what `qtune train` writes into output_dir

// Reads each run's folder and writes their page to `path` atomically (an existing page is replaced only
// once the new one is complete). InputError naming the folder or file for anything unreadable or unwritable.
void write_report(const std::vector<std::string>& run_dirs, const std::string& path);

}  // namespace qtune
