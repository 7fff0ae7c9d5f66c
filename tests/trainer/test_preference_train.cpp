// Preference training on a tiny 4-bit model in float64: the recipe's loss and LoRA gradients (chosen and
// rejected in one padded forward, prompts masked) equal an independent computation here (each answer
// scored alone with log_softmax, the reference as a second model without LoRA, the papers' formulas),
// rel <= 1e-6 (DPO, IPO, SimPO, ORPO with and without the prompt in its NLL); precomputed reference log-probs change nothing; a frozen
// lora_model_dir adapter is the reference.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

#include "adapters/lora.h"
#include "data/prepare_data.h"
#include "models/model_loader.h"
#include "tests/support/test_support.h"
#include "trainer/training_task.h"

namespace qtune {
namespace {

// A tiny model with the byte tokenizer and 5 pairs of different lengths (one prompt is long).
struct Fixture {
  std::string dir;
  PreparedData data;
};

const Fixture& fixture() {
  static const Fixture f = [] {
    Fixture f;
    f.dir = test::temp_dir("preference_fixture");
    test::make_byte_model(f.dir + "/model");
    std::ofstream out(f.dir + "/pairs.jsonl");
    const std::vector<std::array<const char*, 3>> pairs = {{"parity of 12", "EVEN", "even"},
                                                           {"parity of 7", "ODD", "odd, I think"},
                                                           {"say hi", "Hi there!", "hi"},
                                                           {"a much longer prompt that pads the others", "YES", "no"},
                                                           {"x", "A", "B"}};
    for (const auto& [prompt, chosen, rejected] : pairs) out << nlohmann::json({{"prompt", prompt}, {"chosen", chosen}, {"rejected", rejected}}).dump() << "\n";
    out.close();
    DataConfig config;
    DatasetSpec spec;
    spec.path = f.dir + "/pairs.jsonl";
    spec.type = DatasetType::preference;
    config.datasets = {spec};
    config.chat_template = "chatml";
    config.shuffle = false;
    f.data = prepare_data(config, f.dir + "/model");
    return f;
  }();
  return f;
}

TrainConfig preference_config(const std::string& rl) {
  TrainConfig c;
  c.source = "test.yaml";
  c.rl = rl;
  c.sequence_len = 128;
  c.micro_batch_size = 8;  // every pair in one micro-batch
  c.sample_packing = false;
  c.rl_beta = 0.5;
  c.simpo_gamma = 0.3;
  c.orpo_alpha = 0.2;
  return c;
}

LoadOptions f64_4bit() {
  LoadOptions o;
  o.dtype = at::kDouble;
  o.quantize = QuantizeOptions{};
  return o;
}

// The policy: the 4-bit base + LoRA (no dropout) with random B so that it differs from the base.
CausalLM policy_model(uint64_t seed) {
  CausalLM model = load_causal_lm(fixture().dir + "/model", f64_4bit());
  LoraOptions o;
  o.r = 4;
  o.alpha = 8;
  o.dropout = 0;
  o.target_linear = true;
  o.dtype = at::kDouble;
  inject_lora(model, o, seed);
  torch::manual_seed(seed);
  torch::NoGradGuard no_grad;
  for (auto& [name, t] : lora_state(model))
    if (name.find("lora_B") != std::string::npos) t.copy_(torch::randn(t.sizes(), torch::kDouble) * 0.2);
  return model;
}

// Σ log p(answer token) of one side of pair i, scored alone (no padding, no batching): [] tensor.
torch::Tensor answer_log_prob(CausalLM& model, std::size_t i, int part, bool mean) {
  SampleView v = fixture().data.train.get(i, part);
  std::vector<int64_t> ids(v.ids, v.ids + v.length);
  const torch::Tensor logp = torch::log_softmax(model->forward(torch::tensor(ids).view({1, -1}))[0], -1);  // [T, V]
  torch::Tensor sum = torch::zeros({}, torch::kDouble);
  int64_t count = 0;
  for (std::size_t t = 1; t < v.length; ++t)
    if (v.labels[t] != -100) sum = sum + logp[static_cast<int64_t>(t) - 1][v.labels[t]], ++count;
  EXPECT_GT(count, 0);
  return mean ? sum / static_cast<double>(count) : sum;
}

// Σ log p(token) over every token of one side of pair i but the first (prompt and answer), and how many: ORPO's NLL.
std::pair<torch::Tensor, int64_t> sequence_log_prob(CausalLM& model, std::size_t i, int part) {
  SampleView v = fixture().data.train.get(i, part);
  const torch::Tensor ids = torch::tensor(std::vector<int64_t>(v.ids, v.ids + v.length)).view({1, -1});
  const torch::Tensor logp = torch::log_softmax(model->forward(ids)[0], -1);  // [T, V]
  const torch::Tensor next = ids[0].slice(0, 1).unsqueeze(1);                // [T - 1, 1]
  return {logp.slice(0, 0, -1).gather(1, next).sum(), static_cast<int64_t>(v.length) - 1};
}

struct Outcome {
  double loss;
  std::vector<torch::Tensor> grads;
};

Outcome recipe_step(CausalLM& model, const TrainConfig& config) {
  auto task = make_preference_task(fixture().data, config, torch::kCPU);
  task->prepare(model);
  StepResult r = task->accumulate(model, 0, 1);
  Outcome o{r.loss, {}};
  for (auto& [name, p] : lora_state(model)) {
    o.grads.push_back(p.grad().clone());
    p.mutable_grad().zero_();
  }
  return o;
}

// The papers' losses, written out on per-pair log-probs (mean over pairs), plus ORPO's NLL per token: over the
// chosen rows' prompt and answer (orpo_prompt_loss, as ORPO's code and TRL), or over the answers only.
torch::Tensor independent_loss(const std::string& rl, CausalLM& policy, CausalLM& reference, const TrainConfig& c) {
  const std::size_t n = fixture().data.train.size();
  const bool mean = rl != "dpo";
  torch::Tensor total = torch::zeros({}, torch::kDouble), nll = torch::zeros({}, torch::kDouble);
  int64_t chosen_tokens = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const torch::Tensor pc = answer_log_prob(policy, i, 0, mean), pr = answer_log_prob(policy, i, 1, mean);
    if (rl == "dpo" || rl == "ipo") {
      torch::Tensor rc, rr;
      {
        torch::NoGradGuard no_grad;
        rc = answer_log_prob(reference, i, 0, mean), rr = answer_log_prob(reference, i, 1, mean);
      }
      const torch::Tensor h = (pc - rc) - (pr - rr);
      // DPO: −log σ(β·h); IPO (token-mean log-probs): (h − 1/(2β))².
      total = total + (rl == "dpo" ? -torch::log(torch::sigmoid(c.rl_beta * h)) : (h - 1 / (2 * c.rl_beta)).pow(2));
    } else if (rl == "simpo") {
      total = total - torch::log(torch::sigmoid(c.rl_beta * (pc - pr) - c.simpo_gamma));
    } else {  // orpo: odds(p) = p / (1 − p), p = exp(mean log-prob)
      auto odds = [](const torch::Tensor& log_p) { return torch::exp(log_p) / (1 - torch::exp(log_p)); };
      total = total - c.orpo_alpha * torch::log(torch::sigmoid(torch::log(odds(pc) / odds(pr))));
      if (c.orpo_prompt_loss) {
        const auto [sum, count] = sequence_log_prob(policy, i, 0);
        nll = nll - sum;
        chosen_tokens += count;
      } else {
        const SampleView v = fixture().data.train.get(i, 0);
        int64_t count = 0;
        for (std::size_t t = 1; t < v.length; ++t) count += v.labels[t] != -100;
        nll = nll - pc * static_cast<double>(count);  // mean log-prob × tokens = the sum
        chosen_tokens += count;
      }
    }
  }
  total = total / static_cast<double>(n);
  return rl == "orpo" ? total + nll / static_cast<double>(chosen_tokens) : total;
}

class PreferenceRecipe : public ::testing::TestWithParam<std::string> {};

TEST_P(PreferenceRecipe, LossAndGradientsEqualAnIndependentComputation) {
  const bool answer_only = GetParam() == "orpo_answer_only";
  const std::string rl = answer_only ? "orpo" : GetParam();
  TrainConfig config = preference_config(rl);
  config.orpo_prompt_loss = !answer_only;
  CausalLM policy = policy_model(5);
  CausalLM reference = load_causal_lm(fixture().dir + "/model", f64_4bit());  // the same 4-bit base, no LoRA
  const Outcome recipe = recipe_step(policy, config);

  torch::Tensor loss = independent_loss(rl, policy, reference, config);
  loss.backward();
  EXPECT_NEAR(recipe.loss, loss.item<double>(), 1e-6 * std::abs(loss.item<double>()));
  std::size_t k = 0;
  for (auto& [name, p] : lora_state(policy)) {
    EXPECT_LE(test::max_relative_error(recipe.grads[k++], p.grad()), 1e-6) << name;
  }
}

INSTANTIATE_TEST_SUITE_P(Methods, PreferenceRecipe, ::testing::Values("dpo", "ipo", "simpo", "orpo", "orpo_answer_only"));

TEST(PreferenceRecipe, PrecomputedReferenceLogProbsChangeNothing) {
  TrainConfig config = preference_config("dpo");
  CausalLM a = policy_model(9), b = policy_model(9);
  const Outcome live = recipe_step(a, config);
  config.precompute_ref_log_probs = true;
  const Outcome precomputed = recipe_step(b, config);
  EXPECT_NEAR(live.loss, precomputed.loss, 1e-10);
  for (std::size_t k = 0; k < live.grads.size(); ++k) EXPECT_LE(test::max_relative_error(precomputed.grads[k], live.grads[k]), 1e-9);
}

TEST(PreferenceRecipe, AFrozenStartingAdapterIsTheReference) {
  // DPO from an SFT adapter: the reference is base + that adapter, so before any update h = 0 for every
  // pair: loss log 2, rewards 0. Against the bare base the same policy has another loss.
  const TrainConfig config = preference_config("dpo");
  CausalLM from_adapter = policy_model(3);
  keep_reference_copies(from_adapter);
  auto task = make_preference_task(fixture().data, config, torch::kCPU);
  StepResult r = task->accumulate(from_adapter, 0, 1);
  EXPECT_NEAR(r.loss, std::log(2.0), 1e-12);
  EXPECT_NEAR(metric_or_nan(r.metrics, "rewards/chosen"), 0.0, 1e-12);
  EXPECT_NEAR(metric_or_nan(r.metrics, "rewards/margins"), 0.0, 1e-12);

  CausalLM against_base = policy_model(3);
  StepResult base = make_preference_task(fixture().data, config, torch::kCPU)->accumulate(against_base, 0, 1);
  EXPECT_GT(std::abs(base.loss - std::log(2.0)), 1e-4);
}

TEST(PreferenceRecipe, MetricsCarryTrlNames) {
  CausalLM model = policy_model(4);
  StepResult dpo = make_preference_task(fixture().data, preference_config("dpo"), torch::kCPU)->accumulate(model, 0, 1);
  for (const char* name : {"rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins", "logps/chosen", "logps/rejected",
                           "logits/chosen", "logits/rejected"})
    EXPECT_FALSE(std::isnan(metric_or_nan(dpo.metrics, name))) << name;
  const double margin = metric_or_nan(dpo.metrics, "rewards/chosen") - metric_or_nan(dpo.metrics, "rewards/rejected");
  EXPECT_NEAR(metric_or_nan(dpo.metrics, "rewards/margins"), margin, 1e-12);
  const double accuracy = metric_or_nan(dpo.metrics, "rewards/accuracies");
  EXPECT_NEAR(accuracy * 5, std::round(accuracy * 5), 1e-12);  // a fraction of the 5 pairs
  StepResult orpo = make_preference_task(fixture().data, preference_config("orpo"), torch::kCPU)->accumulate(model, 0, 1);
  for (const char* name : {"nll_loss", "log_odds_ratio", "log_odds_chosen"}) EXPECT_FALSE(std::isnan(metric_or_nan(orpo.metrics, name))) << name;
}

}  // namespace
}  // namespace qtune
