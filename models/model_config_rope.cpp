// The RoPE keys of config.json, both layouts: transformers 4.x (rope_theta, rope_scaling, Gemma 3's
// rope_local_base_freq, Phi-3's top-level original_max_position_embeddings / partial_rotary_factor) and 5.x
// (rope_parameters, per layer type for Gemma 3).
#include <cmath>

#include "core/json_file.h"
#include "models/model_config_internal.h"

namespace qtune {
namespace {

std::vector<double> factor_list(const nlohmann::json& scaling, const char* key, const std::string& where) {
  const auto values = json_required<std::vector<double>>(scaling, key, where);
  for (double v : values)
    if (!(v > 0) || !std::isfinite(v)) input_error("{}: rope_scaling.{} must hold finite numbers > 0", where, key);
  return values;
}

// Phi-3's longrope: the factor is max/original when not given, the cos/sin multiplier √(1 + ln f / ln original).
void read_longrope(const nlohmann::json& json, const nlohmann::json& scaling, const std::string& where, ModelConfig& c) {
  RopeScaling& r = c.rope_scaling;
  r.short_factor = factor_list(scaling, "short_factor", where);
  r.long_factor = factor_list(scaling, "long_factor", where);
  r.original_max_position_embeddings = json_optional<int64_t>(scaling, "original_max_position_embeddings", where, r.original_max_position_embeddings);
  if (r.original_max_position_embeddings <= 0) input_error("{}: original_max_position_embeddings must be > 0", where);
  r.factor = json_optional<double>(
      scaling, "factor", where, static_cast<double>(c.max_position_embeddings) / static_cast<double>(r.original_max_position_embeddings));
  r.attention_factor = json_optional<double>(scaling, "attention_factor", where, r.default_longrope_attention_factor());
}

void read_scaling(const nlohmann::json& json, const nlohmann::json& scaling, const std::string& where, ModelConfig& c) {
  if (!scaling.is_object()) input_error("{}: 'rope_scaling' must be an object or null", where);
  std::string type = json_optional<std::string>(scaling, "rope_type", where, json_optional<std::string>(scaling, "type", where, "default"));
  if (c.arch == Architecture::kPhi3 && (type == "su" || type == "yarn")) type = "longrope";  // Phi-3's early names for it
  RopeScaling& r = c.rope_scaling;
  r.type = type;
  if (type == "default") return;
  if (type == "longrope") return read_longrope(json, scaling, where, c);
  if (type != "linear" && type != "llama3")
    input_error("{}: rope_scaling type '{}' is not supported (supported: default, linear, llama3, longrope)", where, type);
  r.factor = json_required<double>(scaling, "factor", where);
  if (!(r.factor > 0)) input_error("{}: rope_scaling.factor must be > 0", where);
  if (type == "llama3") {
    r.low_freq_factor = json_required<double>(scaling, "low_freq_factor", where);
    r.high_freq_factor = json_required<double>(scaling, "high_freq_factor", where);
    r.original_max_position_embeddings = json_required<int64_t>(scaling, "original_max_position_embeddings", where);
    if (!(r.high_freq_factor > r.low_freq_factor)) input_error("{}: rope_scaling needs high_freq_factor > low_freq_factor", where);
  }
}

bool has_object(const nlohmann::json& json, const char* key) { return json.contains(key) && json[key].is_object(); }

}  // namespace

double RopeScaling::default_longrope_attention_factor() const {
  if (factor <= 1.0) return 1.0;
  return std::sqrt(1 + std::log(factor) / std::log(static_cast<double>(original_max_position_embeddings)));
}

void read_rope(const nlohmann::json& json, const std::string& where, ModelConfig& c) {
  c.partial_rotary_factor = json_optional<double>(json, "partial_rotary_factor", where, 1.0);
  if (has_object(json, "rope_parameters")) {
    const nlohmann::json* params = &json["rope_parameters"];
    if (has_object(*params, "full_attention")) {  // 5.x, one entry per layer type (Gemma 3)
      if (has_object(*params, "sliding_attention"))
        c.local_rope_theta = json_required<double>((*params)["sliding_attention"], "rope_theta", where);
      params = &(*params)["full_attention"];
    }
    c.rope_theta = json_optional<double>(*params, "rope_theta", where, c.rope_theta);
    c.partial_rotary_factor = json_optional<double>(*params, "partial_rotary_factor", where, c.partial_rotary_factor);
    return read_scaling(json, *params, where, c);
  }
  c.rope_theta = json_optional<double>(json, "rope_theta", where, c.rope_theta);
  if (c.arch == Architecture::kGemma3) c.local_rope_theta = json_optional<double>(json, "rope_local_base_freq", where, 10000.0);
  if (json.contains("rope_scaling") && !json["rope_scaling"].is_null()) read_scaling(json, json["rope_scaling"], where, c);
}

void write_rope(const ModelConfig& c, nlohmann::ordered_json& j) {
  j["rope_theta"] = c.rope_theta;
  if (c.local_rope_theta) j["rope_local_base_freq"] = *c.local_rope_theta;
  if (c.partial_rotary_factor != 1.0) j["partial_rotary_factor"] = c.partial_rotary_factor;
  const RopeScaling& r = c.rope_scaling;
  if (r.type == "default") {
    j["rope_scaling"] = nullptr;
    return;
  }
  nlohmann::ordered_json s = {{"rope_type", r.type}};
  if (r.type == "longrope") {
    s["short_factor"] = r.short_factor;
    s["long_factor"] = r.long_factor;
  } else {
    s["factor"] = r.factor;
  }
  if (r.type == "llama3") {
    s["low_freq_factor"] = r.low_freq_factor;
    s["high_freq_factor"] = r.high_freq_factor;
    s["original_max_position_embeddings"] = r.original_max_position_embeddings;
  }
  j["rope_scaling"] = s;
}

}  // namespace qtune
