// The data summary `qtune validate` and `qtune data preview` print, and the packing plan they share with
// training.
#pragma once

#include <ostream>

#include "data/packing.h"
#include "data/prepare_data.h"
#include "trainer/train_config.h"

namespace qtune {

PackingOptions packing_options(const TrainConfig& config);

// Rows of the training split as training would pack them (drop/truncate counted in the report).
RowPlan plan_training_rows(const PreparedData& data, const TrainConfig& config);

// Per-dataset lines (samples, skipped, tokens, trained tokens, cache), the split and the packing plan.
void print_data_report(std::ostream& out, const PreparedData& data, const RowPlan& plan, const TrainConfig& config);

}  // namespace qtune
