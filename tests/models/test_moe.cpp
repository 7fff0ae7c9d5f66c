// The expert dispatch (models/moe.h) against transformers' algorithm written out plainly here: a loop over the
// experts in ascending order, each taking its tokens' rows and index_add-ing weight · output into a zero result.
// Exact equality in bfloat16 pins the summation order; the backward is checked against its formula and autograd
// through that loop; each expert runs once on all of its rows.
#include <gtest/gtest.h>

#include "models/moe.h"
#include "models/router_balance.h"
#include "tests/support/test_support.h"

namespace qtune {
namespace {

constexpr int64_t kExperts = 6, kTopK = 3, kTokens = 40, kHidden = 8;

// Expert e: x·W_e with a fixed random W_e per expert.
std::vector<torch::Tensor> expert_weights(at::ScalarType dtype) {
  torch::manual_seed(11);
  std::vector<torch::Tensor> w;
  for (int64_t e = 0; e < kExperts; ++e) w.push_back(torch::randn({kHidden, kHidden}, torch::kDouble).to(dtype));
  return w;
}

// transformers' MixtralExperts.forward, as a plain loop (one index_add_ per expert, ascending); expert e is x·W_e
// (tanh(x·W_e) with `activation`).
torch::Tensor transformers_order(const torch::Tensor& x, const Routing& r, const std::vector<torch::Tensor>& w, bool activation = false) {
  torch::Tensor out = torch::zeros_like(x);
  for (int64_t e = 0; e < kExperts; ++e) {
    const torch::Tensor hit = r.experts.eq(e).nonzero();  // [n, 2]: token, choice
    if (hit.size(0) == 0) continue;
    const torch::Tensor token = hit.select(1, 0), choice = hit.select(1, 1);
    const torch::Tensor weight = r.weights.index({token, choice}).unsqueeze(1);
    const torch::Tensor y = torch::matmul(x.index_select(0, token), w[e]);
    out = out.index_add(0, token, ((activation ? torch::tanh(y) : y) * weight).to(x.scalar_type()));
  }
  return out;
}

Routing random_routing(at::ScalarType weights_dtype) {
  torch::manual_seed(5);
  return route(torch::randn({kTokens, kExperts}), kTopK, /*renormalize=*/true, weights_dtype);
}

TEST(Moe, RoutingIsTorchTopkOfTheSoftmaxRenormalized) {
  const torch::Tensor logits = torch::tensor({{0.5, 2.0, -1.0, 2.0}, {1.0, 1.0, 1.0, 1.0}});  // ties in both rows
  const Routing r = route(logits, 2, true, torch::kFloat);
  auto [values, indices] = torch::topk(torch::softmax(logits, -1), 2, -1);
  EXPECT_TRUE(torch::equal(r.experts, indices));
  EXPECT_TRUE(torch::allclose(r.weights, torch::full({2, 2}, 0.5), 0, 1e-7));  // two equal probabilities renormalized
  const Routing raw = route(logits, 2, false, torch::kBFloat16);
  EXPECT_EQ(raw.weights.scalar_type(), torch::kBFloat16);
  EXPECT_TRUE(torch::equal(raw.weights, values.to(torch::kBFloat16)));
}

TEST(Moe, SumsInTransformersOrderToTheBitInBfloat16) {
  const auto w = expert_weights(torch::kBFloat16);
  torch::manual_seed(3);
  const torch::Tensor x = torch::randn({kTokens, kHidden}).to(torch::kBFloat16);
  for (at::ScalarType weights_dtype : {torch::kFloat, torch::kBFloat16}) {  // Mixtral's float32 weights, Qwen3-MoE's rounded ones
    const Routing r = random_routing(weights_dtype);
    const torch::Tensor got = combine_experts(x, r, kExperts, [&](int64_t e, const torch::Tensor& rows) { return torch::matmul(rows, w[e]); });
    EXPECT_TRUE(torch::equal(got, transformers_order(x, r, w))) << c10::toString(weights_dtype);
  }
}

TEST(Moe, EachExpertRunsOnceOnAllItsRowsInTokenOrder) {
  const Routing r = random_routing(torch::kFloat);
  const torch::Tensor x = torch::arange(kTokens, torch::kDouble).unsqueeze(1).expand({kTokens, kHidden}).contiguous();
  std::vector<int64_t> called;
  combine_experts(x, r, kExperts, [&](int64_t e, const torch::Tensor& rows) {
    called.push_back(e);
    const torch::Tensor want = r.experts.eq(e).any(1).nonzero().squeeze(1).to(torch::kDouble);  // its tokens, ascending
    EXPECT_TRUE(torch::equal(rows.select(1, 0), want)) << "expert " << e;
    return rows;
  });
  std::vector<int64_t> hit;
  for (int64_t e = 0; e < kExperts; ++e)
    if (r.experts.eq(e).any().item<bool>()) hit.push_back(e);
  EXPECT_EQ(called, hit);
}

// loss = Σ probe ⊙ Σ_j w_nj · tanh(x_n·W_e): d/dx_n = Σ_j w_nj · (probe_n ⊙ (1 − tanh²))·W_eᵀ in float64.
TEST(Moe, BackwardMatchesTheFormulaAndThePlainLoop) {
  const auto w = expert_weights(torch::kDouble);
  torch::manual_seed(4);
  const torch::Tensor x = torch::randn({kTokens, kHidden}, torch::kDouble).requires_grad_(true);
  const torch::Tensor logits = torch::randn({kTokens, kExperts}, torch::kDouble).requires_grad_(true);
  const torch::Tensor probe = torch::randn({kTokens, kHidden}, torch::kDouble);
  auto loss = [&](const torch::Tensor& xs, const torch::Tensor& ls) {
    const Routing r = route(ls, kTopK, true, torch::kDouble);
    return (combine_experts(xs, r, kExperts, [&](int64_t e, const torch::Tensor& rows) { return torch::tanh(torch::matmul(rows, w[e])); }) * probe).sum();
  };
  loss(x, logits).backward();
  torch::NoGradGuard no_grad;
  const Routing r = route(logits, kTopK, true, torch::kDouble);
  for (int64_t n = 0; n < kTokens; ++n) {
    torch::Tensor want = torch::zeros({kHidden}, torch::kDouble);
    for (int64_t j = 0; j < kTopK; ++j) {
      const torch::Tensor& we = w[r.experts[n][j].item<int64_t>()];
      const torch::Tensor t = torch::tanh(torch::matmul(x[n], we));
      want += r.weights[n][j].item<double>() * torch::matmul(probe[n] * (1 - t * t), we.t());
    }
    EXPECT_LE(test::max_relative_error(x.grad()[n], want), 1e-12) << "token " << n;  // the same products, summed in another order
  }
  // d/dlogits against autograd through the plain loop (transformers_order) with the routing weights taken from the
  // same experts' softmax probabilities in float64: route() rounds the softmax to float32 as transformers does, so
  // the two agree to ~1e-7 relative.
  const torch::Tensor leaf = logits.detach().clone().requires_grad_(true);
  {
    torch::AutoGradMode enable(true);
    const torch::Tensor probs = torch::softmax(leaf, -1).gather(1, r.experts);
    const Routing plain{r.experts, probs / probs.sum(-1, true)};
    (transformers_order(x.detach(), plain, w, /*activation=*/true) * probe).sum().backward();
  }
  EXPECT_LE(test::max_relative_error(logits.grad(), leaf.grad()), 1e-5);
}

// The load-balancing loss (Switch Transformer, transformers' load_balancing_loss_func) written out with autograd over
// two layers' router logits and a padding mask, against RouterBalance's count in the forward and gradient added in
// the backward.
TEST(Moe, LoadBalancingLossAndItsGradientAsTheFormula) {
  torch::manual_seed(8);
  const std::vector<torch::Tensor> logits = {torch::randn({kTokens, kExperts}, torch::kDouble).requires_grad_(true),
                                             torch::randn({kTokens, kExperts}, torch::kDouble).requires_grad_(true)};
  const torch::Tensor real = torch::ones({kTokens}, torch::kDouble).index_fill_(0, torch::arange(30, kTokens), 0);  // 10 padding tokens
  const double weight = 0.25;
  RouterBalance balance;
  balance.arm(weight);
  balance.begin_forward(real);
  const torch::Tensor out = torch::zeros({kTokens, kHidden}, torch::kDouble).requires_grad_(true);
  torch::Tensor y = out;
  for (const auto& z : logits) y = balance.add_layer(y, z, kTopK);
  balance.end_forward();
  (y * 0).sum().backward();  // only the balance's own gradient reaches the logits

  std::vector<torch::Tensor> leaves;
  torch::Tensor counts = torch::zeros({kExperts}, torch::kDouble), probs = torch::zeros({kExperts}, torch::kDouble);
  for (const auto& z : logits) {
    leaves.push_back(z.detach().clone().requires_grad_(true));
    const torch::Tensor p = torch::softmax(leaves.back(), -1);
    const torch::Tensor chosen = std::get<1>(torch::topk(p, kTopK, -1));
    counts = counts + torch::zeros({kExperts}, torch::kDouble).scatter_add(0, chosen.reshape(-1), real.repeat_interleave(kTopK));
    probs = probs + (p * real.unsqueeze(1)).sum(0);
  }
  const double rows = 2 * real.sum().item<double>();
  const torch::Tensor aux = kExperts * ((counts / rows) * (probs / rows)).sum();
  EXPECT_NEAR(balance.loss(), aux.item<double>(), 1e-12);
  (weight * aux).backward();
  for (std::size_t l = 0; l < logits.size(); ++l) EXPECT_LE(test::max_relative_error(logits[l].grad(), leaves[l].grad()), 1e-12) << "layer " << l;
  EXPECT_TRUE(out.grad().eq(0).all().item<bool>());  // the layer output's gradient passes through unchanged
}

}  // namespace
}  // namespace qtune
