// run_training(): `qtune train`. Loads the (4-bit) base, injects LoRA (or loads lora_model_dir), prepares
// the data, and runs the loop shared by SFT and preference training (the recipe is a TrainingTask):
// micro-batches accumulated into optimizer steps, AdamW, the LR schedule, clipping, evaluation,
// logging, checkpoints and exact resume, a clean stop on SIGINT/SIGTERM, and the PEFT adapter as output.
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
TrainSummary run_training(const TrainConfig& config, const std::string& config_text);

}  // namespace qtune
