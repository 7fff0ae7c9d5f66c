// Gradient buckets across two ranks (this process and a forked child, Gloo on loopback): the gradients
// after finish() are the sums of both ranks' backwards, every bucket of a rank with rows is on its way
// before its backward returns (so the sums overlap the backward), and a rank without rows in a step
// still takes part.
#include <gtest/gtest.h>

#include "models/model_loader.h"
#include "tests/support/test_support.h"
#include "trainer/gradient_reducer.h"

namespace qtune {
namespace {

struct Fixture {
  CausalLM model;
  std::vector<LoraAdapterImpl*> adapters;
};

Fixture adapted_model(const std::string& dir) {
  Fixture f{load_causal_lm(dir), {}};
  LoraOptions o;
  o.r = 4;
  o.alpha = 8;
  o.target_linear = true;
  inject_lora(f.model, o, 3);
  torch::NoGradGuard no_grad;
  torch::manual_seed(4);
  for (auto& [name, p] : lora_state(f.model)) p.uniform_(-0.1, 0.1);
  f.adapters = lora_adapters(f.model);
  return f;
}

// Micro-batch `m` of the test: 2 sequences of 12 tokens, drawn from m.
void backward(CausalLM& model, int m) {
  torch::manual_seed(100 + m);
  const torch::Tensor ids = torch::randint(3, 300, {2, 12}, torch::kLong);
  const torch::Tensor probe = torch::randn({2, 12, 300});
  (model->forward(ids) * probe).sum().backward();
}

// Step 1: rank 0 runs micro-batches 0 and 1, rank 1 runs 2. Step 2: rank 0 runs 3, rank 1 none.
const std::vector<std::vector<std::vector<int>>> kSteps = {{{0, 1}, {2}}, {{3}, {}}};

// The gradients each step should end with: every micro-batch of the step on one rank.
std::vector<std::vector<torch::Tensor>> expected_gradients(const std::string& dir) {
  Fixture f = adapted_model(dir);
  GradientReducer alone(f.adapters, torch::kDouble, nullptr, 1);
  std::vector<std::vector<torch::Tensor>> steps;
  for (const auto& step : kSteps) {
    for (const auto& rank : step)
      for (int m : rank) backward(f.model, m);
    alone.finish();
    steps.emplace_back();
    for (auto& [name, p] : lora_state(f.model)) steps.back().push_back(p.grad().clone());
  }
  return steps;
}

// One rank's side; returns a description of what went wrong, or "".
std::string run_rank(const LaunchEnvironment& e, const std::string& dir) {
  const auto expected = expected_gradients(dir);
  Distributed group(e, std::chrono::seconds(30));
  Fixture f = adapted_model(dir);
  GradientReducer reducer(f.adapters, torch::kDouble, &group, 1);  // 1 byte: a bucket per adapter
  if (reducer.buckets() != f.adapters.size()) return "buckets: " + std::to_string(reducer.buckets());
  for (std::size_t s = 0; s < kSteps.size(); ++s) {
    const auto& mine = kSteps[s][static_cast<std::size_t>(e.rank)];
    for (std::size_t i = 0; i < mine.size(); ++i) {
      if (i + 1 == mine.size()) reducer.last_backward_begins();
      backward(f.model, mine[i]);
      const std::size_t sent = reducer.buckets_sent();
      if (sent != (i + 1 == mine.size() ? reducer.buckets() : 0u))
        return "step " + std::to_string(s + 1) + ": " + std::to_string(sent) + " buckets sent after backward " + std::to_string(i + 1);
    }
    reducer.finish();
    std::size_t k = 0;
    for (auto& [name, p] : lora_state(f.model)) {
      const double error = test::max_relative_error(p.grad(), expected[s][k++]);
      if (!(error <= 1e-6)) return "step " + std::to_string(s + 1) + ": " + name + " off by " + std::to_string(error);
    }
  }
  return "";
}

TEST(GradientReducer, BucketsSentDuringTheLastBackwardSumBothRanks) {
  const std::string dir = test::make_tiny_model("llama");
  test::expect_two_ranks([&](const LaunchEnvironment& e) { return run_rank(e, dir); });
}

}  // namespace
}  // namespace qtune
