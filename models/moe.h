// A sparse (mixture-of-experts) MLP, as Mixtral's block_sparse_moe and Qwen3-MoE's sparse mlp compute it: a router
// scores the E experts per token, each token runs its top-k and sums their outputs weighted by the routing weights.
// Tokens are sorted by expert, so each expert multiplies all of its rows in one GEMM per projection (no per-token
// loop), and every expert's projections are FrozenLinears (4-bit, LoRA) like a dense layer's.
// Legend: N tokens (B·T), D hidden, E experts, k experts per token.
#pragma once

#include "core/torch.h"

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "models/frozen_linear.h"
#include "models/model_config.h"
#include "models/router_balance.h"

namespace qtune {

struct ModelWeights;

// Each token's experts and weights, as transformers' top-k routers pick them.
struct Routing {
  torch::Tensor experts;  // [N, k] int64, highest probability first (torch.topk's order, ties included)
  torch::Tensor weights;  // [N, k]: the softmax probabilities (float32), divided by their sum when renormalized
};

// softmax(logits in float32) -> top-k; renormalized if `renormalize`; weights rounded to `weights_dtype`.
Routing route(const torch::Tensor& router_logits, int64_t k, bool renormalize, at::ScalarType weights_dtype);

// expert(e, rows): expert e on its rows [n_e, D].
using ExpertFn = std::function<torch::Tensor(int64_t, const torch::Tensor&)>;
// experts(rows, sizes): every expert on its rows at once, rows [S, D] sorted by expert with sizes[e] for expert e.
using ExpertRowsFn = std::function<torch::Tensor(const torch::Tensor&, const std::vector<int64_t>&)>;

// Σ_j weights[n, j] · expert_{experts[n, j]}(x[n]) for x [N, D], summed per token in ascending expert order and
// rounded to x's dtype after each addition (transformers' order, so bf16 results match it). `expert` is called
// once per expert that has tokens, in ascending order.
torch::Tensor combine_experts(const torch::Tensor& x, const Routing& routing, int64_t num_experts, const ExpertFn& expert);
// The same with all experts computed by one call (models/expert_bank.h).
torch::Tensor combine_expert_rows(const torch::Tensor& x, const Routing& routing, int64_t num_experts, const ExpertRowsFn& experts);
// rows split by sizes, expert e on its piece, the outputs concatenated: ExpertRowsFn from an ExpertFn.
torch::Tensor run_each_expert(const torch::Tensor& rows, const std::vector<int64_t>& sizes, const ExpertFn& expert);

class MoeBlockImpl : public torch::nn::Module {
 public:
  MoeBlockImpl(const ModelConfig& config, int64_t layer, ModelWeights& weights);
  torch::Tensor forward(const torch::Tensor& x);  // [B, T, D] -> [B, T, D]
  // The router and each expert's gate, up and down projection, by name within the block: "gate", "experts.0.w1", ...
  std::vector<std::pair<std::string, FrozenLinear>> projections();
  int64_t num_experts() const { return static_cast<int64_t>(experts->size()); }

  FrozenLinear gate{nullptr};              // the router: [E, D], in the compute dtype
  torch::nn::ModuleList experts{nullptr};  // E gated MLPs
  // The last forward's router logits [N, E] (detached) and choices [N, k].
  torch::Tensor router_logits, chosen_experts;
  std::shared_ptr<RouterBalance> balance;  // the model's load-balancing loss, shared by its sparse layers

 private:
  int64_t top_k_;
  bool renormalize_;
  bool weights_in_compute_dtype_;
};
TORCH_MODULE(MoeBlock);

}  // namespace qtune
