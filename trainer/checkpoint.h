// Training checkpoints: `output_dir/checkpoint-N/` with the adapter (PEFT format), the optimizer moments,
// the RNG state and the data position, written to a temporary folder and renamed, so a crash never
// leaves a half checkpoint. Depends on: trainer/adamw.h, adapters/lora.h.
//
// trainer_state.json: {"format": "qtune-trainer-state", "version": 1, "step": N, "micro_batch": M, ...}
#pragma once

#include <string>

#include "adapters/lora.h"
#include "models/transformer.h"
#include "trainer/adamw.h"

namespace qtune {

struct TrainerState {
  int64_t step = 0;         // optimizer steps done
  int64_t micro_batch = 0;  // micro-batches consumed (the data position)
  double last_loss = 0;
};

struct CheckpointContents {
  CausalLM& model;
  const LoraOptions& lora;
  AdamW& optimizer;
  std::string base_model;    // recorded in adapter_config.json
  std::string config_json;   // the resolved training config
};

// output_dir/checkpoint-<step>
std::string checkpoint_dir(const std::string& output_dir, int64_t step);

// Writes output_dir/checkpoint-<step> atomically and returns its path.
std::string save_checkpoint(const std::string& output_dir, CheckpointContents contents, const TrainerState& state);

// Restores adapter weights, optimizer moments and RNG state from `dir`; returns the state to continue from.
TrainerState load_checkpoint(const std::string& dir, CheckpointContents contents);

// The checkpoint folder with the highest step in `output_dir`, or "" when there is none.
std::string latest_checkpoint(const std::string& output_dir);

// Deletes the oldest checkpoints beyond `limit` (0: keep all).
void prune_checkpoints(const std::string& output_dir, int64_t limit);

}  // namespace qtune
