// The report's charts: which metrics.jsonl keys go on which plot, one series per key (and per run when
// several runs are overlaid), evaluations as markers.
#pragma once

#include <vector>

#include "report/run_files.h"
#include "report/svg_plot.h"

namespace qtune {

// Plots in reading order: loss (with eval loss), learning rate, gradient norm, tokens/s, memory; for
// preference runs rewards, margins and accuracies; then one plot per other logged metric. A plot is left
// out when none of the runs logged any of its keys.
std::vector<Plot> report_plots(const std::vector<RunFiles>& runs);

}  // namespace qtune
