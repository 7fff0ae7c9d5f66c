// ModelConfig parsing/writing of HF config.json. Key names and defaults follow transformers'
// LlamaConfig, MistralConfig, Qwen2Config and Qwen3Config.
#include "models/model_config.h"

#include <filesystem>

#include "core/json_file.h"

namespace qtune {
namespace {

struct ArchName {
  Architecture arch;
  const char* hf_class;
  const char* model_type;
};
constexpr ArchName kArchitectures[] = {
    {Architecture::kLlama, "LlamaForCausalLM", "llama"},
    {Architecture::kMistral, "MistralForCausalLM", "mistral"},
    {Architecture::kQwen2, "Qwen2ForCausalLM", "qwen2"},
    {Architecture::kQwen3, "Qwen3ForCausalLM", "qwen3"},
};

const ArchName& arch_name(Architecture arch) {
  for (const auto& a : kArchitectures)
    if (a.arch == arch) return a;
  throw std::logic_error("unknown architecture");
}

// RoPE settings live at the top level (transformers 4.x) or under "rope_parameters" (5.x).
void read_rope(const nlohmann::json& json, const std::string& where, ModelConfig& c) {
  const nlohmann::json* scaling = nullptr;
  if (json.contains("rope_parameters") && json["rope_parameters"].is_object()) {
    scaling = &json["rope_parameters"];
    c.rope_theta = json_optional<double>(*scaling, "rope_theta", where, c.rope_theta);
  } else {
    c.rope_theta = json_optional<double>(json, "rope_theta", where, c.rope_theta);
    if (json.contains("rope_scaling") && !json["rope_scaling"].is_null()) scaling = &json["rope_scaling"];
  }
  if (scaling == nullptr) return;
  if (!scaling->is_object()) input_error("{}: 'rope_scaling' must be an object or null", where);
  std::string type = json_optional<std::string>(*scaling, "rope_type", where,
                                                json_optional<std::string>(*scaling, "type", where, "default"));
  RopeScaling& r = c.rope_scaling;
  r.type = type;
  if (type == "default") return;
  if (type != "linear" && type != "llama3")
    input_error("{}: rope_scaling type '{}' is not supported (supported: default, linear, llama3)", where, type);
  r.factor = json_required<double>(*scaling, "factor", where);
  if (!(r.factor > 0)) input_error("{}: rope_scaling.factor must be > 0", where);
  if (type == "llama3") {
    r.low_freq_factor = json_required<double>(*scaling, "low_freq_factor", where);
    r.high_freq_factor = json_required<double>(*scaling, "high_freq_factor", where);
    r.original_max_position_embeddings = json_required<int64_t>(*scaling, "original_max_position_embeddings", where);
    if (!(r.high_freq_factor > r.low_freq_factor))
      input_error("{}: rope_scaling needs high_freq_factor > low_freq_factor", where);
  }
}

std::optional<int64_t> optional_int(const nlohmann::json& json, const std::string& key, const std::string& where) {
  if (!json.contains(key) || json[key].is_null()) return std::nullopt;
  return json_required<int64_t>(json, key, where);
}

}  // namespace

std::string supported_architectures() {
  std::string out;
  for (const auto& a : kArchitectures) out += (out.empty() ? "" : ", ") + std::string(a.hf_class);
  return out;
}

Architecture parse_architecture_name(const std::string& name) {
  for (const auto& a : kArchitectures)
    if (name == a.model_type) return a.arch;
  input_error("--arch '{}' is not supported (use llama, mistral, qwen2 or qwen3)", name);
}

std::string ModelConfig::hf_class_name() const { return arch_name(arch).hf_class; }
std::string ModelConfig::model_type() const { return arch_name(arch).model_type; }

ModelConfig ModelConfig::load(const std::string& path_or_dir) {
  std::string path = path_or_dir;
  if (!std::filesystem::exists(path)) input_error("{}: no such file or folder", path);
  if (std::filesystem::is_directory(path)) path = (std::filesystem::path(path) / "config.json").string();
  return from_json(read_json_file(path), path);
}

ModelConfig ModelConfig::from_json(const nlohmann::json& json, const std::string& where) {
  if (!json.is_object()) input_error("{}: expected a JSON object", where);
  ModelConfig c;
  std::string found;
  bool known = false;
  if (json.contains("architectures") && json["architectures"].is_array() && !json["architectures"].empty() &&
      json["architectures"][0].is_string()) {
    found = json["architectures"][0].get<std::string>();
    for (const auto& a : kArchitectures)
      if (found == a.hf_class) c.arch = a.arch, known = true;
  } else if (json.contains("model_type") && json["model_type"].is_string()) {
    found = json["model_type"].get<std::string>();
    for (const auto& a : kArchitectures)
      if (found == a.model_type) c.arch = a.arch, known = true;
  } else {
    input_error("{}: missing 'architectures' (and 'model_type'); supported: {}", where, supported_architectures());
  }
  if (!known) input_error("{}: architecture '{}' is not supported (supported: {})", where, found, supported_architectures());

  c.vocab_size = json_required<int64_t>(json, "vocab_size", where);
  c.hidden_size = json_required<int64_t>(json, "hidden_size", where);
  c.intermediate_size = json_required<int64_t>(json, "intermediate_size", where);
  c.num_layers = json_required<int64_t>(json, "num_hidden_layers", where);
  c.num_heads = json_required<int64_t>(json, "num_attention_heads", where);
  c.num_kv_heads = json_optional<int64_t>(json, "num_key_value_heads", where, c.num_heads);
  if (c.num_heads <= 0) input_error("{}: num_attention_heads must be > 0", where);
  c.head_dim = json_optional<int64_t>(json, "head_dim", where, c.hidden_size / c.num_heads);
  c.rms_norm_eps = json_optional<double>(json, "rms_norm_eps", where, 1e-6);
  c.max_position_embeddings = json_optional<int64_t>(json, "max_position_embeddings", where, 2048);
  c.tie_word_embeddings = json_optional<bool>(json, "tie_word_embeddings", where, false);
  c.initializer_range = json_optional<double>(json, "initializer_range", where, 0.02);
  c.torch_dtype = json_optional<std::string>(json, "torch_dtype", where, json_optional<std::string>(json, "dtype", where, "float32"));
  std::string act = json_optional<std::string>(json, "hidden_act", where, "silu");
  if (act != "silu") input_error("{}: hidden_act '{}' is not supported (qtune implements the SwiGLU MLP: silu)", where, act);
  read_rope(json, where, c);

  bool attention_bias = json_optional<bool>(json, "attention_bias", where, false);
  switch (c.arch) {
    case Architecture::kLlama:
      c.qkv_bias = c.o_bias = attention_bias;
      c.mlp_bias = json_optional<bool>(json, "mlp_bias", where, false);
      break;
    case Architecture::kMistral:
      c.sliding_window = optional_int(json, "sliding_window", where);
      break;
    case Architecture::kQwen2:
    case Architecture::kQwen3:
      if (c.arch == Architecture::kQwen2) {
        c.qkv_bias = true;  // Qwen2 always has q/k/v bias and never an o_proj bias
      } else {
        c.qkv_bias = c.o_bias = attention_bias;
        c.qk_norm = true;
      }
      if (json_optional<bool>(json, "use_sliding_window", where, false)) {
        c.sliding_window = optional_int(json, "sliding_window", where);
        c.max_window_layers = json_optional<int64_t>(json, "max_window_layers", where, c.num_layers);
      }
      break;
  }
  if (json.contains("bos_token_id") && json["bos_token_id"].is_number_integer())
    c.bos_token_id = json["bos_token_id"].get<int64_t>();
  if (json.contains("eos_token_id")) {
    const auto& eos = json["eos_token_id"];
    if (eos.is_number_integer()) c.eos_token_ids.push_back(eos.get<int64_t>());
    if (eos.is_array())
      for (const auto& e : eos)
        if (e.is_number_integer()) c.eos_token_ids.push_back(e.get<int64_t>());
  }
  c.validate(where);
  return c;
}

void ModelConfig::validate(const std::string& where) const {
  auto positive = [&](const char* key, int64_t v) {
    if (v <= 0) input_error("{}: '{}' must be > 0 (got {})", where, key, v);
  };
  positive("vocab_size", vocab_size);
  positive("hidden_size", hidden_size);
  positive("intermediate_size", intermediate_size);
  positive("num_hidden_layers", num_layers);
  positive("num_key_value_heads", num_kv_heads);
  positive("head_dim", head_dim);
  if (num_heads % num_kv_heads != 0)
    input_error("{}: num_attention_heads ({}) must be a multiple of num_key_value_heads ({})", where, num_heads, num_kv_heads);
  if (head_dim % 2 != 0) input_error("{}: head_dim ({}) must be even for RoPE", where, head_dim);
  if (sliding_window && *sliding_window <= 0) input_error("{}: sliding_window must be > 0 or null", where);
  if (!(rms_norm_eps > 0)) input_error("{}: rms_norm_eps must be > 0", where);
  if (!(rope_theta > 0)) input_error("{}: rope_theta must be > 0", where);
}

std::optional<int64_t> ModelConfig::sliding_window_for_layer(int64_t layer) const {
  if (!sliding_window) return std::nullopt;
  if ((arch == Architecture::kQwen2 || arch == Architecture::kQwen3) && layer < max_window_layers) return std::nullopt;
  return sliding_window;
}

ModelConfig ModelConfig::preset(Architecture arch) {
  ModelConfig c;
  c.arch = arch;
  c.vocab_size = 32000;
  c.hidden_size = 256;
  c.intermediate_size = 688;
  c.num_layers = 2;
  c.num_heads = 8;
  c.num_kv_heads = 4;
  c.head_dim = 32;
  c.bos_token_id = 1;
  c.eos_token_ids = {2};
  switch (arch) {
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
    case Architecture::kQwen2:
      c.rope_theta = 1000000.0;
      c.rms_norm_eps = 1e-6;
      c.qkv_bias = true;
      c.tie_word_embeddings = true;
      c.max_position_embeddings = 32768;
      break;
    case Architecture::kQwen3:
      c.rope_theta = 1000000.0;
      c.rms_norm_eps = 1e-6;
      c.qk_norm = true;
      c.max_position_embeddings = 40960;
      break;
  }
  return c;
}

nlohmann::ordered_json ModelConfig::to_hf_json() const {
  nlohmann::ordered_json j;
  j["architectures"] = {hf_class_name()};
  j["model_type"] = model_type();
  j["vocab_size"] = vocab_size;
  j["hidden_size"] = hidden_size;
  j["intermediate_size"] = intermediate_size;
  j["num_hidden_layers"] = num_layers;
  j["num_attention_heads"] = num_heads;
  j["num_key_value_heads"] = num_kv_heads;
  j["head_dim"] = head_dim;
  j["hidden_act"] = "silu";
  j["max_position_embeddings"] = max_position_embeddings;
  j["initializer_range"] = initializer_range;
  j["rms_norm_eps"] = rms_norm_eps;
  j["rope_theta"] = rope_theta;
  if (rope_scaling.type == "default") {
    j["rope_scaling"] = nullptr;
  } else {
    nlohmann::ordered_json r = {{"rope_type", rope_scaling.type}, {"factor", rope_scaling.factor}};
    if (rope_scaling.type == "llama3") {
      r["low_freq_factor"] = rope_scaling.low_freq_factor;
      r["high_freq_factor"] = rope_scaling.high_freq_factor;
      r["original_max_position_embeddings"] = rope_scaling.original_max_position_embeddings;
    }
    j["rope_scaling"] = r;
  }
  j["attention_dropout"] = 0.0;
  switch (arch) {
    case Architecture::kLlama:
      j["attention_bias"] = qkv_bias;
      j["mlp_bias"] = mlp_bias;
      j["pretraining_tp"] = 1;
      break;
    case Architecture::kMistral:
      j["sliding_window"] = sliding_window ? nlohmann::ordered_json(*sliding_window) : nlohmann::ordered_json(nullptr);
      break;
    case Architecture::kQwen2:
    case Architecture::kQwen3:
      if (arch == Architecture::kQwen3) j["attention_bias"] = qkv_bias;
      j["use_sliding_window"] = sliding_window.has_value();
      j["sliding_window"] = sliding_window ? nlohmann::ordered_json(*sliding_window) : nlohmann::ordered_json(nullptr);
      j["max_window_layers"] = sliding_window ? max_window_layers : num_layers;
      break;
  }
  j["tie_word_embeddings"] = tie_word_embeddings;
  j["torch_dtype"] = torch_dtype;
  j["use_cache"] = true;
  if (bos_token_id) j["bos_token_id"] = *bos_token_id;
  if (eos_token_ids.size() == 1) j["eos_token_id"] = eos_token_ids[0];
  if (eos_token_ids.size() > 1) j["eos_token_id"] = eos_token_ids;
  return j;
}

}  // namespace qtune
