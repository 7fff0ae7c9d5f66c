// The preference losses against the published formulas written out here in plain double arithmetic,
// with their derivatives worked by hand: DPO (sigmoid, cDPO label smoothing), robust DPO, hinge, IPO,
// SimPO and ORPO, losses and gradients on fixed log-probs (rel <= 1e-6 in fp64), and the rewards.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "tests/support/test_support.h"
#include "trainer/preference_loss.h"

namespace qtune {
namespace {

double sigmoid(double z) { return 1 / (1 + std::exp(-z)); }
double log_sigmoid(double z) { return std::log(sigmoid(z)); }

// One pair's loss and its partial derivatives by the policy's chosen and rejected log-prob.
struct Expected {
  double loss, d_chosen, d_rejected;
};
// (πc, πr, ρc, ρr) -> Expected
using Formula = std::function<Expected(double, double, double, double)>;

// Fixed log-probs for 6 pairs (the IPO/SimPO/ORPO ones are token means, so small; DPO's are sums).
const std::vector<double> kPolicyChosen = {-12.5, -3.25, -40.0, -7.75, -0.5, -20.0};
const std::vector<double> kPolicyRejected = {-14.0, -2.5, -38.0, -9.0, -0.75, -26.0};
const std::vector<double> kReferenceChosen = {-13.0, -3.0, -39.5, -8.0, -0.625, -21.0};
const std::vector<double> kReferenceRejected = {-13.5, -2.75, -38.5, -8.5, -0.7, -24.0};

torch::Tensor tensor(const std::vector<double>& v, bool grad) { return torch::tensor(v, torch::kDouble).set_requires_grad(grad); }

// Runs preference_terms on the fixed log-probs (scaled by `scale`) and compares the mean loss and
// its gradient with `formula`.
void expect_matches(const PreferenceObjective& objective, const Formula& formula, double scale = 1.0) {
  auto scaled = [&](const std::vector<double>& v) {
    std::vector<double> out;
    for (double x : v) out.push_back(x * scale);
    return out;
  };
  const auto pc = scaled(kPolicyChosen), pr = scaled(kPolicyRejected), rc = scaled(kReferenceChosen), rr = scaled(kReferenceRejected);
  PairLogProbs policy{tensor(pc, true), tensor(pr, true)};
  PairLogProbs reference;
  if (objective.needs_reference()) reference = {tensor(rc, false), tensor(rr, false)};
  PreferenceTerms terms = preference_terms(objective, policy, reference);
  torch::Tensor mean = terms.losses.mean();
  mean.backward();

  const double n = static_cast<double>(pc.size());
  double expected_mean = 0;
  std::vector<double> d_chosen, d_rejected;
  for (std::size_t i = 0; i < pc.size(); ++i) {
    Expected e = formula(pc[i], pr[i], rc[i], rr[i]);
    expected_mean += e.loss / n;
    d_chosen.push_back(e.d_chosen / n);
    d_rejected.push_back(e.d_rejected / n);
  }
  EXPECT_NEAR(mean.item<double>(), expected_mean, 1e-6 * std::abs(expected_mean));
  EXPECT_LE(test::max_relative_error(policy.chosen.grad(), torch::tensor(d_chosen, torch::kDouble)), 1e-6);
  EXPECT_LE(test::max_relative_error(policy.rejected.grad(), torch::tensor(d_rejected, torch::kDouble)), 1e-6);
}

PreferenceObjective dpo(DpoLoss loss, double beta, double epsilon = 0) {
  PreferenceObjective o;
  o.method = PreferenceMethod::Dpo;
  o.dpo_loss = loss;
  o.beta = beta;
  o.label_smoothing = epsilon;
  return o;
}

// DPO paper: L = −log σ(β·((πc − ρc) − (πr − ρr))); cDPO mixes in the flipped label with weight ε.
Formula dpo_sigmoid(double beta, double eps) {
  return [=](double pc, double pr, double rc, double rr) {
    const double z = beta * ((pc - rc) - (pr - rr));
    const double dz = -(1 - eps) * (1 - sigmoid(z)) + eps * sigmoid(z);  // dL/dz
    return Expected{-(1 - eps) * log_sigmoid(z) - eps * log_sigmoid(-z), dz * beta, -dz * beta};
  };
}

TEST(PreferenceLoss, DpoSigmoidAndConservativeDpo) {
  expect_matches(dpo(DpoLoss::Sigmoid, 0.1), dpo_sigmoid(0.1, 0));
  expect_matches(dpo(DpoLoss::Sigmoid, 0.5, 0.2), dpo_sigmoid(0.5, 0.2));
}

TEST(PreferenceLoss, RobustDpo) {
  const double beta = 0.3, eps = 0.15;
  expect_matches(dpo(DpoLoss::Robust, beta, eps), [=](double pc, double pr, double rc, double rr) {
    const double z = beta * ((pc - rc) - (pr - rr));
    const double loss = (-(1 - eps) * log_sigmoid(z) + eps * log_sigmoid(-z)) / (1 - 2 * eps);
    const double dz = (-(1 - eps) * (1 - sigmoid(z)) - eps * sigmoid(z)) / (1 - 2 * eps);
    return Expected{loss, dz * beta, -dz * beta};
  });
}

TEST(PreferenceLoss, Hinge) {
  const double beta = 2.0;  // some pairs beyond the margin (zero gradient), some inside
  expect_matches(dpo(DpoLoss::Hinge, beta), [=](double pc, double pr, double rc, double rr) {
    const double z = beta * ((pc - rc) - (pr - rr));
    return z < 1 ? Expected{1 - z, -beta, beta} : Expected{0, 0, 0};
  });
}

TEST(PreferenceLoss, Ipo) {
  const double beta = 0.1;
  PreferenceObjective o = dpo(DpoLoss::Ipo, beta);
  EXPECT_TRUE(o.mean_log_probs());
  expect_matches(o, [=](double pc, double pr, double rc, double rr) {
    const double h = (pc - rc) - (pr - rr);
    const double d = 2 * (h - 1 / (2 * beta));
    return Expected{(h - 1 / (2 * beta)) * (h - 1 / (2 * beta)), d, -d};
  }, 0.05);
}

TEST(PreferenceLoss, Simpo) {
  PreferenceObjective o;
  o.method = PreferenceMethod::Simpo;
  o.beta = 2.0;
  o.simpo_gamma = 0.8;
  EXPECT_FALSE(o.needs_reference());
  EXPECT_TRUE(o.mean_log_probs());
  EXPECT_EQ(o.nll_weight(), 0.0);
  expect_matches(o, [&](double pc, double pr, double, double) {
    const double z = o.beta * (pc - pr) - o.simpo_gamma;
    const double dz = -(1 - sigmoid(z));
    return Expected{-log_sigmoid(z), dz * o.beta, -dz * o.beta};
  }, 0.05);
}

TEST(PreferenceLoss, OrpoOddsRatio) {
  PreferenceObjective o;
  o.method = PreferenceMethod::Orpo;
  o.orpo_alpha = 0.25;
  EXPECT_EQ(o.nll_weight(), 1.0);
  // ORPO paper: odds(p) = p / (1 − p) with p = exp(mean log-prob); L_OR = −log σ(log(odds(c) / odds(r))).
  auto log_odds = [](double log_p) { return std::log(std::exp(log_p) / (1 - std::exp(log_p))); };
  expect_matches(o, [&](double pc, double pr, double, double) {
    const double x = log_odds(pc) - log_odds(pr);
    const double d = -o.orpo_alpha * (1 - sigmoid(x));  // dL/dx; dx/dpc = 1/(1 − e^pc), dx/dpr = −1/(1 − e^pr)
    return Expected{-o.orpo_alpha * log_sigmoid(x), d / (1 - std::exp(pc)), -d / (1 - std::exp(pr))};
  }, 0.05);
}

TEST(PreferenceLoss, RewardsAreBetaTimesTheLogRatios) {
  PairLogProbs policy{tensor(kPolicyChosen, false), tensor(kPolicyRejected, false)};
  PairLogProbs reference{tensor(kReferenceChosen, false), tensor(kReferenceRejected, false)};
  PreferenceTerms t = preference_terms(dpo(DpoLoss::Sigmoid, 0.1), policy, reference);
  for (std::size_t i = 0; i < kPolicyChosen.size(); ++i) {
    const auto k = static_cast<int64_t>(i);
    EXPECT_NEAR(t.chosen_rewards[k].item<double>(), 0.1 * (kPolicyChosen[i] - kReferenceChosen[i]), 1e-12);
    EXPECT_NEAR(t.rejected_rewards[k].item<double>(), 0.1 * (kPolicyRejected[i] - kReferenceRejected[i]), 1e-12);
  }
  EXPECT_THROW(preference_terms(dpo(DpoLoss::Sigmoid, 0.1), policy, PairLogProbs{}), c10::Error);  // DPO needs the reference
}

TEST(PreferenceLoss, ObjectiveFromConfigValues) {
  EXPECT_EQ(make_preference_objective("ipo", "sigmoid", 0.1, 0, 0.5, 0.1, 0).dpo_loss, DpoLoss::Ipo);
  EXPECT_EQ(make_preference_objective("dpo", "hinge", 0.1, 0, 0.5, 0.1, 0).dpo_loss, DpoLoss::Hinge);
  EXPECT_FALSE(make_preference_objective("dpo", "sigmoid", 0.1, 0, 0.5, 0.1, 0).mean_log_probs());
  EXPECT_EQ(make_preference_objective("orpo", "sigmoid", 0.1, 0, 0.5, 0.1, 0).method, PreferenceMethod::Orpo);
  EXPECT_EQ(make_preference_objective("simpo", "sigmoid", 0.1, 0, 0.5, 0.1, 0.3).nll_weight(), 0.3);
}

}  // namespace
}  // namespace qtune
