// run_training(): `qtune train`. Loads the (4-bit) base, injects LoRA (or loads lora_model_dir), prepares
// the data, and runs the loop shared by SFT and preference training (the recipe is a TrainingTask):
// micro-batches accumulated into optimizer steps, AdamW, the LR schedule, clipping, evaluation,
// logging, checkpoints and exact resume, a clean stop on SIGINT/SIGTERM, and the PEFT adapter as output.
#pragma once

#include <string>

#include "adapters/lora.h"
#include "core/torch.h"
#include "trainer/memory_plan.h"
#include "trainer/train_config.h"

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

// The memory plan of the run on `device`: the model's shapes from base_model, the budget
// (gpu_memory_limit, else the GPU's memory), and the device's measured matmul and copy rates.
MemoryPlan plan_training_memory(const TrainConfig& config, torch::Device device);

// `config_text` is the resolved config, saved with checkpoints and outputs. The run goes by
// planned_config(config, its memory plan).
TrainSummary run_training(const TrainConfig& config, const std::string& config_text);

}  // namespace qtune
