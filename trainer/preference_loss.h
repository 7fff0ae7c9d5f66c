// Preference losses on per-pair log-probabilities, as the papers define them (and TRL names them).
//
// Legend: per pair, πc and πr are the policy's log-probabilities of the chosen and rejected answer
// (summed over answer tokens, or averaged where marked "mean"), ρc and ρr the reference model's,
// β = rl_beta, ε = dpo_label_smoothing, σ the logistic function, h = (πc − πr) − (ρc − ρr).
//
//   DPO  sigmoid  −(1−ε)·log σ(β·h) − ε·log σ(−β·h)             (Rafailov et al. 2023; cDPO for ε > 0)
//        robust   (−(1−ε)·log σ(β·h) + ε·log σ(−β·h)) / (1−2ε)   (Chowdhury et al. 2024)
//        hinge    max(0, 1 − β·h)                                (SLiC, Zhao et al. 2023)
//        ipo      (h − 1/(2β))², log-probs as token means        (Azar et al. 2023; TRL's normalization)
//   SimPO         −(1−ε)·log σ(β·(πc−πr) − γ) − ε·log σ(−(β·(πc−πr) − γ)), token means, no reference (Meng et al. 2024)
//   ORPO          −λ·log σ(log odds(πc) − log odds(πr)),  log odds(p) = p − log(1 − eᵖ), token means (Hong et al. 2024)
//                 plus the NLL of the chosen rows (prompt and answer, or the answer only: nll_on_prompt),
//                 which the caller adds per token (see nll_weight).
//
// Rewards (metrics): DPO β·(π − ρ); SimPO β·π; ORPO λ·π.
#pragma once

#include "core/torch.h"

#include <string>

namespace qtune {

enum class PreferenceMethod { Dpo, Simpo, Orpo };
enum class DpoLoss { Sigmoid, Ipo, Robust, Hinge };

struct PreferenceObjective {
  PreferenceMethod method = PreferenceMethod::Dpo;
  DpoLoss dpo_loss = DpoLoss::Sigmoid;
  double beta = 0.1;             // DPO/IPO/SimPO β
  double label_smoothing = 0;    // ε
  double simpo_gamma = 0.5;      // γ
  double orpo_alpha = 0.1;       // λ
  double cpo_alpha = 0;          // SimPO's optional NLL weight
  // Whether the NLL covers the chosen row's prompt as well as its answer: ORPO's authors' code and TRL's
  // ORPOTrainer do (orpo_prompt_loss, default true); LLaMA-Factory and CPO/SimPO take the answer only.
  bool nll_on_prompt = false;

  bool needs_reference() const { return method == PreferenceMethod::Dpo; }
  // Whether log-probs enter the loss as per-token means rather than sums.
  bool mean_log_probs() const { return method != PreferenceMethod::Dpo || dpo_loss == DpoLoss::Ipo; }
  // Weight of the chosen answers' per-token NLL added to the loss (ORPO 1, SimPO cpo_alpha, DPO 0).
  double nll_weight() const { return method == PreferenceMethod::Orpo ? 1.0 : method == PreferenceMethod::Simpo ? cpo_alpha : 0.0; }
};

// From the config's rl / dpo_loss_type values (already validated by TrainConfig).
PreferenceObjective make_preference_objective(const std::string& rl, const std::string& dpo_loss_type, double beta, double label_smoothing,
                                              double simpo_gamma, double orpo_alpha, double cpo_alpha);

// Per-pair log-probs, [N] each, as the objective wants them (sums, or means when mean_log_probs()).
struct PairLogProbs {
  torch::Tensor chosen, rejected;
};

struct PreferenceTerms {
  torch::Tensor losses;                     // [N], differentiable
  torch::Tensor chosen_rewards, rejected_rewards;  // [N], detached
  torch::Tensor log_odds;                   // ORPO only: [N] log odds ratio, detached
  torch::Tensor log_sigmoid_odds;           // ORPO only: [N] log σ(log odds ratio), detached
};

// `reference` is required (defined tensors) exactly when objective.needs_reference().
PreferenceTerms preference_terms(const PreferenceObjective& objective, const PairLogProbs& policy, const PairLogProbs& reference);

}  // namespace qtune
