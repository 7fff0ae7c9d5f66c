// The GGUF keys of Gemma 2 / 3, Phi-3 and the mixtures of experts (Mixtral, Qwen3-MoE) beyond the common ones, written
// as llama.cpp's converter writes them and read back into the HF config (with llama.cpp's own defaults where a file
// from its converter lacks a key).
#include "core/error.h"
#include "gguf/gguf_names.h"

namespace qtune {
namespace {

bool is_gemma(Architecture arch) { return arch == Architecture::kGemma2 || arch == Architecture::kGemma3; }

// llama.cpp's swa pattern n is HF's sliding_window_pattern: every n-th layer full (gemma_layer_types).
// The period that gives the config's layer types, preferring the family's default (gemma2 2, gemma3 6: what
// llama.cpp assumes without the key); InputError when none does.
int64_t layer_period(const ModelConfig& c) {
  const int64_t family_default = c.arch == Architecture::kGemma2 ? 2 : 6;
  if (gemma_layer_types(c.num_layers, family_default) == c.layer_types) return family_default;
  for (int64_t period = 1; period <= c.num_layers + 1; ++period)
    if (gemma_layer_types(c.num_layers, period) == c.layer_types) return period;
  input_error("{}: layer_types is not a repeating pattern (every n-th layer full), which is all GGUF's "
              "attention.sliding_window_pattern can say", c.hf_class_name());
}

// llama.cpp's query scale for Gemma: 1/√(n_embd / n_head) for the 27B models (46 layers Gemma 2, 62 layers Gemma 3),
// else 1/√head_dim; it has no key for query_pre_attn_scalar.
double llama_cpp_query_scalar(const ModelConfig& c) {
  const bool is_27b = c.num_layers == (c.arch == Architecture::kGemma2 ? 46 : 62);
  return is_27b ? static_cast<double>(c.hidden_size / c.num_heads) : static_cast<double>(c.head_dim);
}

void add_gemma_metadata(const ModelConfig& c, const std::string& arch, GgufMetadata& m) {
  if (c.attn_logit_softcapping) m.set(arch + ".attn_logit_softcapping", GgufValue::f32(static_cast<float>(*c.attn_logit_softcapping)));
  if (c.final_logit_softcapping) m.set(arch + ".final_logit_softcapping", GgufValue::f32(static_cast<float>(*c.final_logit_softcapping)));
  if (!c.layer_types.empty()) m.set(arch + ".attention.sliding_window_pattern", GgufValue::u32(static_cast<uint32_t>(layer_period(c))));
  if (c.local_rope_theta) m.set(arch + ".rope.freq_base_swa", GgufValue::f32(static_cast<float>(*c.local_rope_theta)));
  // llama.cpp derives the scale from the sizes (llama_cpp_query_scalar); qtune keeps the config's value.
  if (c.query_pre_attn_scalar) m.set("qtune.attention.query_pre_attn_scalar", GgufValue::f32(static_cast<float>(*c.query_pre_attn_scalar)));
}

// As llama.cpp's converter: the original context and the cos/sin factor as keys, the factors as tensors
// (rope_factor_tensors), and a window of 0 for none.
void add_phi3_metadata(const ModelConfig& c, const std::string& arch, GgufMetadata& m) {
  if (!c.sliding_window) m.set(arch + ".attention.sliding_window", GgufValue::u32(0));
  const RopeScaling& r = c.rope_scaling;
  if (r.type != "longrope") return;
  m.set(arch + ".rope.scaling.original_context_length", GgufValue::u32(static_cast<uint32_t>(r.original_max_position_embeddings)));
  m.set(arch + ".rope.scaling.attn_factor", GgufValue::f32(static_cast<float>(r.attention_factor)));
}

std::vector<double> factors(const GgufFile& file, const std::string& name, int64_t expected) {
  const GgufTensorInfo* info = file.find(name);
  if (!info) input_error("{}: tensor '{}' is missing (longrope needs both rope_factors_long and rope_factors_short)", file.path(), name);
  const torch::Tensor t = file.to_float(*info).flatten().to(torch::kDouble).contiguous();
  if (t.numel() != expected)
    input_error("{}: tensor '{}' has {} values, the rope dimension count implies {}", file.path(), name, t.numel(), expected);
  return std::vector<double>(t.data_ptr<double>(), t.data_ptr<double>() + t.numel());
}

void read_gemma(const GgufFile& file, const std::string& arch, ModelConfig& c) {
  const GgufMetadata& m = file.metadata();
  const auto number = [&](const std::string& key) { return m.number(arch + "." + key, file.path()); };
  c.hidden_act = "gelu_pytorch_tanh";
  c.norm_unit_offset = c.sandwich_norms = c.scale_embeddings = true;
  if (m.contains(arch + ".attn_logit_softcapping")) c.attn_logit_softcapping = number("attn_logit_softcapping");
  if (m.contains(arch + ".final_logit_softcapping")) c.final_logit_softcapping = number("final_logit_softcapping");
  if (!c.sliding_window && c.arch == Architecture::kGemma2) c.sliding_window = 4096;  // llama.cpp's default for gemma2
  const int64_t period = m.contains(arch + ".attention.sliding_window_pattern")
                             ? m.integer(arch + ".attention.sliding_window_pattern", file.path())
                             : (c.arch == Architecture::kGemma2 ? 2 : 6);
  if (period < 1) input_error("{}: {}.attention.sliding_window_pattern must be >= 1", file.path(), arch);
  c.layer_types = gemma_layer_types(c.num_layers, period);
  if (c.arch == Architecture::kGemma3) c.local_rope_theta = m.contains(arch + ".rope.freq_base_swa") ? number("rope.freq_base_swa") : 10000.0;
  c.query_pre_attn_scalar = m.contains("qtune.attention.query_pre_attn_scalar") ? m.number("qtune.attention.query_pre_attn_scalar", file.path())
                                                                               : llama_cpp_query_scalar(c);
}

// Longrope when the factor tensors are there: HF's factor (max / original) and, without the key, its cos/sin factor.
void read_phi3(const GgufFile& file, const std::string& arch, ModelConfig& c) {
  const GgufMetadata& m = file.metadata();
  c.fused_projections = true;
  if (!file.find("rope_factors_long.weight") && !file.find("rope_factors_short.weight")) return;
  RopeScaling& r = c.rope_scaling;
  r.type = "longrope";
  r.long_factor = factors(file, "rope_factors_long.weight", c.rotary_dim() / 2);
  r.short_factor = factors(file, "rope_factors_short.weight", c.rotary_dim() / 2);
  const std::string original = arch + ".rope.scaling.original_context_length";
  r.original_max_position_embeddings = m.contains(original) ? m.integer(original, file.path()) : c.max_position_embeddings;
  if (r.original_max_position_embeddings <= 0) input_error("{}: {} must be > 0", file.path(), original);
  r.factor = static_cast<double>(c.max_position_embeddings) / static_cast<double>(r.original_max_position_embeddings);
  r.attention_factor = m.contains(arch + ".rope.scaling.attn_factor") ? m.number(arch + ".rope.scaling.attn_factor", file.path())
                                                                    : r.default_longrope_attention_factor();
}

// convert_hf_to_gguf.py: expert_count and expert_used_count for every MoE family, expert_feed_forward_length where
// the config has moe_intermediate_size (Qwen3-MoE; Mixtral's experts are feed_forward_length wide).
void add_moe_metadata(const ModelConfig& c, const std::string& arch, GgufMetadata& m) {
  m.set(arch + ".expert_count", GgufValue::u32(static_cast<uint32_t>(c.num_experts)));
  m.set(arch + ".expert_used_count", GgufValue::u32(static_cast<uint32_t>(c.num_experts_per_tok)));
  if (c.arch == Architecture::kQwen3Moe) m.set(arch + ".expert_feed_forward_length", GgufValue::u32(static_cast<uint32_t>(c.moe_intermediate_size)));
}

// As llama.cpp runs the file: experts in every layer, the top-k weights renormalized (its llama and qwen3moe graphs
// always do), the expert width feed_forward_length / k for a qwen3moe file without expert_feed_forward_length.
void read_moe(const GgufFile& file, const std::string& arch, ModelConfig& c) {
  const GgufMetadata& m = file.metadata();
  c.num_experts = m.integer(arch + ".expert_count", file.path());
  const GgufTensorInfo* router = file.find("blk.0.ffn_gate_inp.weight");  // the count, checked before E experts are looked for
  if (!router || router->ne.size() != 2 || router->ne[1] != c.num_experts)
    input_error("{}: {}.expert_count is {}, but tensor 'blk.0.ffn_gate_inp.weight' (the first router, [hidden, experts]) {}", file.path(), arch,
                c.num_experts, router ? fmt::format("has {} experts", router->ne.back()) : std::string("is missing"));
  c.num_experts_per_tok = m.integer(arch + ".expert_used_count", file.path());
  if (c.num_experts_per_tok <= 0) input_error("{}: {}.expert_used_count must be > 0", file.path(), arch);
  const std::string width = arch + ".expert_feed_forward_length";
  if (m.contains(width)) c.moe_intermediate_size = m.integer(width, file.path());
  else c.moe_intermediate_size = c.arch == Architecture::kMixtral ? c.intermediate_size : c.intermediate_size / c.num_experts_per_tok;
  c.norm_topk_prob = true;
  c.routing_weights_in_compute_dtype = c.arch == Architecture::kQwen3Moe;  // as transformers' Qwen3-MoE (read_moe_keys)
}

}  // namespace

void add_family_metadata(const ModelConfig& c, const std::string& arch, GgufMetadata& m) {
  if (is_gemma(c.arch)) add_gemma_metadata(c, arch, m);
  if (c.arch == Architecture::kPhi3) add_phi3_metadata(c, arch, m);
  if (c.num_experts > 0) add_moe_metadata(c, arch, m);
}

void read_family_metadata(const GgufFile& file, const std::string& arch, ModelConfig& c) {
  if (is_gemma(c.arch)) read_gemma(file, arch, c);
  if (c.arch == Architecture::kPhi3) read_phi3(file, arch, c);
  if (c.arch == Architecture::kMixtral || c.arch == Architecture::kQwen3Moe) read_moe(file, arch, c);
}

}  // namespace qtune
