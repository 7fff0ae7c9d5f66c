// run_training(): `qtune train`. Loads the (4-bit) base, injects LoRA (or loads lora_model_dir), prepares
// the data, and runs the loop shared by SFT and preference training (the recipe is a TrainingTask):
// micro-batches accumulated into optimizer steps, AdamW (with LoRA+'s learning rates), the LR schedule,
// clipping, evaluation, logging, checkpoints and exact resume, a clean stop on SIGINT/SIGTERM, and the PEFT
// adapter with its training base record as output.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "adapters/lora.h"
#include "core/torch.h"
#include "trainer/adamw.h"
#include "trainer/memory_plan.h"
#include "trainer/train_config.h"
#include "trainer/training_base.h"

namespace qtune {

struct TrainSummary {
  int64_t steps = 0;
  double final_loss = 0;
  bool interrupted = false;  // stopped by a signal (or stop_after_steps) after saving a checkpoint
  std::string checkpoint;    // the checkpoint written at the stop, if interrupted
};

// CUDA for device: auto when present (InputError for device: cuda without one), else the CPU.
torch::Device pick_device(const TrainConfig& config);

// The model a run trains, in training mode on `device`: the base as the config loads it (compute bf16 on
// a GPU with bf16: true, fp32 on the CPU) with new LoRA adapters or those of lora_model_dir (for DPO
// also kept frozen as the reference); preference runs without LoRA dropout unless disable_dropout: false.
struct TrainingModel {
  CausalLM model;
  LoraOptions lora;  // as injected or as read from lora_model_dir
  at::ScalarType dtype;
};
// With offload_base: true (or "auto" decided by planned_config) the layers are streamed from host memory.
TrainingModel load_training_model(const TrainConfig& config, torch::Device device);

// The memory plan of the run on `device`: the model's shapes from `base`, the budget (gpu_memory_limit,
// else the GPU's memory), and the device's measured matmul and copy rates.
MemoryPlan plan_training_memory(const TrainConfig& config, torch::Device device, const BaseModelInfo& base);
// The same, reading base_model/config.json first.
MemoryPlan plan_training_memory(const TrainConfig& config, torch::Device device);

// AdamW's parameters for the trained tensors, as PEFT's create_loraplus_optimizer groups them when
// loraplus_lr_ratio > 0: a tensor whose name has "lora_B", or that is 1-D (DoRA's magnitude), learns at
// learning_rate × loraplus_lr_ratio, every other at learning_rate; weight_decay on all but 1-D biases of
// that group. Without LoRA+: learning_rate and weight_decay for all.
std::vector<AdamWParameter> optimizer_parameters(const std::vector<std::pair<std::string, torch::Tensor>>& trained, const TrainConfig& config);

// Trains as `config` says (after its check_paths() and check_sequence_len()), on the base read once into
// `base`. The run goes by planned_config(config, its memory plan).
TrainSummary run_training(const TrainConfig& config, const BaseModelInfo& base);

}  // namespace qtune
