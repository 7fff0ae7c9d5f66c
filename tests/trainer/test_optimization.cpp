// The LR schedules against their closed forms (transformers' definitions) and AdamW against the update
// written out by hand, including a save/restore of its state mid-way.
#include <gtest/gtest.h>

#include <cmath>

#include "trainer/adamw.h"
#include "trainer/lr_schedule.h"

namespace qtune {
namespace {

TEST(LrSchedule, MatchesTheClosedForms) {
  LrSchedule cosine{"cosine", 10, 110, 0.0};
  EXPECT_DOUBLE_EQ(cosine.factor(0), 0.0);
  EXPECT_DOUBLE_EQ(cosine.factor(5), 0.5);
  EXPECT_DOUBLE_EQ(cosine.factor(10), 1.0);
  EXPECT_NEAR(cosine.factor(60), 0.5, 1e-12);  // half way through the decay
  EXPECT_NEAR(cosine.factor(110), 0.0, 1e-12);
  LrSchedule floor{"cosine", 0, 100, 0.1};
  EXPECT_NEAR(floor.factor(100), 0.1, 1e-12);
  EXPECT_NEAR(floor.factor(50), 0.1 + 0.9 * 0.5, 1e-12);
  LrSchedule linear{"linear", 4, 24, 0.0};
  EXPECT_DOUBLE_EQ(linear.factor(2), 0.5);
  EXPECT_DOUBLE_EQ(linear.factor(14), 0.5);
  EXPECT_DOUBLE_EQ(linear.factor(24), 0.0);
  EXPECT_DOUBLE_EQ((LrSchedule{"constant", 5, 10, 0}.factor(0)), 1.0);
  EXPECT_DOUBLE_EQ((LrSchedule{"constant_with_warmup", 4, 10, 0}.factor(1)), 0.25);
  EXPECT_EQ(warmup_steps_for(0, 0.1, 95), 10);  // ceil(9.5)
  EXPECT_EQ(warmup_steps_for(7, 0.5, 95), 7);
}

TEST(AdamW, MatchesTheUpdateWrittenOut) {
  torch::manual_seed(0);
  torch::Tensor p = torch::randn({3, 4}, torch::kDouble).set_requires_grad(true);
  torch::Tensor expected = p.detach().clone(), m = torch::zeros_like(expected), v = torch::zeros_like(expected);
  const double lr = 0.01, b1 = 0.9, b2 = 0.99, eps = 1e-8, wd = 0.1;
  AdamW optimizer({{"p", p, 1.0, wd}}, {b1, b2, eps});
  for (int t = 1; t <= 5; ++t) {
    torch::Tensor g = torch::randn({3, 4}, torch::kDouble);
    p.mutable_grad() = g.clone();
    optimizer.step(lr);
    optimizer.zero_grad();
    expected = expected * (1 - lr * wd);
    m = b1 * m + (1 - b1) * g;
    v = b2 * v + (1 - b2) * g * g;
    const torch::Tensor m_hat = m / (1 - std::pow(b1, t)), v_hat = v / (1 - std::pow(b2, t));
    expected = expected - lr * m_hat / (v_hat.sqrt() + eps);
    // Moments are kept in fp32, hence the tolerance.
    EXPECT_LT((p.detach() - expected).abs().max().item<double>(), 1e-6) << t;
  }
  // Restoring the state into a fresh optimizer continues identically.
  torch::Tensor q = p.detach().clone().set_requires_grad(true);
  AdamW restored({{"p", q, 1.0, wd}}, {b1, b2, eps});
  restored.load_state(optimizer.state(), optimizer.steps_taken(), "test");
  torch::Tensor g = torch::randn({3, 4}, torch::kDouble);
  p.mutable_grad() = g.clone();
  q.mutable_grad() = g.clone();
  optimizer.step(lr);
  restored.step(lr);
  EXPECT_TRUE(p.detach().equal(q.detach()));
}

}  // namespace
}  // namespace qtune
