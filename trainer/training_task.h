// What the shared training loop (trainer/trainer.cpp) asks of a recipe, SFT or preference training:
// the micro-batches of the run, one optimizer step's forward and backward with its metrics, and the
// validation metrics. Plus the pieces both recipes use: their batch sources and device batches.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/torch.h"
#include "data/batch_source.h"
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
  virtual const RowPlan& row_plan() const = 0;  // the training rows as packed, with their report
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

// The weight of an MoE's load-balancing loss in a training objective (0 for a dense model): moe_aux_loss_coef where
// the YAML sets it (LLaMA-Factory's key: the loss on, with that weight); otherwise the model's router_aux_loss_coef
// where its config.json sets output_router_logits (transformers then adds the loss) or `trainer_adds` (a trainer
// that adds it regardless: TRL's DPO, qtune's SFT of a trained router); 0 otherwise.
double load_balancing_weight(CausalLM& model, double moe_aux_loss_coef, bool trainer_adds);

// Sums `values` across the ranks of `group` (nothing to do for nullptr).
void sum_across_ranks(Distributed* group, std::vector<double>& values);

// The batches of `samples` (data.train or data.validation) under the config's packing options, for this
// rank of `group` (nullptr: one rank). `data` and `samples` must outlive the source.
BatchSource batch_source(const PreparedData& data, const SampleSet& samples, const TrainConfig& config, const Distributed* group);

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

}  // namespace qtune
