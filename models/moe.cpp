// MoeBlock: routing, expert-sorted dispatch and the weighted sum in transformers' order.
#include "models/moe.h"

#include "models/expert_bank.h"
#include "models/transformer.h"
#include "models/transformer_parts.h"

namespace qtune {

Routing route(const torch::Tensor& router_logits, int64_t k, bool renormalize, at::ScalarType weights_dtype) {
  const torch::Tensor probs = torch::softmax(router_logits.to(torch::kFloat), -1);
  auto [weights, experts] = torch::topk(probs, k, -1);
  if (renormalize) weights = weights / weights.sum(-1, /*keepdim=*/true);
  return {experts, weights.to(weights_dtype)};
}

torch::Tensor run_each_expert(const torch::Tensor& rows, const std::vector<int64_t>& sizes, const ExpertFn& expert) {
  // One split (not a narrow per expert): its backward concatenates the experts' gradients once instead of adding
  // E zero-padded [S, D] ones.
  const std::vector<torch::Tensor> pieces = rows.split_with_sizes(sizes);
  std::vector<torch::Tensor> outputs;
  for (std::size_t e = 0; e < sizes.size(); ++e)
    if (sizes[e] > 0) outputs.push_back(expert(static_cast<int64_t>(e), pieces[e]));
  return torch::cat(outputs);
}

torch::Tensor combine_experts(const torch::Tensor& x, const Routing& routing, int64_t num_experts, const ExpertFn& expert) {
  return combine_expert_rows(x, routing, num_experts,
                             [&](const torch::Tensor& rows, const std::vector<int64_t>& sizes) { return run_each_expert(rows, sizes, expert); });
}

torch::Tensor combine_expert_rows(const torch::Tensor& x, const Routing& routing, int64_t num_experts, const ExpertRowsFn& experts) {
  const int64_t N = x.size(0), k = routing.experts.size(1);
  // Slots (token n, choice j) in expert order; a stable sort keeps each expert's tokens in token order.
  const torch::Tensor slot_expert = routing.experts.reshape(-1);
  const torch::Tensor by_expert = torch::argsort(slot_expert, /*stable=*/true);
  const torch::Tensor rows = x.index_select(0, torch::div(by_expert, k, "floor"));  // [N·k, D]
  const torch::Tensor counts = torch::bincount(slot_expert, {}, num_experts).cpu().contiguous();
  const std::vector<int64_t> sizes(counts.data_ptr<int64_t>(), counts.data_ptr<int64_t>() + num_experts);
  // Weighted in float32 (the routing weights' dtype), then rounded to x's dtype as transformers' index_add_ does.
  const torch::Tensor slot_weights = routing.weights.reshape(-1).index_select(0, by_expert).unsqueeze(1);
  const torch::Tensor weighted = (experts(rows, sizes) * slot_weights).to(x.scalar_type());
  // Back to (token, choice) order with each token's choices by ascending expert: transformers' summation order.
  const torch::Tensor position_of_slot = torch::argsort(by_expert);
  const torch::Tensor choice_order = torch::argsort(routing.experts, /*stable=*/true, /*dim=*/-1);  // [N, k]
  const torch::Tensor slots = (torch::arange(N, routing.experts.options()).unsqueeze(1) * k + choice_order).reshape(-1);
  const torch::Tensor per_token = weighted.index_select(0, position_of_slot.index_select(0, slots)).view({N, k, -1});
  torch::Tensor sum = per_token.select(1, 0);
  for (int64_t j = 1; j < k; ++j) sum = sum + per_token.select(1, j);
  return sum;
}

MoeBlockImpl::MoeBlockImpl(const ModelConfig& config, int64_t layer, ModelWeights& weights)
    : top_k_(config.num_experts_per_tok), renormalize_(config.norm_topk_prob),
      weights_in_compute_dtype_(config.routing_weights_in_compute_dtype) {
  const std::string p = layer_prefix(layer) + config.moe_block_name() + ".";
  gate = register_module("gate", take_projection(weights, p + "gate", false));
  experts = register_module("experts", torch::nn::ModuleList());
  for (int64_t e = 0; e < config.num_experts; ++e)
    experts->push_back(Mlp(config, p + "experts." + std::to_string(e) + ".", config.expert_projection_names(), weights));
}

torch::Tensor MoeBlockImpl::forward(const torch::Tensor& x) {
  const torch::Tensor flat = x.reshape({-1, x.size(-1)});  // [N, D]
  const torch::Tensor logits = gate->forward(flat);  // [N, E], compute dtype
  const Routing routing = route(logits, top_k_, renormalize_, weights_in_compute_dtype_ ? x.scalar_type() : torch::kFloat);
  router_logits = logits.detach();  // kept for inspection only: no graph held past this forward
  chosen_experts = routing.experts;
  const torch::Tensor out = combine_expert_rows(flat, routing, num_experts(), [&](const torch::Tensor& rows, const std::vector<int64_t>& sizes) {
    if (can_group_experts(experts)) return grouped_experts(rows, sizes, experts);
    return run_each_expert(rows, sizes, [&](int64_t e, const torch::Tensor& mine) { return experts[static_cast<std::size_t>(e)]->as<Mlp>()->forward(mine); });
  });
  return balance ? balance->add_layer(out, logits, top_k_).view(x.sizes()) : out.view(x.sizes());
}

std::vector<std::pair<std::string, FrozenLinear>> MoeBlockImpl::projections() {
  std::vector<std::pair<std::string, FrozenLinear>> out = {{"gate", gate}};
  for (std::size_t e = 0; e < experts->size(); ++e)
    for (auto& [name, linear] : experts[e]->as<Mlp>()->projections()) out.emplace_back("experts." + std::to_string(e) + "." + name, linear);
  return out;
}

}  // namespace qtune
