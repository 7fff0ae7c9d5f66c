// The hand-written backwards of RMSNorm, in-place RoPE and SwiGLU against autograd through the plain
// composition of ATen ops (the reference: ATen's own derivative formulas), in float64 and float32, and
// attend()'s mask-free causal path against the explicit mask.
#include <gtest/gtest.h>

#include "models/model_loader.h"
#include "models/rms_norm.h"
#include "models/rope.h"
#include "models/swiglu.h"
#include "models/transformer.h"
#include "tests/support/test_support.h"

namespace qtune {
namespace {

// d(sum(f(x) · probe))/dx for each input through autograd.
std::vector<torch::Tensor> input_gradients(const std::function<torch::Tensor(const std::vector<torch::Tensor>&)>& f,
                                           const std::vector<torch::Tensor>& inputs, const torch::Tensor& probe) {
  std::vector<torch::Tensor> leaves;
  for (const auto& x : inputs) leaves.push_back(x.detach().clone().requires_grad_(true));
  (f(leaves) * probe).sum().backward();
  std::vector<torch::Tensor> grads;
  for (const auto& x : leaves) grads.push_back(x.grad());
  return grads;
}

torch::Tensor plain_rms_norm(const torch::Tensor& x, const torch::Tensor& w, double eps) {
  const torch::Tensor x32 = x.to(x.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat);
  return w * (x32 * torch::rsqrt(x32.pow(2).mean(-1, true) + eps)).to(x.scalar_type());
}

TEST(FusedOps, RmsNormBackwardEqualsAutogradOfTheFormula) {
  torch::manual_seed(0);
  for (auto dtype : {torch::kDouble, torch::kFloat}) {
    const torch::Tensor x = torch::randn({3, 5, 64}, dtype) * 3, w = torch::randn({64}, dtype), probe = torch::randn({3, 5, 64}, dtype);
    RmsNorm norm(w, 1e-6);
    const auto fused = input_gradients([&](const auto& in) { return norm->forward(in[0]); }, {x}, probe);
    const auto plain = input_gradients([&](const auto& in) { return plain_rms_norm(in[0], w, 1e-6); }, {x}, probe);
    EXPECT_LE(test::max_relative_error(fused[0], plain[0]), dtype == torch::kDouble ? 1e-12 : 1e-5);
    EXPECT_TRUE(norm->forward(x).equal(plain_rms_norm(x, w, 1e-6)));  // the forward is the same arithmetic
  }
}

TEST(FusedOps, RmsNormBackwardMatchesCentralDifferences) {
  torch::manual_seed(1);
  const torch::Tensor x = torch::randn({2, 16}, torch::kDouble), w = torch::randn({16}, torch::kDouble), probe = torch::randn({2, 16}, torch::kDouble);
  RmsNorm norm(w, 1e-5);
  const torch::Tensor grad = input_gradients([&](const auto& in) { return norm->forward(in[0]); }, {x}, probe)[0];
  const double h = 1e-6;
  for (int64_t i : {0, 7, 20, 31}) {
    torch::Tensor up = x.clone(), down = x.clone();
    up.view({-1})[i] += h;
    down.view({-1})[i] -= h;
    const double numeric = ((norm->forward(up) - norm->forward(down)) * probe).sum().item<double>() / (2 * h);
    EXPECT_NEAR(grad.view({-1})[i].item<double>(), numeric, 1e-7) << i;
  }
}

TEST(FusedOps, RopeInPlaceEqualsTheCompositionAndItsGradient) {
  torch::manual_seed(2);
  const int64_t B = 2, T = 7, H = 3, Dh = 8;
  const torch::Tensor positions = torch::arange(T).expand({B, T}).contiguous() + torch::tensor({0, 5}).unsqueeze(1);
  for (auto dtype : {torch::kDouble, torch::kFloat}) {
    const RopeTables tables = rope_tables(rope_inverse_frequencies(Dh, 10000.0, RopeScaling{}), positions, dtype);
    const torch::Tensor x = torch::randn({B, T, H * Dh}, dtype), probe = torch::randn({B, T, H * Dh}, dtype);
    // The reference: apply_rope on [B, H, T, Dh], laid back out as [B, T, H·Dh].
    auto plain = [&](const torch::Tensor& in) {
      return apply_rope(in.view({B, T, H, Dh}).transpose(1, 2), tables).transpose(1, 2).reshape({B, T, H * Dh});
    };
    auto fused = [&](const torch::Tensor& in) { return apply_rope_(in * 1.0, tables, Dh); };  // in·1: a fresh non-leaf
    EXPECT_TRUE(fused(x).equal(plain(x)));
    const auto g_fused = input_gradients([&](const auto& in) { return fused(in[0]); }, {x}, probe);
    const auto g_plain = input_gradients([&](const auto& in) { return plain(in[0]); }, {x}, probe);
    EXPECT_LE(test::max_relative_error(g_fused[0], g_plain[0]), dtype == torch::kDouble ? 1e-14 : 1e-6);
  }
}

TEST(FusedOps, RopeRotatesAFreshTensorInPlaceAndCopiesLeavesAndViews) {
  const RopeTables tables = rope_tables(rope_inverse_frequencies(4, 10000.0, RopeScaling{}), torch::arange(3).expand({1, 3}).contiguous(), torch::kFloat);
  torch::Tensor fresh = torch::randn({1, 3, 8}) + 0;
  const torch::Tensor before = fresh.clone();
  torch::Tensor out = apply_rope_(fresh, tables, 4);
  EXPECT_EQ(out.data_ptr(), fresh.data_ptr());
  EXPECT_FALSE(fresh.equal(before));

  torch::Tensor leaf = before.clone().requires_grad_(true);
  out = apply_rope_(leaf, tables, 4);
  EXPECT_NE(out.data_ptr(), leaf.data_ptr());
  EXPECT_TRUE(leaf.equal(before));

  torch::Tensor base = before.clone();
  torch::Tensor view = base.view({1, 3, 2, 4});
  out = apply_rope_(view, tables, 4);
  EXPECT_TRUE(base.equal(before));  // the view's base is untouched
  EXPECT_TRUE(out.view({1, 3, 8}).equal(apply_rope_(before.clone(), tables, 4)));
}

TEST(FusedOps, SwigluBackwardEqualsAutogradOfTheFormula) {
  torch::manual_seed(3);
  for (auto dtype : {torch::kDouble, torch::kFloat}) {
    const torch::Tensor g = torch::randn({4, 9, 32}, dtype) * 4, u = torch::randn({4, 9, 32}, dtype), probe = torch::randn({4, 9, 32}, dtype);
    const auto fused = input_gradients([&](const auto& in) { return swiglu(in[0], in[1]); }, {g, u}, probe);
    const auto plain = input_gradients([&](const auto& in) { return torch::silu(in[0]) * in[1]; }, {g, u}, probe);
    const double tolerance = dtype == torch::kDouble ? 1e-13 : 1e-5;
    EXPECT_LE(test::max_relative_error(fused[0], plain[0]), tolerance);
    EXPECT_LE(test::max_relative_error(fused[1], plain[1]), tolerance);
    EXPECT_TRUE(swiglu(g, u).equal(torch::silu(g) * u));
  }
}

TEST(FusedOps, CausalAttentionWithoutAMaskEqualsTheExplicitMask) {
  torch::manual_seed(4);
  const int64_t B = 2, H = 4, KV = 2, T = 6, Dh = 8;
  const torch::Tensor q = torch::randn({B, H, T, Dh}), k = torch::randn({B, KV, T, Dh}), v = torch::randn({B, KV, T, Dh});
  const torch::Tensor segments = torch::ones({B, T}, torch::kLong);
  const torch::Tensor mask = attention_visibility(segments, segments, 0, std::nullopt);
  EXPECT_TRUE(attend(q, k, v, torch::Tensor(), /*causal=*/true).equal(attend(q, k, v, mask, false)));
}

TEST(FusedOps, ModelOutputsDoNotDependOnWhetherTheMaskIsMade) {
  // A dense batch takes the mask-free causal path; the same rows as explicit segments (a second segment
  // id that never occurs changes nothing but forces the mask) must give the same logits.
  CausalLM model = load_causal_lm(test::make_tiny_model("qwen3"));
  torch::NoGradGuard no_grad;
  torch::manual_seed(5);
  const torch::Tensor ids = torch::randint(3, 300, {2, 12});
  const torch::Tensor dense = model->forward(ids);
  SequenceLayout masked = SequenceLayout::dense(2, 12);
  masked.segment_ids = masked.segment_ids * 2;  // segment 2 everywhere: one sequence per row, but not the fast path
  EXPECT_LE(test::max_relative_error(model->forward(ids, masked), dense), 1e-6);
}

}  // namespace
}  // namespace qtune
