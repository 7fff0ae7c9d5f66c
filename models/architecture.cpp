// The HF tensor table of every family (its switches: fused projections, q/k norms, sandwich norms, experts).
#include "models/architecture.h"

namespace qtune {

namespace {

// The tensors of decoder layer i, in the order transformers names its modules.
void add_layer_specs(const ModelConfig& c, int64_t i, std::vector<WeightSpec>& specs) {
  const int64_t D = c.hidden_size, F = c.intermediate_size, Dh = c.head_dim;
  const int64_t q_out = c.num_heads * Dh, kv_out = c.num_kv_heads * Dh;
  const std::string p = "model.layers." + std::to_string(i) + ".";
  auto projection = [&](const std::string& name, int64_t out, int64_t in, bool bias) {
    specs.push_back({p + name + ".weight", {out, in}, true});
    if (bias) specs.push_back({p + name + ".bias", {out}, false});
  };
  auto norm = [&](const std::string& name, int64_t size) { specs.push_back({p + name + ".weight", {size}, false}); };
  norm("input_layernorm", D);
  if (c.fused_projections) {
    projection("self_attn.qkv_proj", q_out + 2 * kv_out, D, c.qkv_bias);
  } else {
    projection("self_attn.q_proj", q_out, D, c.qkv_bias);
    projection("self_attn.k_proj", kv_out, D, c.qkv_bias);
    projection("self_attn.v_proj", kv_out, D, c.qkv_bias);
  }
  projection("self_attn.o_proj", D, q_out, c.o_bias);
  if (c.qk_norm) norm("self_attn.q_norm", Dh), norm("self_attn.k_norm", Dh);
  norm("post_attention_layernorm", D);
  if (c.sandwich_norms) norm("pre_feedforward_layernorm", D), norm("post_feedforward_layernorm", D);
  if (c.is_sparse_layer(i)) {
    const std::string block = c.moe_block_name() + ".";
    specs.push_back({p + block + "gate.weight", {c.num_experts, D}, false, true});
    const auto names = c.expert_projection_names();  // gate, up, down
    const int64_t Fe = c.moe_intermediate_size;
    for (int64_t e = 0; e < c.num_experts; ++e) {
      const std::string expert = block + "experts." + std::to_string(e) + ".";
      projection(expert + names[0], Fe, D, false);
      projection(expert + names[1], Fe, D, false);
      projection(expert + names[2], D, Fe, false);
    }
  } else if (c.fused_projections) {
    projection("mlp.gate_up_proj", 2 * F, D, c.mlp_bias);
  } else {
    projection("mlp.gate_proj", F, D, c.mlp_bias);
    projection("mlp.up_proj", F, D, c.mlp_bias);
  }
  if (!c.is_sparse_layer(i)) projection("mlp.down_proj", D, F, c.mlp_bias);
}

}  // namespace

std::vector<WeightSpec> hf_weight_specs(const ModelConfig& c) {
  std::vector<WeightSpec> specs;
  specs.push_back({"model.embed_tokens.weight", {c.vocab_size, c.hidden_size}, false});
  for (int64_t i = 0; i < c.num_layers; ++i) add_layer_specs(c, i, specs);
  specs.push_back({"model.norm.weight", {c.hidden_size}, false});
  if (!c.tie_word_embeddings) specs.push_back({"lm_head.weight", {c.vocab_size, c.hidden_size}, false});
  return specs;
}

ParameterCounts count_parameters(const ModelConfig& config) {
  ParameterCounts counts;
  for (const auto& spec : hf_weight_specs(config)) {
    int64_t n = 1;
    for (int64_t d : spec.shape) n *= d;
    if (spec.name == "model.embed_tokens.weight") counts.embedding += n;
    else if (spec.name == "lm_head.weight") counts.lm_head += n;
    else if (spec.router) counts.routers += n;
    else if (spec.decoder_projection) counts.decoder_projections += n;
    else counts.other += n;
    if (spec.decoder_projection && spec.name.find(".experts.") != std::string::npos) counts.expert_projections += n;
  }
  // Every expert of a layer has the same shapes, so a token's k experts are k/E of them.
  if (config.num_experts > 0) counts.active_expert_projections = counts.expert_projections / config.num_experts * config.num_experts_per_tok;
  return counts;
}

double four_bit_bytes(const ParameterCounts& counts, int64_t block_size, bool double_quant, int other_dtype_bytes) {
  const double q = static_cast<double>(counts.decoder_projections);
  const double blocks = q / static_cast<double>(block_size);
  const double absmax_bytes = double_quant ? blocks * 1.0 + (blocks / 256.0) * 4.0 : blocks * 4.0;
  const double rest = static_cast<double>(counts.embedding + counts.lm_head + counts.routers + counts.other) * other_dtype_bytes;
  return q * 0.5 + absmax_bytes + rest;
}

}  // namespace qtune
