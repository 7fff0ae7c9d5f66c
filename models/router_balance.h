// The routers' load-balancing loss of MoE training (the Switch Transformer's, as transformers' load_balancing_loss_func
// computes it for Mixtral and Qwen3-MoE). Over the L sparse layers of one forward and its M real tokens (padding left
// out), with p = softmax of the router logits (in their dtype) and each token's top-k of p:
//   f_e = #(top-k choices of e) / (L·M),   P_e = Σ p_e / (L·M),   aux = E · Σ_e f_e · P_e.
// f is a count, so aux is linear in each layer's Σ_n p: ∂aux/∂(Σ_n p_le) = E · f_e / (L·M). The layers add that
// gradient themselves in the backward (also when a checkpointed layer is recomputed there), from the counts of the
// whole forward, so the loss never holds the layers' router logits.
#pragma once

#include "core/torch.h"

namespace qtune {

class RouterBalance {
 public:
  // The model's next forward counts f and P; until disarm(), the backward adds weight · ∂aux to the routers.
  void arm(double weight);
  void disarm();
  bool pending() const { return pending_; }

  void begin_forward(const torch::Tensor& real_tokens);  // [N] 1 for a token, 0 for padding (the model calls it)
  void end_forward();
  // A sparse layer's router logits [N, E] (in the compute dtype); returns `out` (its output), in the backward of which
  // the layer's share of weight · ∂aux reaches the logits.
  torch::Tensor add_layer(const torch::Tensor& out, const torch::Tensor& router_logits, int64_t top_k);

  double loss() const;  // aux of the last counted forward (0 before any)
  // weight · ∂aux/∂(Σ_n p_le) for every layer: [E], float64.
  torch::Tensor gradient() const;

 private:
  bool pending_ = false, recording_ = false;
  double weight_ = 0;
  torch::Tensor real_tokens_;         // [N]
  double real_count_ = 0;             // M: Σ real_tokens_, counted once per forward
  torch::Tensor choices_, prob_sums_;  // [E] float64: Σ over layers and real tokens
  int64_t layers_ = 0;
  double rows_ = 0;                    // L·M
};

}  // namespace qtune
