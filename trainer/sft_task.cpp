// The SFT recipe: next-token cross-entropy over the trained tokens, normalized by the trained tokens
// of the whole optimizer step (plus the routers' load-balancing loss when an MoE router is trained).
#include <cmath>

#include "adapters/lora.h"
#include "core/error.h"
#include "trainer/training_task.h"

namespace qtune {
namespace {

// Summed cross-entropy of next-token prediction over the trained positions, added in float64 (the sum
// then does not depend on how the tokens are split into micro-batches and ranks).
torch::Tensor summed_loss(CausalLM& model, const DeviceBatch& batch) {
  return -target_scores(model, batch.input_ids, batch.layout, next_token_targets(batch.labels)).log_probs.sum(torch::kDouble);
}

// Whether an MoE router is trained (LoRA on "gate"): SFT then adds the load-balancing loss, which keeps it from
// sending every token to a few experts, even where config.json leaves output_router_logits off.
bool router_trained(CausalLM& model) {
  for (auto& [name, linear] : model->projections())
    if (lora_of(linear) != nullptr && name.size() > 5 && name.compare(name.size() - 5, 5, ".gate") == 0) return true;
  return false;
}

class SftTask : public TrainingTask {
 public:
  SftTask(const PreparedData& data, const TrainConfig& config, torch::Device device, Distributed* group)
      : train_(batch_source(data, data.train, config, group)),
        validation_(batch_source(data, data.validation, config, group)),
        has_validation_(data.validation.size() > 0),
        device_(device),
        group_(group),
        moe_aux_loss_coef_(config.moe_aux_loss_coef) {
    if (train_.per_epoch() == 0) input_error("{}: no training sample is left after packing (see qtune validate)", config.source);
  }
  std::size_t batches_per_epoch() const override { return train_.per_epoch(); }
  const RowPlan& row_plan() const override { return train_.plan(); }

  StepResult accumulate(CausalLM& model, int64_t first, int64_t count, const std::function<void()>& before_last_backward) override {
    std::vector<DeviceBatch> batches;
    std::vector<double> totals = {0, 0};  // trained tokens, tokens: of this rank, then of all
    for (int64_t m = first; m < first + count; ++m) {
      const std::vector<std::size_t> rows = train_.rows_of(m);
      if (rows.empty()) continue;  // this rank's share of a short last batch
      batches.push_back(to_device(train_.collate(rows), device_));
      totals[0] += static_cast<double>(batches.back().trained_tokens);
      totals[1] += static_cast<double>(batches.back().tokens);
    }
    sum_across_ranks(group_, totals);
    std::vector<double> loss_sum = {0, 0};  // the loss, the load-balancing loss weighted by trained tokens
    const double coef = model->router_balance() ? load_balancing_weight(model, moe_aux_loss_coef_, router_trained(model)) : 0.0;
    for (const auto& batch : batches) {
      // With a trained router, coef · each forward's load-balancing loss, weighted as its share of the trained tokens.
      const double share = static_cast<double>(batch.trained_tokens) / std::max(1.0, totals[0]);
      if (coef > 0) model->router_balance()->arm(coef * share);
      torch::Tensor loss = summed_loss(model, batch) / std::max(1.0, totals[0]);
      if (coef > 0) loss = loss + coef * share * model->router_balance()->loss(), loss_sum[1] += share * model->router_balance()->loss();
      if (&batch == &batches.back() && before_last_backward) before_last_backward();
      loss.backward();
      if (coef > 0) model->router_balance()->disarm();
      loss_sum[0] += loss.item<double>();
    }
    sum_across_ranks(group_, loss_sum);
    Metrics metrics;
    if (coef > 0) metrics.emplace_back("aux_loss", loss_sum[1]);
    return {loss_sum[0], static_cast<int64_t>(totals[0]), static_cast<int64_t>(totals[1]), metrics};
  }

  // Mean loss per trained token over the validation set.
  Metrics evaluate(CausalLM& model) override {
    if (!has_validation_) return {};
    torch::NoGradGuard no_grad;
    model->eval();
    std::vector<double> totals = {0, 0};  // loss sum, trained tokens
    for (const auto& rows : validation_.pass()) {
      DeviceBatch d = to_device(validation_.collate(rows), device_);
      if (d.trained_tokens == 0) continue;
      totals[0] += summed_loss(model, d).item<double>();
      totals[1] += static_cast<double>(d.trained_tokens);
    }
    model->train();
    sum_across_ranks(group_, totals);
    return {{"eval_loss", totals[1] > 0 ? totals[0] / totals[1] : std::nan("")}};
  }

 private:
  BatchSource train_, validation_;
  bool has_validation_;
  torch::Device device_;
  Distributed* group_;
  double moe_aux_loss_coef_;
};

}  // namespace

std::unique_ptr<TrainingTask> make_sft_task(const PreparedData& data, const TrainConfig& config, torch::Device device, Distributed* group) {
  return std::make_unique<SftTask>(data, config, device, group);
}

}  // namespace qtune
