// What the shared training loop (trainer/trainer.cpp) asks of a recipe, SFT or preference training:
// the micro-batches of the run, one optimizer step's forward and backward with its metrics, and the
// validation metrics. Plus the pieces both recipes use: device batches and the epoch batch schedule.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/torch.h"
#include "data/packing.h"
#include "models/chunked_log_probs.h"
#include "models/transformer.h"
#include "trainer/distributed.h"
#include "trainer/progress.h"
#include "trainer/train_config.h"

namespace qtune {

struct StepResult {
  double loss = 0;
  int64_t trained_tokens = 0;  // loss terms (answer tokens)
  int64_t tokens = 0;          // non-padding tokens processed
  Metrics metrics;             // recipe-specific, TRL's names
};

class TrainingTask {
 public:
  virtual ~TrainingTask() = default;
  virtual std::size_t batches_per_epoch() const = 0;
  virtual const PackingReport& packing() const = 0;
  // Once, after the model (and any resumed adapter) is ready, before the first step.
  virtual void prepare(CausalLM& /*model*/) {}
  // Forward and backward of micro-batches [first, first + count) of the run (micro-batch m is batch
  // m mod n of epoch m div n), accumulating one optimizer step's gradient normalized over all of them.
  // `before_last_backward` runs right before this rank's last backward of the step (not at all on a
  // rank without rows in it).
  virtual StepResult accumulate(CausalLM& model, int64_t first, int64_t count, const std::function<void()>& before_last_backward = {}) = 0;
  // Validation metrics with the adapter on and dropout off ("eval_loss" first); empty without validation data.
  virtual Metrics evaluate(CausalLM& model) = 0;
};

// With `group` of W ranks, each global micro-batch holds micro_batch_size × W rows (or pairs) and this rank
// takes its share; step totals (trained tokens, pairs), losses and metrics are summed across ranks, so the
// loss is normalized over the whole global step. The caller sums the gradients. nullptr: one rank.
std::unique_ptr<TrainingTask> make_sft_task(const PreparedData& data, const TrainConfig& config, torch::Device device,
                                            Distributed* group = nullptr);
std::unique_ptr<TrainingTask> make_preference_task(const PreparedData& data, const TrainConfig& config, torch::Device device,
                                                   Distributed* group = nullptr);

// Sums `values` across the ranks of `group` (nothing to do for nullptr).
void sum_across_ranks(Distributed* group, std::vector<double>& values);

// Whether validation batch `index` is this rank's to evaluate (every W-th, from its rank); the ranks then
// sum their metric sums. nullptr: every batch.
bool evaluates_batch(const Distributed* group, std::size_t index);

// A micro-batch as tensors on the device.
struct DeviceBatch {
  torch::Tensor input_ids, labels;  // [B, T] int64
  SequenceLayout layout;
  int64_t trained_tokens = 0;       // loss terms: labels[:, 1:] != -100
  int64_t tokens = 0;               // non-padding tokens
};
DeviceBatch to_device(const Batch& batch, torch::Device device);

// Next-token targets of unshifted `labels` [R, T]: labels[:, t + 1] at position t, -100 at the last position.
torch::Tensor next_token_targets(const torch::Tensor& labels);

// The micro-batches of a run over fixed rows: batch m is batch (m mod n) of epoch (m div n), each
// epoch's order from plan_batches() over global batches of micro_batch_size × `world` rows, of which
// rank `rank` takes the rows [rank·b, (rank+1)·b) (fewer, or none, in a short last batch).
class BatchSchedule {
 public:
  BatchSchedule(std::vector<std::size_t> row_lengths, PackingOptions options, int rank = 0, int world = 1);
  std::size_t per_epoch() const { return per_epoch_; }
  std::vector<std::size_t> rows_of(int64_t micro_batch);

 private:
  std::vector<std::size_t> row_lengths_;
  PackingOptions options_;  // micro_batch_size: the global batch
  std::size_t share_;       // rows per rank
  int rank_;
  std::size_t per_epoch_ = 0;
  uint64_t cached_epoch_ = UINT64_MAX;
  std::vector<std::vector<std::size_t>> batches_;
};

}  // namespace qtune
