// run_sft(): `qtune train` for supervised fine-tuning. Loads the (4-bit) base, injects LoRA, prepares the
// data, and runs the loop: micro-batches accumulated into optimizer steps with the loss normalized by
// the trained tokens of the whole step, AdamW, the LR schedule, clipping, evaluation, logging,
// checkpoints and exact resume, a clean stop on SIGINT/SIGTERM, and the PEFT adapter as output.
// Depends on: trainer/train_config.h.
#pragma once

#include <string>

#include "trainer/train_config.h"

namespace qtune {

struct TrainSummary {
  int64_t steps = 0;
  double final_loss = 0;
  bool interrupted = false;  // stopped by a signal (or stop_after_steps) after saving a checkpoint
  std::string checkpoint;    // the checkpoint written at the stop, if interrupted
};

// `config_text` is the resolved config, saved with checkpoints and outputs.
TrainSummary run_sft(const TrainConfig& config, const std::string& config_text);

}  // namespace qtune
