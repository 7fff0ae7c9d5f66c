// llama.cpp's names and layouts for the checkpoints qtune reads.
#include "gguf/gguf_names.h"

#include <regex>

#include "core/error.h"
#include "models/rope.h"

namespace qtune {
namespace {

using NamePair = std::pair<const char*, const char*>;  // HF module path inside a decoder layer, llama.cpp's name in "blk.N."

bool is_gemma(Architecture arch) { return arch == Architecture::kGemma2 || arch == Architecture::kGemma3; }

// gguf-py's tensor map for the architecture: Gemma's post_attention_layernorm follows attention (post_attention_norm)
// and its pre_feedforward_layernorm is the ffn_norm; Phi-3's fused qkv_proj is attn_qkv and gate_up_proj is ffn_up
// (gate rows first, as llama.cpp's fused SwiGLU splits it); an MoE router is ffn_gate_inp (the experts are stacked,
// stacked_expert_tensor).
std::vector<NamePair> layer_names(Architecture arch) {
  std::vector<NamePair> names = {{"input_layernorm", "attn_norm"},       {"self_attn.o_proj", "attn_output"},
                                 {"self_attn.q_norm", "attn_q_norm"},    {"self_attn.k_norm", "attn_k_norm"},
                                 {"mlp.down_proj", "ffn_down"}};
  if (arch == Architecture::kPhi3) {
    names.insert(names.end(), {{"self_attn.qkv_proj", "attn_qkv"}, {"mlp.gate_up_proj", "ffn_up"}});
  } else {
    names.insert(names.end(), {{"self_attn.q_proj", "attn_q"}, {"self_attn.k_proj", "attn_k"}, {"self_attn.v_proj", "attn_v"},
                               {"mlp.gate_proj", "ffn_gate"}, {"mlp.up_proj", "ffn_up"}});
  }
  if (arch == Architecture::kMixtral) names.push_back({"block_sparse_moe.gate", "ffn_gate_inp"});
  if (arch == Architecture::kQwen3Moe) names.push_back({"mlp.gate", "ffn_gate_inp"});
  if (is_gemma(arch)) {
    names.insert(names.end(), {{"post_attention_layernorm", "post_attention_norm"}, {"pre_feedforward_layernorm", "ffn_norm"},
                               {"post_feedforward_layernorm", "post_ffw_norm"}});
  } else {
    names.push_back({"post_attention_layernorm", "ffn_norm"});
  }
  return names;
}

constexpr NamePair kModelNames[] = {
    {"model.embed_tokens.weight", "token_embd.weight"},
    {"model.norm.weight", "output_norm.weight"},
    {"lm_head.weight", "output.weight"},
};

// "model.layers.12.self_attn.q_proj.weight" -> {12, "self_attn.q_proj", "weight"}
struct LayerTensor {
  std::string layer, module, suffix;
};
std::optional<LayerTensor> split(const std::string& name, const std::regex& pattern) {
  std::smatch m;
  if (!std::regex_match(name, m, pattern)) return std::nullopt;
  return LayerTensor{m[1], m[2], m[3]};
}

// The families llama.cpp runs as "llama" (normal rope: pairs of neighbouring rows), whose converter regroups Q/K rows.
bool llama_rope_order(const ModelConfig& config) {
  return config.arch == Architecture::kLlama || config.arch == Architecture::kMistral || config.arch == Architecture::kMixtral;
}

// The heads whose rows a q/k tensor holds; 0 for every other tensor.
int64_t permuted_heads(const ModelConfig& config, const std::string& hf_name) {
  if (!llama_rope_order(config)) return 0;
  if (hf_name.find("self_attn.q_proj.") != std::string::npos) return config.num_heads;
  if (hf_name.find("self_attn.k_proj.") != std::string::npos) return config.num_kv_heads;
  return 0;
}

bool unit_offset_norm(const ModelConfig& config, const std::string& hf_name) {
  const std::string suffix = "norm.weight";
  return config.norm_unit_offset && hf_name.size() >= suffix.size() && hf_name.compare(hf_name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Rows of each head regrouped: HF [head, half, i] <-> ggml [head, i, half] (pairs of neighbouring rows rotate together).
torch::Tensor regroup_rows(const torch::Tensor& t, int64_t heads, bool to_gguf) {
  const int64_t half = t.size(0) / heads / 2;
  std::vector<int64_t> shape = to_gguf ? std::vector<int64_t>{heads, 2, half} : std::vector<int64_t>{heads, half, 2};
  for (int64_t d = 1; d < t.dim(); ++d) shape.push_back(t.size(d));
  return t.reshape(shape).transpose(1, 2).reshape(t.sizes());
}

void add_rope_metadata(const ModelConfig& c, const std::string& arch, GgufMetadata& m) {
  m.set(arch + ".rope.dimension_count", GgufValue::u32(static_cast<uint32_t>(c.rotary_dim())));
  m.set(arch + ".rope.freq_base", GgufValue::f32(static_cast<float>(c.rope_theta)));
  const RopeScaling& s = c.rope_scaling;
  if (s.type == "linear") {
    m.set(arch + ".rope.scaling.type", GgufValue::text("linear"));
    m.set(arch + ".rope.scaling.factor", GgufValue::f32(static_cast<float>(s.factor)));
  } else if (s.type == "llama3") {
    // llama.cpp takes llama3 scaling as the rope_freqs.weight tensor (rope_factor_tensors); qtune's own keys keep the
    // parameters so that reading the file back gives the same config.
    m.set("qtune.rope.llama3.factor", GgufValue::f32(static_cast<float>(s.factor)));
    m.set("qtune.rope.llama3.low_freq_factor", GgufValue::f32(static_cast<float>(s.low_freq_factor)));
    m.set("qtune.rope.llama3.high_freq_factor", GgufValue::f32(static_cast<float>(s.high_freq_factor)));
    m.set("qtune.rope.llama3.original_context_length", GgufValue::u32(static_cast<uint32_t>(s.original_max_position_embeddings)));
  }
}

torch::Tensor float_tensor(const std::vector<double>& values) { return torch::tensor(std::vector<float>(values.begin(), values.end())); }

}  // namespace

void add_architecture_metadata(const ModelConfig& c, const std::string& model_name, GgufMetadata& m) {
  const std::string arch = gguf_architecture(c.arch);
  const auto u32 = [](int64_t v) { return GgufValue::u32(static_cast<uint32_t>(v)); };
  m.set("general.architecture", GgufValue::text(arch));
  m.set("general.name", GgufValue::text(model_name));
  m.set(arch + ".vocab_size", u32(c.vocab_size));
  m.set(arch + ".context_length", u32(c.max_position_embeddings));
  m.set(arch + ".embedding_length", u32(c.hidden_size));
  m.set(arch + ".block_count", u32(c.num_layers));
  m.set(arch + ".feed_forward_length", u32(c.intermediate_size));
  m.set(arch + ".attention.head_count", u32(c.num_heads));
  m.set(arch + ".attention.head_count_kv", u32(c.num_kv_heads));
  m.set(arch + ".attention.key_length", u32(c.head_dim));
  m.set(arch + ".attention.value_length", u32(c.head_dim));
  m.set(arch + ".attention.layer_norm_rms_epsilon", GgufValue::f32(static_cast<float>(c.rms_norm_eps)));
  if (c.sliding_window) {
    m.set(arch + ".attention.sliding_window", u32(*c.sliding_window));
    // Qwen's lower layers attend fully; llama.cpp does not model this, qtune's reader does.
    if (c.arch == Architecture::kQwen2 || c.arch == Architecture::kQwen3) m.set("qtune.max_window_layers", u32(c.max_window_layers));
  }
  add_rope_metadata(c, arch, m);
  add_family_metadata(c, arch, m);
}

std::vector<std::pair<std::string, torch::Tensor>> rope_factor_tensors(const ModelConfig& c) {
  if (c.rope_scaling.type == "longrope")  // the order llama.cpp's converter writes them in
    return {{"rope_factors_long.weight", float_tensor(c.rope_scaling.long_factor)},
            {"rope_factors_short.weight", float_tensor(c.rope_scaling.short_factor)}};
  if (c.rope_scaling.type != "llama3") return {};
  // llama.cpp divides each base frequency by its factor: the factors are base / scaled, computed by the same function
  // the model runs with.
  const torch::Tensor factors =
      rope_inverse_frequencies(c.head_dim, c.rope_theta, RopeScaling{}) / rope_inverse_frequencies(c.head_dim, c.rope_theta, c.rope_scaling);
  return {{"rope_freqs.weight", factors}};
}

std::string gguf_architecture(Architecture arch) {
  switch (arch) {
    case Architecture::kLlama:
    case Architecture::kMistral: return "llama";  // llama.cpp's converter writes Mistral as llama too
    case Architecture::kQwen2: return "qwen2";
    case Architecture::kQwen3: return "qwen3";
    case Architecture::kGemma2: return "gemma2";
    case Architecture::kGemma3: return "gemma3";
    case Architecture::kPhi3: return "phi3";
    case Architecture::kMixtral: return "llama";  // llama.cpp's converter writes Mixtral as llama with experts
    case Architecture::kQwen3Moe: return "qwen3moe";
  }
  return "llama";
}

std::optional<std::string> gguf_tensor_name(Architecture arch, const std::string& hf_name) {
  for (const auto& [hf, gguf] : kModelNames)
    if (hf_name == hf) return std::string(gguf);
  static const std::regex layer(R"(model\.layers\.(\d+)\.(.+)\.(weight|bias))");
  const auto parts = split(hf_name, layer);
  if (!parts) return std::nullopt;
  for (const auto& [hf, gguf] : layer_names(arch))
    if (parts->module == hf) return "blk." + parts->layer + "." + gguf + "." + parts->suffix;
  return std::nullopt;
}

std::optional<std::string> hf_tensor_name(Architecture arch, const std::string& gguf_name) {
  for (const auto& [hf, gguf] : kModelNames)
    if (gguf_name == gguf) return std::string(hf);
  static const std::regex layer(R"(blk\.(\d+)\.([a-z_]+)\.(weight|bias))");
  const auto parts = split(gguf_name, layer);
  if (!parts) return std::nullopt;
  for (const auto& [hf, gguf] : layer_names(arch))
    if (parts->module == gguf) return "model.layers." + parts->layer + "." + hf + "." + parts->suffix;
  return std::nullopt;
}

std::optional<StackedExpert> stacked_expert_tensor(const ModelConfig& config, const std::string& hf_name) {
  static const std::regex expert(R"(model\.layers\.(\d+)\.(\w+)\.experts\.(\d+)\.(\w+)\.weight)");
  std::smatch m;
  if (config.num_experts == 0 || !std::regex_match(hf_name, m, expert) || m[2] != config.moe_block_name()) return std::nullopt;
  const auto projections = config.expert_projection_names();  // gate, up, down
  static const char* kStacked[] = {"ffn_gate_exps", "ffn_up_exps", "ffn_down_exps"};
  for (size_t p = 0; p < projections.size(); ++p)
    if (m[4] == projections[p]) return StackedExpert{"blk." + m[1].str() + "." + kStacked[p] + ".weight", std::stoll(m[3].str())};
  return std::nullopt;
}

torch::Tensor to_gguf_values(const ModelConfig& config, const std::string& hf_name, const torch::Tensor& t) {
  if (unit_offset_norm(config, hf_name)) return t.to(torch::kFloat) + 1;
  const int64_t heads = permuted_heads(config, hf_name);
  return heads == 0 ? t : regroup_rows(t, heads, true);
}

torch::Tensor from_gguf_values(const ModelConfig& config, const std::string& hf_name, const torch::Tensor& t) {
  if (unit_offset_norm(config, hf_name)) return t.to(torch::kFloat) - 1;
  const int64_t heads = permuted_heads(config, hf_name);
  return heads == 0 ? t : regroup_rows(t, heads, false);
}

}  // namespace qtune
