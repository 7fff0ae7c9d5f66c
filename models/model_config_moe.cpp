// The mixture-of-experts keys of Mixtral (MixtralConfig) and Qwen3-MoE (Qwen3MoeConfig), with transformers'
// defaults, and the names of a sparse layer's modules as the published checkpoints store them.
#include <algorithm>

#include "core/json_file.h"
#include "models/model_config_internal.h"

namespace qtune {

bool ModelConfig::is_sparse_layer(int64_t layer) const {
  if (num_experts == 0) return false;
  if (std::find(mlp_only_layers.begin(), mlp_only_layers.end(), layer) != mlp_only_layers.end()) return false;
  return (layer + 1) % decoder_sparse_step == 0;
}

std::string ModelConfig::moe_block_name() const { return arch == Architecture::kMixtral ? "block_sparse_moe" : "mlp"; }

std::vector<std::string> ModelConfig::expert_projection_names() const {
  if (arch == Architecture::kMixtral) return {"w1", "w3", "w2"};
  return {"gate_proj", "up_proj", "down_proj"};
}

std::vector<std::string> ModelConfig::layer_projection_names(int64_t layer) const {
  std::vector<std::string> names;
  if (fused_projections) names = {"self_attn.qkv_proj", "self_attn.o_proj"};
  else names = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"};
  if (!is_sparse_layer(layer)) {
    if (fused_projections) names.insert(names.end(), {"mlp.gate_up_proj", "mlp.down_proj"});
    else names.insert(names.end(), {"mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"});
    return names;
  }
  const std::string block = moe_block_name() + ".";
  names.push_back(block + "gate");
  for (int64_t e = 0; e < num_experts; ++e)
    for (const auto& p : expert_projection_names()) names.push_back(block + "experts." + std::to_string(e) + "." + p);
  return names;
}

void apply_moe_switches(ModelConfig& c) {
  c.rope_theta = 1000000.0;
  if (c.arch == Architecture::kMixtral) {  // Mixtral 8x7B's: 8 experts, top 2, each as wide as the dense MLP
    c.rms_norm_eps = 1e-5;
    c.max_position_embeddings = 32768;
    c.num_experts = 8;
    c.num_experts_per_tok = 2;
    return;
  }
  c.qk_norm = true;  // Qwen3-30B-A3B's: 128 experts, top 8, renormalized
  c.max_position_embeddings = 40960;
  c.num_experts = 128;
  c.num_experts_per_tok = 8;
  c.norm_topk_prob = true;
  c.routing_weights_in_compute_dtype = true;
}

void read_moe_keys(const nlohmann::json& json, const std::string& where, ModelConfig& c) {
  const bool mixtral = c.arch == Architecture::kMixtral;
  // transformers 5 writes num_local_experts for both families; the published Qwen3-MoE configs say num_experts.
  const int64_t fallback = mixtral ? 8 : 128;
  c.num_experts = json_optional<int64_t>(json, "num_local_experts", where, json_optional<int64_t>(json, "num_experts", where, fallback));
  c.num_experts_per_tok = json_optional<int64_t>(json, "num_experts_per_tok", where, mixtral ? 2 : 8);
  c.router_aux_loss_coef = json_optional<double>(json, "router_aux_loss_coef", where, 0.001);
  c.output_router_logits = json_optional<bool>(json, "output_router_logits", where, false);
  if (mixtral) {
    c.moe_intermediate_size = c.intermediate_size;
    c.norm_topk_prob = true;
    if (json_optional<double>(json, "router_jitter_noise", where, 0.0) != 0.0)
      input_error("{}: router_jitter_noise is not supported (training noise on the router's input); set it to 0", where);
    return;
  }
  c.moe_intermediate_size = json_optional<int64_t>(json, "moe_intermediate_size", where, 768);
  c.norm_topk_prob = json_optional<bool>(json, "norm_topk_prob", where, false);
  c.routing_weights_in_compute_dtype = true;
  c.decoder_sparse_step = json_optional<int64_t>(json, "decoder_sparse_step", where, 1);
  c.mlp_only_layers = json_optional<std::vector<int64_t>>(json, "mlp_only_layers", where, {});
}

void write_moe_keys(const ModelConfig& c, nlohmann::ordered_json& j) {
  j["num_experts_per_tok"] = c.num_experts_per_tok;
  j["router_aux_loss_coef"] = c.router_aux_loss_coef;
  j["output_router_logits"] = c.output_router_logits;
  if (c.arch == Architecture::kMixtral) {
    j["num_local_experts"] = c.num_experts;
    j["router_jitter_noise"] = 0.0;
    return;
  }
  j["num_experts"] = c.num_experts;
  j["moe_intermediate_size"] = c.moe_intermediate_size;
  j["norm_topk_prob"] = c.norm_topk_prob;
  j["decoder_sparse_step"] = c.decoder_sparse_step;
  j["mlp_only_layers"] = c.mlp_only_layers;
}

void validate_moe_settings(const ModelConfig& c, const std::string& where) {
  if (c.arch != Architecture::kMixtral && c.arch != Architecture::kQwen3Moe) return;
  if (c.num_experts <= 0) input_error("{}: the number of experts (num_local_experts / num_experts) must be > 0, got {}", where, c.num_experts);
  if (c.num_experts_per_tok <= 0 || c.num_experts_per_tok > c.num_experts)
    input_error("{}: num_experts_per_tok must be in [1, {}] (the number of experts), got {}", where, c.num_experts, c.num_experts_per_tok);
  if (c.moe_intermediate_size <= 0) input_error("{}: moe_intermediate_size must be > 0, got {}", where, c.moe_intermediate_size);
  if (c.decoder_sparse_step <= 0) input_error("{}: decoder_sparse_step must be > 0, got {}", where, c.decoder_sparse_step);
  for (int64_t layer : c.mlp_only_layers)
    if (layer < 0 || layer >= c.num_layers) input_error("{}: mlp_only_layers lists layer {}, outside 0..{}", where, layer, c.num_layers - 1);
  if (!(c.router_aux_loss_coef >= 0)) input_error("{}: router_aux_loss_coef must be >= 0", where);
}

}  // namespace qtune
