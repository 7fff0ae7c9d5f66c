// The config.json keys of each family beyond the common sizes, with transformers' defaults (LlamaConfig,
// MistralConfig, Qwen2Config, Qwen3Config, Gemma2Config, Gemma3TextConfig, Phi3Config; the MoE keys of
// MixtralConfig and Qwen3MoeConfig are in model_config_moe.cpp), and the tiny presets.
#include <algorithm>
#include <cmath>

#include "core/json_file.h"
#include "models/model_config_internal.h"

namespace qtune {
namespace {

std::optional<int64_t> optional_int(const nlohmann::json& json, const std::string& key, const std::string& where) {
  if (!json.contains(key) || json[key].is_null()) return std::nullopt;
  return json_required<int64_t>(json, key, where);
}

// A soft-capping value: transformers' default when the key is absent, none when it is null.
std::optional<double> softcap(const nlohmann::json& json, const char* key, const std::string& where, std::optional<double> fallback) {
  if (!json.contains(key)) return fallback;
  if (json[key].is_null()) return std::nullopt;
  return json_required<double>(json, key, where);
}

nlohmann::ordered_json whole_or_real(double v) {
  return v == std::floor(v) ? nlohmann::ordered_json(static_cast<int64_t>(v)) : nlohmann::ordered_json(v);
}

nlohmann::ordered_json nullable(const std::optional<double>& v) { return v ? nlohmann::ordered_json(*v) : nlohmann::ordered_json(nullptr); }

void read_qwen(const nlohmann::json& json, const std::string& where, ModelConfig& c) {
  if (c.arch == Architecture::kQwen2) {
    c.qkv_bias = true;  // Qwen2 always has q/k/v bias and never an o_proj bias
  } else {
    c.qkv_bias = c.o_bias = json_optional<bool>(json, "attention_bias", where, false);
    c.qk_norm = true;
  }
  if (json_optional<bool>(json, "use_sliding_window", where, false)) {
    c.sliding_window = optional_int(json, "sliding_window", where);
    // Qwen3-MoE windows every layer (its max_window_layers is not read by transformers).
    c.max_window_layers = c.arch == Architecture::kQwen3Moe ? 0 : json_optional<int64_t>(json, "max_window_layers", where, c.num_layers);
  }
}

void read_gemma(const nlohmann::json& json, const std::string& where, ModelConfig& c) {
  const bool gemma2 = c.arch == Architecture::kGemma2;
  c.qkv_bias = c.o_bias = json_optional<bool>(json, "attention_bias", where, false);
  c.norm_unit_offset = c.sandwich_norms = c.scale_embeddings = true;
  c.qk_norm = !gemma2;
  if (!gemma2) c.rope_theta = 1000000.0;  // Gemma3TextConfig's default global base (read_rope reads the file's)
  c.tie_word_embeddings = json_optional<bool>(json, "tie_word_embeddings", where, true);
  c.query_pre_attn_scalar = json_optional<double>(json, "query_pre_attn_scalar", where, 256.0);
  c.attn_logit_softcapping = softcap(json, "attn_logit_softcapping", where, gemma2 ? std::optional<double>(50.0) : std::nullopt);
  c.final_logit_softcapping = softcap(json, "final_logit_softcapping", where, gemma2 ? std::optional<double>(30.0) : std::nullopt);
  c.sliding_window = json_optional<int64_t>(json, "sliding_window", where, 4096);
  if (json.contains("layer_types") && !json["layer_types"].is_null()) {
    c.layer_types = json_required<std::vector<std::string>>(json, "layer_types", where);
  } else {
    const int64_t pattern = json_optional<int64_t>(json, "sliding_window_pattern", where, gemma2 ? 2 : 6);
    if (pattern <= 0) input_error("{}: sliding_window_pattern must be > 0", where);
    c.layer_types = gemma_layer_types(c.num_layers, pattern);
  }
  if (json_optional<bool>(json, "use_bidirectional_attention", where, false))
    input_error("{}: use_bidirectional_attention (an embedding model) is not supported; qtune trains causal models", where);
}

}  // namespace

std::vector<std::string> gemma_layer_types(int64_t num_layers, int64_t pattern) {
  std::vector<std::string> types;
  for (int64_t i = 0; i < num_layers; ++i) types.push_back((i + 1) % pattern != 0 ? "sliding_attention" : "full_attention");
  return types;
}

void read_family_keys(const nlohmann::json& json, const std::string& where, ModelConfig& c) {
  switch (c.arch) {
    case Architecture::kLlama:
      c.qkv_bias = c.o_bias = json_optional<bool>(json, "attention_bias", where, false);
      c.mlp_bias = json_optional<bool>(json, "mlp_bias", where, false);
      break;
    case Architecture::kMistral:
    case Architecture::kMixtral:
      c.sliding_window = optional_int(json, "sliding_window", where);
      break;
    case Architecture::kQwen2:
    case Architecture::kQwen3:
    case Architecture::kQwen3Moe:
      read_qwen(json, where, c);
      break;
    case Architecture::kGemma2:
    case Architecture::kGemma3:
      read_gemma(json, where, c);
      break;
    case Architecture::kPhi3:  // longrope's original context is a top-level key here (Phi3Config's default 4096)
      c.fused_projections = true;
      c.sliding_window = optional_int(json, "sliding_window", where);
      c.rope_scaling.original_max_position_embeddings = json_optional<int64_t>(json, "original_max_position_embeddings", where, 4096);
      break;
  }
  if (c.arch == Architecture::kMixtral || c.arch == Architecture::kQwen3Moe) read_moe_keys(json, where, c);
}

void validate_family_settings(const ModelConfig& c, const std::string& where) {
  if (!c.layer_types.empty() && static_cast<int64_t>(c.layer_types.size()) != c.num_layers)
    input_error("{}: layer_types has {} entries for {} layers", where, c.layer_types.size(), c.num_layers);
  for (const auto& t : c.layer_types)
    if (t != "sliding_attention" && t != "full_attention")
      input_error("{}: layer_types: '{}' is not sliding_attention or full_attention", where, t);
  for (const auto& [key, v] : {std::pair{"query_pre_attn_scalar", c.query_pre_attn_scalar}, {"attn_logit_softcapping", c.attn_logit_softcapping},
                               {"final_logit_softcapping", c.final_logit_softcapping}, {"rope_local_base_freq", c.local_rope_theta}})
    if (v && !(*v > 0)) input_error("{}: {} must be > 0 or null", where, key);
  const int64_t rotary = c.rotary_dim();
  if (!(c.partial_rotary_factor > 0 && c.partial_rotary_factor <= 1) || rotary % 2 != 0)
    input_error("{}: partial_rotary_factor {} must be in (0, 1] and leave an even number of rotary dims (head_dim {})", where, c.partial_rotary_factor, c.head_dim);
  const RopeScaling& r = c.rope_scaling;
  if (r.type == "longrope" && (static_cast<int64_t>(r.short_factor.size()) != rotary / 2 || static_cast<int64_t>(r.long_factor.size()) != rotary / 2))
    input_error("{}: rope_scaling short_factor and long_factor need {} values each (rotary dims / 2), got {} and {}", where, rotary / 2,
                r.short_factor.size(), r.long_factor.size());
}

void write_family_keys(const ModelConfig& c, nlohmann::ordered_json& j) {
  const auto window = c.sliding_window ? nlohmann::ordered_json(*c.sliding_window) : nlohmann::ordered_json(nullptr);
  switch (c.arch) {
    case Architecture::kLlama:
      j["attention_bias"] = c.qkv_bias;
      j["mlp_bias"] = c.mlp_bias;
      j["pretraining_tp"] = 1;
      break;
    case Architecture::kMistral:
    case Architecture::kMixtral:
      j["sliding_window"] = window;
      break;
    case Architecture::kPhi3:  // Phi3Config's default pad id (32000) is outside a smaller vocabulary
      j["sliding_window"] = window;
      j["original_max_position_embeddings"] = c.rope_scaling.original_max_position_embeddings;
      j["pad_token_id"] = c.eos_token_ids.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(c.eos_token_ids[0]);
      break;
    case Architecture::kQwen2:
    case Architecture::kQwen3:
    case Architecture::kQwen3Moe:
      if (c.arch != Architecture::kQwen2) j["attention_bias"] = c.qkv_bias;
      j["use_sliding_window"] = c.sliding_window.has_value();
      j["sliding_window"] = window;
      j["max_window_layers"] = c.sliding_window ? c.max_window_layers : c.num_layers;
      break;
    case Architecture::kGemma2:
    case Architecture::kGemma3:
      j["hidden_activation"] = c.hidden_act;
      j["attention_bias"] = c.qkv_bias;
      j["query_pre_attn_scalar"] = whole_or_real(c.query_pre_attn_scalar.value_or(256.0));  // transformers wants an int when it is one
      j["attn_logit_softcapping"] = nullable(c.attn_logit_softcapping);
      j["final_logit_softcapping"] = nullable(c.final_logit_softcapping);
      j["sliding_window"] = window;
      j["layer_types"] = c.layer_types;
      break;
  }
  if (c.num_experts > 0) write_moe_keys(c, j);
}

void apply_family_preset(ModelConfig& c) {
  apply_family_switches(c);
  fit_preset_to_sizes(c);
}

void apply_family_switches(ModelConfig& c) {
  switch (c.arch) {
    case Architecture::kLlama:  // Llama 3.1 style
      c.rope_theta = 500000.0;
      c.rms_norm_eps = 1e-5;
      c.rope_scaling = {"llama3", 8.0, 1.0, 4.0, 8192};
      c.max_position_embeddings = 131072;
      break;
    case Architecture::kMistral:
      c.rope_theta = 1000000.0;
      c.rms_norm_eps = 1e-5;
      c.max_position_embeddings = 32768;
      break;
    case Architecture::kMixtral:
    case Architecture::kQwen3Moe:
      apply_moe_switches(c);
      break;
    case Architecture::kQwen2:
      c.rope_theta = 1000000.0;
      c.qkv_bias = true;
      c.tie_word_embeddings = true;
      c.max_position_embeddings = 32768;
      break;
    case Architecture::kQwen3:
      c.rope_theta = 1000000.0;
      c.qk_norm = true;
      c.max_position_embeddings = 40960;
      break;
    case Architecture::kGemma2:  // Gemma 2 2B's settings
    case Architecture::kGemma3:  // Gemma 3 4B's: global layers rope 1e6 with linear scaling 8, local 1e4
      c.hidden_act = "gelu_pytorch_tanh";
      c.norm_unit_offset = c.sandwich_norms = c.scale_embeddings = c.tie_word_embeddings = true;
      c.sliding_window = 4096;
      c.max_position_embeddings = 8192;
      if (c.arch == Architecture::kGemma2) {
        c.attn_logit_softcapping = 50.0;
        c.final_logit_softcapping = 30.0;
        break;
      }
      c.qk_norm = true;
      c.rope_theta = 1000000.0;
      c.local_rope_theta = 10000.0;
      c.rope_scaling.type = "linear";
      c.rope_scaling.factor = 8.0;
      c.max_position_embeddings = 131072;
      break;
    case Architecture::kPhi3:  // Phi-3.5-mini's settings: longrope (positions past 4096 use the long factors)
      c.fused_projections = true;
      c.rms_norm_eps = 1e-5;
      c.max_position_embeddings = 131072;
      c.rope_scaling.type = "longrope";
      c.rope_scaling.original_max_position_embeddings = 4096;
      break;
  }
}

void fit_preset_to_sizes(ModelConfig& c, int64_t sliding_window_pattern) {
  // Mixtral's experts are as wide as its dense MLP; Qwen3-MoE's an eighth of it, as in 30B-A3B (6144 / 768).
  if (c.arch == Architecture::kMixtral) c.moe_intermediate_size = c.intermediate_size;
  if (c.arch == Architecture::kQwen3Moe) c.moe_intermediate_size = std::max<int64_t>(1, c.intermediate_size / 8);
  if (c.arch == Architecture::kGemma2 || c.arch == Architecture::kGemma3) {
    const int64_t pattern = sliding_window_pattern > 0 ? sliding_window_pattern : c.arch == Architecture::kGemma2 ? 2 : 6;
    c.layer_types = gemma_layer_types(c.num_layers, pattern);
    c.query_pre_attn_scalar = static_cast<double>(c.hidden_size / c.num_heads);  // as Gemma 2 27B: not always head_dim
  }
  RopeScaling& r = c.rope_scaling;
  if (r.type != "longrope") return;
  const int64_t n = c.rotary_dim() / 2;
  r.short_factor.clear(), r.long_factor.clear();
  for (int64_t i = 0; i < n; ++i) {
    const double x = n > 1 ? static_cast<double>(i) / static_cast<double>(n - 1) : 0.0;
    r.short_factor.push_back(1.0 + 0.5 * x * x);
    r.long_factor.push_back(1.0 + 15.0 * x * x);
  }
  r.factor = static_cast<double>(c.max_position_embeddings) / static_cast<double>(r.original_max_position_embeddings);
  r.attention_factor = r.default_longrope_attention_factor();
}

}  // namespace qtune
