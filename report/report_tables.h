// The report's tables, one column per run: the final numbers, and the data summary.
#pragma once

#include <string>
#include <vector>

#include "report/run_files.h"

namespace qtune {

// Status, recipe, base model, device, steps, final and best losses, final evaluation, runtime, tokens/s and
// peak memory: the run record's figures where it has them, else what metrics.jsonl shows.
std::string summary_table(const std::vector<RunFiles>& runs);

// Datasets, samples, rows, tokens, trained tokens, padding, packing efficiency, truncated and dropped
// samples (from the run record; empty when no run has one).
std::string data_table(const std::vector<RunFiles>& runs);

}  // namespace qtune
