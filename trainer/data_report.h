// The data summary `qtune validate` and `qtune data preview` print, and the packing plan they share with
// training.
#pragma once

#include <ostream>

#include "data/batch_source.h"
#include "data/prepare_data.h"
#include "trainer/train_config.h"

namespace qtune {

// Rows of the training split as training packs them (its BatchSource's plan; drop/truncate counted in the report).
RowPlan plan_training_rows(const PreparedData& data, const TrainConfig& config);

// Per-dataset lines (samples, skipped, tokens, trained tokens, cache), the split and the packing plan.
void print_data_report(std::ostream& out, const PreparedData& data, const RowPlan& plan, const TrainConfig& config);

}  // namespace qtune
