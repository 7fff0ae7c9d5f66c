// The preference formulas.
#include "trainer/preference_loss.h"

#include "core/error.h"

namespace qtune {
namespace {

// −(1−ε)·log σ(z) − ε·log σ(−z): the logistic loss on z with labels flipped with probability ε.
torch::Tensor smoothed_logistic(const torch::Tensor& z, double epsilon) {
  return -(1 - epsilon) * torch::log_sigmoid(z) - epsilon * torch::log_sigmoid(-z);
}

// log(p / (1 − p)) for p = eˣ: x − log(1 − eˣ), with log(−expm1(x)) accurate as x → 0⁻.
torch::Tensor log_odds_of(const torch::Tensor& log_p) { return log_p - torch::log(-torch::expm1(log_p)); }

}  // namespace

PreferenceObjective make_preference_objective(const std::string& rl, const std::string& dpo_loss_type, double beta, double label_smoothing,
                                              double simpo_gamma, double orpo_alpha, double cpo_alpha) {
  PreferenceObjective o;
  o.method = rl == "orpo" ? PreferenceMethod::Orpo : rl == "simpo" ? PreferenceMethod::Simpo : PreferenceMethod::Dpo;
  o.dpo_loss = rl == "ipo" || dpo_loss_type == "ipo" ? DpoLoss::Ipo
               : dpo_loss_type == "robust"             ? DpoLoss::Robust
               : dpo_loss_type == "hinge"              ? DpoLoss::Hinge
                                                       : DpoLoss::Sigmoid;
  o.beta = beta;
  o.label_smoothing = label_smoothing;
  o.simpo_gamma = simpo_gamma;
  o.orpo_alpha = orpo_alpha;
  o.cpo_alpha = cpo_alpha;
  return o;
}

PreferenceTerms preference_terms(const PreferenceObjective& o, const PairLogProbs& policy, const PairLogProbs& reference) {
  TORCH_CHECK(o.needs_reference() == (reference.chosen.defined() && reference.rejected.defined()),
              "reference log-probs are needed exactly for DPO");
  PreferenceTerms t;
  const double beta = o.beta, eps = o.label_smoothing;
  switch (o.method) {
    case PreferenceMethod::Dpo: {
      const torch::Tensor chosen_ratio = policy.chosen - reference.chosen;
      const torch::Tensor rejected_ratio = policy.rejected - reference.rejected;
      const torch::Tensor h = chosen_ratio - rejected_ratio;
      switch (o.dpo_loss) {
        case DpoLoss::Sigmoid: t.losses = smoothed_logistic(beta * h, eps); break;
        case DpoLoss::Robust:
          t.losses = (-(1 - eps) * torch::log_sigmoid(beta * h) + eps * torch::log_sigmoid(-beta * h)) / (1 - 2 * eps);
          break;
        case DpoLoss::Hinge: t.losses = torch::relu(1 - beta * h); break;
        case DpoLoss::Ipo: t.losses = (h - 1 / (2 * beta)).pow(2); break;
      }
      t.chosen_rewards = beta * chosen_ratio.detach();
      t.rejected_rewards = beta * rejected_ratio.detach();
      break;
    }
    case PreferenceMethod::Simpo:
      t.losses = smoothed_logistic(beta * (policy.chosen - policy.rejected) - o.simpo_gamma, eps);
      t.chosen_rewards = beta * policy.chosen.detach();
      t.rejected_rewards = beta * policy.rejected.detach();
      break;
    case PreferenceMethod::Orpo: {
      const torch::Tensor log_odds = log_odds_of(policy.chosen) - log_odds_of(policy.rejected);
      const torch::Tensor log_sigmoid_odds = torch::log_sigmoid(log_odds);
      t.losses = -o.orpo_alpha * log_sigmoid_odds;
      t.log_odds = log_odds.detach();
      t.log_sigmoid_odds = log_sigmoid_odds.detach();
      t.chosen_rewards = o.orpo_alpha * policy.chosen.detach();
      t.rejected_rewards = o.orpo_alpha * policy.rejected.detach();
      break;
    }
  }
  return t;
}

}  // namespace qtune
