// The preference recipes (DPO and its variants, SimPO, ORPO). Each micro-batch holds B pairs as 2·B rows,
// chosen answers first, so one forward scores both sides; log-probs are summed over answer tokens only
// (prompt labels are -100). DPO's reference model is the same frozen base under a ReferenceModel guard
// (base alone, or base + the frozen lora_model_dir adapter), run without autograd before the policy's
// forward so its activations are gone when the policy's are alive; or its log-probs are computed once
// before training (precompute_ref_log_probs).
#include <chrono>
#include <cmath>
#include <iostream>

#include <fmt/format.h>

#include "adapters/lora.h"
#include "core/error.h"
#include "trainer/preference_loss.h"
#include "trainer/training_task.h"

namespace qtune {
namespace {

// A micro-batch of pairs: rows 0..B-1 chosen, B..2B-1 rejected, and which pairs they are.
struct PairBatch {
  DeviceBatch batch;
  torch::Tensor prompt_nll_labels;  // [2B, T] every token but each sequence's first; only when the NLL covers the prompt
  std::vector<std::size_t> pairs;
  int64_t chosen_nll_tokens = 0;  // the NLL's targets in the chosen rows (its normalizer)
  int64_t size() const { return static_cast<int64_t>(pairs.size()); }
};

// Per row: Σ log p(label) over the answer's positions, their count, and Σ of all logits there (detached);
// and the same Σ and count over the NLL's targets (the answer, or the prompt and the answer).
struct RowLogProbs {
  torch::Tensor sums, counts, logit_sums;  // [2B]
  torch::Tensor nll_sums, nll_counts;      // [2B]
  int64_t vocab = 0;
};

// Every token of the rows as its own label but padding and each sequence's first token (nothing predicts it):
// the NLL's labels when it covers the prompt.
torch::Tensor prompt_nll_labels(const DeviceBatch& batch) {
  const SequenceLayout& layout = batch.layout;
  return batch.input_ids.masked_fill(layout.segment_ids.eq(0).logical_or(layout.position_ids.eq(0)), -100);
}

// `prompt_nll_labels` undefined: the NLL is over the answer, as everything else.
RowLogProbs row_log_probs(CausalLM& model, const DeviceBatch& batch, const torch::Tensor& prompt_nll_labels = {}) {
  const torch::Tensor answer = next_token_targets(batch.labels);  // [2B, T]
  const bool with_prompt = prompt_nll_labels.defined();
  const torch::Tensor targets = with_prompt ? next_token_targets(prompt_nll_labels) : answer;
  const TargetScores scores = target_scores(model, batch.input_ids, batch.layout, targets, /*with_logit_sums=*/true);
  const torch::Tensor outside_answer = answer.eq(-100);
  RowLogProbs r;
  r.sums = (with_prompt ? scores.log_probs.masked_fill(outside_answer, 0) : scores.log_probs).sum(1);
  r.counts = outside_answer.logical_not().sum(1).to(r.sums.scalar_type());
  r.logit_sums = (with_prompt ? scores.logit_sums.masked_fill(outside_answer, 0) : scores.logit_sums).sum(1);
  r.nll_sums = with_prompt ? scores.log_probs.sum(1) : r.sums;
  r.nll_counts = with_prompt ? targets.ne(-100).sum(1).to(r.sums.scalar_type()) : r.counts;
  r.vocab = model->lm_head->weight().out_features();
  return r;
}

// The model in eval mode (no LoRA dropout) for the scope.
class EvalMode {
 public:
  explicit EvalMode(CausalLM& model) : model_(model), was_training_(model->is_training()) { model_->eval(); }
  ~EvalMode() { model_->train(was_training_); }
  EvalMode(const EvalMode&) = delete;
  EvalMode& operator=(const EvalMode&) = delete;

 private:
  CausalLM& model_;
  bool was_training_;
};

// One micro-batch scored: the policy's rows, the reference's row sums (DPO), the per-pair log-probs the
// objective takes and its terms.
struct PairScores {
  RowLogProbs rows;
  torch::Tensor reference_sums;  // [2B], DPO only
  PairLogProbs policy;
  PreferenceTerms terms;
};

// The per-pair log-probs and rewards the metrics report, as TRL's trainers log them: DPOTrainer logs answer
// sums and β·(sum − reference sum) for every loss type (IPO's loss takes means, its metrics do not); CPOTrainer
// (SimPO) and ORPOTrainer log the token means their losses take.
struct LoggedPairs {
  PairLogProbs logps;
  torch::Tensor chosen_rewards, rejected_rewards;
};

LoggedPairs logged_pairs(const PreferenceObjective& objective, const PairScores& s, int64_t B) {
  if (!objective.needs_reference()) return {s.policy, s.terms.chosen_rewards, s.terms.rejected_rewards};
  const torch::Tensor sums = s.rows.sums.detach();
  const torch::Tensor rewards = objective.beta * (sums - s.reference_sums);
  return {{sums.slice(0, 0, B), sums.slice(0, B)}, rewards.slice(0, 0, B), rewards.slice(0, B)};
}

// Sums of the step's per-pair values, averaged into TRL's metric names.
struct MetricSums {
  double pairs = 0, loss = 0, chosen_rewards = 0, rejected_rewards = 0, correct = 0, chosen_logps = 0, rejected_logps = 0;
  double chosen_logits = 0, rejected_logits = 0, chosen_logit_count = 0, rejected_logit_count = 0;
  double nll = 0, nll_tokens = 0, log_sigmoid_odds = 0, log_odds = 0;
  double aux_loss = 0, aux_pairs = 0;  // the routers' load-balancing loss (MoE, DPO), weighted by pairs

  void add(const PreferenceObjective& objective, const PairScores& s, int64_t B) {
    auto sum = [](const torch::Tensor& x) { return x.sum().item<double>(); };
    const PreferenceTerms& t = s.terms;
    const RowLogProbs& rows = s.rows;
    const LoggedPairs logged = logged_pairs(objective, s, B);
    pairs += static_cast<double>(B);
    chosen_rewards += sum(logged.chosen_rewards);
    rejected_rewards += sum(logged.rejected_rewards);
    correct += sum(logged.chosen_rewards.gt(logged.rejected_rewards));
    chosen_logps += sum(logged.logps.chosen.detach());
    rejected_logps += sum(logged.logps.rejected.detach());
    const double vocab = static_cast<double>(rows.vocab);
    chosen_logits += sum(rows.logit_sums.slice(0, 0, B));
    rejected_logits += sum(rows.logit_sums.slice(0, B));
    chosen_logit_count += sum(rows.counts.slice(0, 0, B)) * vocab;
    rejected_logit_count += sum(rows.counts.slice(0, B)) * vocab;
    nll -= sum(rows.nll_sums.detach().slice(0, 0, B));
    nll_tokens += sum(rows.nll_counts.slice(0, 0, B));
    if (t.log_odds.defined()) log_odds += sum(t.log_odds), log_sigmoid_odds += sum(t.log_sigmoid_odds);
  }

  // Every field summed over the ranks of `group`.
  void sum_across(Distributed* group) {
    static constexpr double MetricSums::*kFields[] = {&MetricSums::pairs, &MetricSums::loss, &MetricSums::chosen_rewards, &MetricSums::rejected_rewards,
                                                      &MetricSums::correct, &MetricSums::chosen_logps, &MetricSums::rejected_logps,
                                                      &MetricSums::chosen_logits, &MetricSums::rejected_logits, &MetricSums::chosen_logit_count,
                                                      &MetricSums::rejected_logit_count, &MetricSums::nll, &MetricSums::nll_tokens,
                                                      &MetricSums::log_sigmoid_odds, &MetricSums::log_odds, &MetricSums::aux_loss,
                                                      &MetricSums::aux_pairs};
    std::vector<double> values;
    for (auto field : kFields) values.push_back(this->*field);
    sum_across_ranks(group, values);
    for (std::size_t i = 0; i < values.size(); ++i) this->*kFields[i] = values[i];
  }

  Metrics averaged(const PreferenceObjective& objective, const std::string& prefix) const {
    Metrics m;
    auto put = [&](const std::string& name, double numerator, double denominator) { m.emplace_back(prefix + name, numerator / denominator); };
    if (!prefix.empty()) put("loss", loss, 1);
    put("rewards/chosen", chosen_rewards, pairs);
    put("rewards/rejected", rejected_rewards, pairs);
    put("rewards/accuracies", correct, pairs);
    put("rewards/margins", chosen_rewards - rejected_rewards, pairs);
    put("logps/chosen", chosen_logps, pairs);
    put("logps/rejected", rejected_logps, pairs);
    put("logits/chosen", chosen_logits, chosen_logit_count);
    put("logits/rejected", rejected_logits, rejected_logit_count);
    // CPOTrainer logs nll_loss for SimPO also when cpo_alpha = 0, as 0.
    if (objective.nll_weight() > 0) put("nll_loss", nll, nll_tokens);
    else if (objective.method == PreferenceMethod::Simpo) put("nll_loss", 0, 1);
    if (aux_pairs > 0) put("aux_loss", aux_loss, aux_pairs);
    if (objective.method == PreferenceMethod::Orpo) {
      put("log_odds_ratio", log_sigmoid_odds, pairs);
      put("log_odds_chosen", log_odds, pairs);
    }
    return m;
  }
};

class PreferenceTask : public TrainingTask {
 public:
  PreferenceTask(const PreparedData& data, const TrainConfig& config, torch::Device device, Distributed* group)
      : data_(data),
        objective_(make_preference_objective(config.rl, config.dpo_loss_type, config.rl_beta, config.dpo_label_smoothing, config.simpo_gamma,
                                             config.orpo_alpha, config.cpo_alpha)),
        train_(batch_source(data, data.train, config, group)),
        validation_(batch_source(data, data.validation, config, group)),
        device_(device),
        group_(group),
        precompute_(config.precompute_ref_log_probs && objective_.needs_reference()),
        moe_aux_loss_coef_(config.moe_aux_loss_coef) {
    objective_.nll_on_prompt = objective_.method == PreferenceMethod::Orpo && config.orpo_prompt_loss;
    if (train_.per_epoch() == 0)
      input_error("{}: no preference pair is left (every pair was dropped: see qtune validate {})", config.source, config.source);
  }

  std::size_t batches_per_epoch() const override { return train_.per_epoch(); }
  const RowPlan& row_plan() const override { return train_.plan(); }

  void prepare(CausalLM& model) override {
    if (!precompute_) return;
    const auto start = std::chrono::steady_clock::now();
    reference_train_ = precompute_reference(model, train_, data_.train.size());
    reference_validation_ = precompute_reference(model, validation_, data_.validation.size());
    std::cout << fmt::format("reference log-probs of {} pairs computed once in {:.1f} s\n", train_.plan().rows.size() + validation_.plan().rows.size(),
                             std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }

  StepResult accumulate(CausalLM& model, int64_t first, int64_t count, const std::function<void()>& before_last_backward) override {
    std::vector<PairBatch> batches;
    std::vector<double> totals = {0, 0, 0, 0};  // pairs, chosen NLL targets, answer tokens, tokens: this rank's, then all
    for (int64_t m = first; m < first + count; ++m) {
      const std::vector<std::size_t> rows = train_.rows_of(m);
      if (rows.empty()) continue;  // this rank's share of a short last batch
      batches.push_back(fetch(train_, rows));
      totals[0] += static_cast<double>(batches.back().size());
      totals[1] += static_cast<double>(batches.back().chosen_nll_tokens);
      totals[2] += static_cast<double>(batches.back().batch.trained_tokens);
      totals[3] += static_cast<double>(batches.back().batch.tokens);
    }
    sum_across_ranks(group_, totals);
    const double step_pairs = totals[0], step_chosen_nll_tokens = std::max(1.0, totals[1]);
    StepResult result;
    result.trained_tokens = static_cast<int64_t>(totals[2]);
    result.tokens = static_cast<int64_t>(totals[3]);
    MetricSums sums;
    RouterBalance* balance = balance_coef(model) > 0 ? model->router_balance() : nullptr;
    for (const auto& b : batches) {
      // TRL's DPO adds coef · aux to each micro-batch's mean loss (aux of that forward), as much as its pairs weigh.
      const double balance_weight = balance ? balance_coef(model) * static_cast<double>(b.size()) / step_pairs : 0.0;
      const PairScores s = score(model, b, reference_train_, balance_weight);
      const PreferenceTerms& terms = s.terms;
      const RowLogProbs& rows = s.rows;
      // Added in float64, as SFT's loss: the step loss does not depend on how the pairs are split.
      torch::Tensor loss = terms.losses.sum(torch::kDouble) / step_pairs;
      if (objective_.nll_weight() > 0)
        loss = loss - objective_.nll_weight() * rows.nll_sums.slice(0, 0, b.size()).sum(torch::kDouble) / step_chosen_nll_tokens;
      if (balance) loss = loss + balance_weight * balance->loss();  // its gradient reaches the routers by RouterBalance
      if (&b == &batches.back() && before_last_backward) before_last_backward();
      loss.backward();
      if (balance) {
        sums.aux_loss += balance->loss() * static_cast<double>(b.size());
        sums.aux_pairs += static_cast<double>(b.size());
        balance->disarm();
      }
      sums.loss += loss.item<double>();
      sums.add(objective_, s, b.size());
    }
    sums.sum_across(group_);
    result.loss = sums.loss;
    result.metrics = sums.averaged(objective_, "");
    return result;
  }

  Metrics evaluate(CausalLM& model) override {
    if (validation_.plan().rows.empty()) return {};
    torch::NoGradGuard no_grad;
    EvalMode eval(model);
    MetricSums sums;
    std::vector<double> loss_sum = {0};
    for (const auto& rows : validation_.pass()) {
      const PairBatch b = fetch(validation_, rows);
      const PairScores s = score(model, b, reference_validation_);
      loss_sum[0] += s.terms.losses.sum(torch::kDouble).item<double>();
      sums.add(objective_, s, b.size());
    }
    sum_across_ranks(group_, loss_sum);
    sums.sum_across(group_);
    // The same loss as training: mean preference term per pair plus the weighted NLL per chosen token.
    sums.loss = loss_sum[0] / sums.pairs + (objective_.nll_weight() > 0 ? objective_.nll_weight() * sums.nll / sums.nll_tokens : 0.0);
    return sums.averaged(objective_, "eval_");
  }

 private:
  PairBatch fetch(const BatchSource& source, const std::vector<std::size_t>& rows) const {
    PairBatch b;
    b.pairs = source.pairs_of(rows);
    const Batch batch = source.collate(rows);
    b.batch = to_device(batch, device_);
    if (objective_.nll_on_prompt) b.prompt_nll_labels = prompt_nll_labels(b.batch);
    const std::size_t chosen_cells = batch.width * b.pairs.size();  // the first B rows
    for (std::size_t i = 0; i < chosen_cells; ++i)
      b.chosen_nll_tokens += objective_.nll_on_prompt ? batch.segment_ids[i] > 0 && batch.position_ids[i] > 0 : batch.labels[i] != kIgnoreLabel;
    return b;
  }

  // Per-pair log-probs from row sums: chosen rows first; token means where the objective wants them.
  PairLogProbs as_pairs(const RowLogProbs& rows, int64_t B) const {
    torch::Tensor values = objective_.mean_log_probs() ? rows.sums / rows.counts : rows.sums;
    return {values.slice(0, 0, B), values.slice(0, B)};
  }

  // The reference model's row sums for batch `b`: precomputed, or one forward without autograd.
  RowLogProbs reference_rows(CausalLM& model, const PairBatch& b, const std::vector<double>& precomputed) const {
    if (!precomputed.empty()) {
      std::vector<double> sums(2 * b.pairs.size());
      for (std::size_t i = 0; i < b.pairs.size(); ++i) {
        sums[i] = precomputed[2 * b.pairs[i]];
        sums[b.pairs.size() + i] = precomputed[2 * b.pairs[i] + 1];
      }
      RowLogProbs r;
      r.counts = next_token_targets(b.batch.labels).ne(-100).sum(1).to(torch::kDouble);
      r.sums = torch::tensor(sums, torch::kDouble).to(device_);
      return r;
    }
    torch::NoGradGuard no_grad;
    ReferenceModel reference;
    EvalMode eval(model);
    return row_log_probs(model, b.batch);
  }

  // The reference's forward (DPO) runs first, so its activations are gone when the policy's are alive.
  // TRL's DPOTrainer adds an MoE model's load-balancing loss with the model's router_aux_loss_coef; its ORPO and CPO
  // trainers only where output_router_logits is set (or moe_aux_loss_coef asks for it).
  double balance_coef(CausalLM& model) const {
    return load_balancing_weight(model, moe_aux_loss_coef_, objective_.method == PreferenceMethod::Dpo);
  }

  // `balance_weight` > 0: the policy forward counts the routers' load-balancing loss (RouterBalance::arm).
  PairScores score(CausalLM& model, const PairBatch& b, const std::vector<double>& precomputed, double balance_weight = 0) const {
    PairScores s;
    PairLogProbs reference;
    if (objective_.needs_reference()) {
      const RowLogProbs r = reference_rows(model, b, precomputed);
      s.reference_sums = r.sums;
      reference = as_pairs(r, b.size());
    }
    if (balance_weight > 0) model->router_balance()->arm(balance_weight);
    s.rows = row_log_probs(model, b.batch, b.prompt_nll_labels);
    s.policy = as_pairs(s.rows, b.size());
    s.terms = preference_terms(objective_, s.policy, reference);
    return s;
  }

  // Reference row sums of every planned pair of `source` (over `pairs` pairs): [2·pair] chosen, [2·pair + 1]
  // rejected (NaN for pairs that were not planned). Each rank scores its batches of a pass, the ranks add their parts.
  std::vector<double> precompute_reference(CausalLM& model, const BatchSource& source, std::size_t pairs) const {
    std::vector<double> values(4 * pairs, 0.0);  // the sums, then how many ranks scored each
    for (const auto& rows : source.pass()) {
      const PairBatch b = fetch(source, rows);
      const torch::Tensor sums = reference_rows(model, b, {}).sums.to(torch::kCPU, torch::kDouble);
      for (std::size_t i = 0; i < b.pairs.size(); ++i)
        for (std::size_t side = 0; side < 2; ++side) {
          values[2 * b.pairs[i] + side] = sums[static_cast<int64_t>(side * b.pairs.size() + i)].item<double>();
          values[2 * pairs + 2 * b.pairs[i] + side] = 1;
        }
    }
    sum_across_ranks(group_, values);
    for (std::size_t i = 0; i < 2 * pairs; ++i)
      if (values[2 * pairs + i] == 0) values[i] = std::nan("");
    values.resize(2 * pairs);
    return values;
  }

  const PreparedData& data_;
  PreferenceObjective objective_;
  BatchSource train_, validation_;
  torch::Device device_;
  Distributed* group_;
  bool precompute_;
  double moe_aux_loss_coef_;
  std::vector<double> reference_train_, reference_validation_;  // empty unless precomputed
};

}  // namespace

std::unique_ptr<TrainingTask> make_preference_task(const PreparedData& data, const TrainConfig& config, torch::Device device,
                                                   Distributed* group) {
  return std::make_unique<PreferenceTask>(data, config, device, group);
}

}  // namespace qtune
