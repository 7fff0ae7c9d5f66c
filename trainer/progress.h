// Training progress: a live bar on a terminal (loss, lr, grad norm, tokens/s, memory: the GPU allocator's
// allocated and reserved peaks, or host RSS on the CPU; ETA), plain lines
// otherwise, and every logged value in output_dir/metrics.jsonl (on a GPU also the allocator's peak memory
// since the previous line); with report_to: tensorboard the same numbers as TensorBoard scalars in logging_dir.
#pragma once

#include <chrono>
#include <cmath>
#include <fstream>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/torch.h"
#include "data/packing.h"
#include "trainer/device_memory.h"
#include "trainer/tensorboard.h"
#include "trainer/train_config.h"

namespace qtune {

// Named values in the order they are logged ("rewards/accuracies", "eval_loss", ...).
using Metrics = std::vector<std::pair<std::string, double>>;
double metric_or_nan(const Metrics& metrics, const std::string& name);

struct StepRecord {
  int64_t step = 0;
  double epoch = 0;
  double loss = 0;
  double lr = 0;
  double grad_norm = 0;
  int64_t trained_tokens = 0, tokens = 0;
  bool skipped = false;  // non-finite, skipped (skip_nonfinite_steps)
  Metrics metrics;       // the recipe's (preference rewards, ...)
  Metrics eval;          // validation metrics when evaluated this step ("eval_loss", ...)
  double step_seconds = 0;  // wall time of the step: its micro-batches, the optimizer, the GPU work waited for
};

class Progress {
 public:
  // `start_step` > 0 on resume: metrics.jsonl lines after it (from a run that went further than its last
  // checkpoint) are dropped so the file holds each step once; so are the TensorBoard events after it.
  Progress(const TrainConfig& config, int64_t total_steps, int64_t start_step, std::size_t adapted_modules, const PackingReport& data,
           torch::Device device);
  void step(const StepRecord& record);
  void finish(const std::string& message);

 private:
  void write_metrics(const StepRecord& record, const DeviceMemoryPeak& peak);
  const TrainConfig& config_;
  torch::Device device_;
  int64_t total_steps_, start_step_;
  bool tty_;
  std::ofstream metrics_;
  std::optional<TensorBoardWriter> tensorboard_;  // report_to: tensorboard
  std::chrono::steady_clock::time_point start_;
  int64_t tokens_since_start_ = 0;
};

// Resident host memory of this process in bytes (from /proc/self/statm).
int64_t resident_bytes();

}  // namespace qtune
