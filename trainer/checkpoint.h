// Training checkpoints: `output_dir/checkpoint-N/` with the adapter (PEFT format), the optimizer moments,
// every rank's RNG state (rng_state_<rank>.safetensors), the data position and the training base record
// (trainer/training_base.h), written to a temporary folder and renamed, so a crash never leaves a half
// checkpoint.
//
// trainer_state.json: {"format": "qtune-trainer-state", "version": 1, "step": N, "micro_batch": M,
//                      "world_size": W, "micro_batches_per_epoch": E, ...}
#pragma once

#include <string>

#include "adapters/lora.h"
#include "models/transformer.h"
#include "trainer/adamw.h"
#include "trainer/training_base.h"

namespace qtune {

struct TrainerState {
  int64_t step = 0;         // optimizer steps done
  int64_t micro_batch = 0;  // global micro-batches consumed (the data position; rank r's share follows from it)
  double last_loss = 0;
  int world_size = 1;                  // ranks of the run that wrote it
  int64_t micro_batches_per_epoch = 0; // of that run (0: unknown, older checkpoints)
};

// The generator states one rank draws dropout masks from: the CPU's, and the GPU's when training there.
struct RankRng {
  torch::Tensor cpu, cuda;  // uint8; cuda undefined on the CPU
};
RankRng current_rng(const torch::Device& device);

struct CheckpointContents {
  CausalLM& model;
  const LoraOptions& lora;
  AdamW& optimizer;
  const TrainingBase& base;  // the run's base, written as kTrainingBaseFile
  std::string config_yaml;   // the config as run, saved as kTrainingConfigFile for people to read
};

// output_dir/checkpoint-<step>
std::string checkpoint_dir(const std::string& output_dir, int64_t step);

// Writes output_dir/checkpoint-<step> atomically, with `ranks[r]` as rank r's RNG, and returns its path.
std::string save_checkpoint(const std::string& output_dir, CheckpointContents contents, const TrainerState& state,
                            const std::vector<RankRng>& ranks);

// Restores adapter weights, optimizer moments and rank `rank`'s RNG (when the checkpoint has one for it)
// from `dir`; returns the state to continue from. (The caller checks first that the checkpoint's base
// record matches the run's: check_same_training_base.)
TrainerState load_checkpoint(const std::string& dir, CheckpointContents contents, int rank = 0);

// The checkpoint folder with the highest step in `output_dir`, or "" when there is none.
std::string latest_checkpoint(const std::string& output_dir);

// Deletes the oldest checkpoints beyond `limit` (0: keep all).
void prune_checkpoints(const std::string& output_dir, int64_t limit);

}  // namespace qtune
