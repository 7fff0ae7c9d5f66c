// Chunked target log-probabilities against the full logits through ATen's cross_entropy (the reference),
// values and gradients, with skipped positions, any chunk size, a 4-bit lm_head, and through a LoRA model.
#include <gtest/gtest.h>

#include "adapters/lora.h"
#include "models/chunked_log_probs.h"
#include "models/linear4bit.h"
#include "models/model_loader.h"
#include "tests/support/test_support.h"

namespace qtune {
namespace {

// log p(target) from the whole logits [R, T, V], 0 where the target is -100.
torch::Tensor reference_log_probs(const torch::Tensor& logits, const torch::Tensor& targets) {
  const torch::Tensor flat = logits.reshape({-1, logits.size(-1)});
  return -at::cross_entropy_loss(flat, targets.reshape({-1}), {}, at::Reduction::None, -100, 0.0).view(targets.sizes());
}

struct Case {
  torch::Tensor hidden, weight, targets, probe;
};

Case make_case(at::ScalarType dtype) {
  torch::manual_seed(7);
  const int64_t R = 3, T = 11, D = 16, V = 50;
  Case c{torch::randn({R, T, D}, dtype), torch::randn({V, D}, dtype) * 0.5, torch::randint(0, V, {R, T}), torch::randn({R, T}, dtype)};
  c.targets.index_put_({0, torch::indexing::Slice(0, 4)}, -100);  // a prompt
  c.targets.index_put_({2, torch::indexing::Slice()}, -100);      // a row with nothing to train
  c.targets.index_put_({1, 5}, -100);
  return c;
}

TEST(ChunkedLogProbs, ValuesAndGradientsEqualTheFullLogits) {
  const Case c = make_case(torch::kDouble);
  const DenseWeight head(c.weight);
  const torch::Tensor leaf_full = c.hidden.clone().requires_grad_(true);
  const torch::Tensor logits = torch::matmul(leaf_full, c.weight.t());
  const torch::Tensor expected = reference_log_probs(logits, c.targets);
  (expected * c.probe).sum().backward();
  for (int64_t chunk : {1, 3, 4, 1000}) {
    SCOPED_TRACE(chunk);
    const torch::Tensor leaf = c.hidden.clone().requires_grad_(true);
    const TargetScores got = target_scores_from_hidden(leaf, head, c.targets, /*with_logit_sums=*/true, chunk);
    EXPECT_LE(test::max_relative_error(got.log_probs, expected), 1e-13);
    EXPECT_TRUE(got.log_probs.detach().masked_select(c.targets.eq(-100)).eq(0).all().item<bool>());
    const torch::Tensor expected_sums = logits.detach().sum(2) * c.targets.ne(-100);
    EXPECT_LE(test::max_relative_error(got.logit_sums, expected_sums), 1e-13);
    (got.log_probs * c.probe).sum().backward();
    EXPECT_LE(test::max_relative_error(leaf.grad(), leaf_full.grad()), 1e-12);
  }
}

// Gemma 2's final soft-capping c·tanh(z/c): values, logit sums and the gradient against autograd through the capped
// logits.
TEST(ChunkedLogProbs, SoftCappedLogitsEqualAutogradThroughTheCap) {
  const Case c = make_case(torch::kDouble);
  const double cap = 3.0;  // below the logits' range (|z| up to ~10 here), so the cap bends them
  const torch::Tensor leaf_full = c.hidden.clone().requires_grad_(true);
  const torch::Tensor logits = torch::tanh(torch::matmul(leaf_full, c.weight.t()) / cap) * cap;
  const torch::Tensor expected = reference_log_probs(logits, c.targets);
  (expected * c.probe).sum().backward();
  const torch::Tensor leaf = c.hidden.clone().requires_grad_(true);
  const TargetScores got = target_scores_from_hidden(leaf, DenseWeight(c.weight), c.targets, true, 4, cap);
  EXPECT_LE(test::max_relative_error(got.log_probs, expected), 1e-13);
  EXPECT_LE(test::max_relative_error(got.logit_sums, logits.detach().sum(2) * c.targets.ne(-100)), 1e-13);
  (got.log_probs * c.probe).sum().backward();
  EXPECT_LE(test::max_relative_error(leaf.grad(), leaf_full.grad()), 1e-12);
  const TargetScores uncapped = target_scores_from_hidden(c.hidden, DenseWeight(c.weight), c.targets);
  EXPECT_GT(test::max_relative_error(uncapped.log_probs, expected), 0.1) << "the cap must change the scores";
}

TEST(ChunkedLogProbs, FourBitHeadEqualsItsDequantizedWeight) {
  const Case c = make_case(torch::kFloat);
  const QuantizedWeight head(quantize_4bit(c.weight, QuantType::NF4, 64, true, "lm_head"));
  const torch::Tensor expected = reference_log_probs(torch::matmul(c.hidden, head.dequantize().t()), c.targets);
  torch::NoGradGuard no_grad;
  const TargetScores got = target_scores_from_hidden(c.hidden, head, c.targets, false, 5);
  EXPECT_LE(test::max_relative_error(got.log_probs, expected), 1e-5);
  EXPECT_FALSE(got.log_probs.requires_grad());
  EXPECT_FALSE(got.logit_sums.defined());
}

TEST(ChunkedLogProbs, LoraGradientsThroughTheModelEqualTheFullLogitsLoss) {
  CausalLM model = load_causal_lm(test::make_tiny_model("llama"));
  LoraOptions options;
  options.r = 4;
  options.dropout = 0;
  options.target_linear = true;
  inject_lora(model, options, 3);
  for (auto& [name, p] : lora_state(model)) {
    torch::NoGradGuard no_grad;
    p.normal_(0, 0.05);
  }
  torch::manual_seed(2);
  const torch::Tensor ids = torch::randint(3, 300, {2, 9});
  torch::Tensor targets = torch::randint(3, 300, {2, 9});
  targets.index_put_({1, torch::indexing::Slice(0, 3)}, -100);
  const SequenceLayout layout = SequenceLayout::dense(2, 9);

  (-reference_log_probs(model->forward(ids, layout).to(torch::kFloat), targets).sum()).backward();
  std::vector<torch::Tensor> expected;
  for (auto& [name, p] : lora_state(model)) expected.push_back(p.grad().clone()), p.mutable_grad().zero_();
  (-target_scores(model, ids, layout, targets).log_probs.sum()).backward();
  std::size_t i = 0;
  for (auto& [name, p] : lora_state(model)) EXPECT_LE(test::max_relative_error(p.grad(), expected[i++]), 1e-4) << name;
}

}  // namespace
}  // namespace qtune
