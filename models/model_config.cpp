// ModelConfig parsing/writing of HF config.json: the keys every family has. The family keys are in
// model_config_families.cpp, the RoPE keys in model_config_rope.cpp.
#include "models/model_config.h"

#include <cmath>
#include <filesystem>

#include "core/json_file.h"
#include "models/model_config_internal.h"

namespace qtune {
namespace {

struct ArchName {
  Architecture arch;
  const char* hf_class;
  const char* model_type;
  const char* name;  // qtune's name (--arch)
};
constexpr ArchName kArchitectures[] = {
    {Architecture::kLlama, "LlamaForCausalLM", "llama", "llama"},
    {Architecture::kMistral, "MistralForCausalLM", "mistral", "mistral"},
    {Architecture::kQwen2, "Qwen2ForCausalLM", "qwen2", "qwen2"},
    {Architecture::kQwen3, "Qwen3ForCausalLM", "qwen3", "qwen3"},
    {Architecture::kGemma2, "Gemma2ForCausalLM", "gemma2", "gemma2"},
    {Architecture::kGemma3, "Gemma3ForCausalLM", "gemma3_text", "gemma3"},
    {Architecture::kPhi3, "Phi3ForCausalLM", "phi3", "phi3"},
    {Architecture::kMixtral, "MixtralForCausalLM", "mixtral", "mixtral"},
    {Architecture::kQwen3Moe, "Qwen3MoeForCausalLM", "qwen3_moe", "qwen3_moe"},
};

const ArchName& arch_name(Architecture arch) {
  for (const auto& a : kArchitectures)
    if (a.arch == arch) return a;
  throw std::logic_error("unknown architecture");
}

}  // namespace

std::string supported_architectures() {
  std::string out;
  for (const auto& a : kArchitectures) out += (out.empty() ? "" : ", ") + std::string(a.hf_class);
  return out;
}

Architecture parse_architecture_name(const std::string& name) {
  std::string names;
  for (const auto& a : kArchitectures) {
    if (name == a.name || name == a.model_type) return a.arch;
    names += (names.empty() ? "" : ", ") + std::string(a.name);
  }
  input_error("--arch '{}' is not supported (use {})", name, names);
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
  if (found == "Gemma3ForConditionalGeneration")
    input_error("{}: Gemma3ForConditionalGeneration (Gemma 3 with its vision tower) is not supported yet; train the text model "
                "(Gemma3ForCausalLM: the 1B checkpoint, or the text part saved on its own)", where);
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
  c.hidden_act = json_optional<std::string>(json, "hidden_activation", where, json_optional<std::string>(json, "hidden_act", where, "silu"));
  if (c.hidden_act != "silu" && c.hidden_act != "gelu_pytorch_tanh")
    input_error("{}: hidden_act '{}' is not supported (qtune's gated MLPs: silu, gelu_pytorch_tanh)", where, c.hidden_act);
  read_family_keys(json, where, c);
  read_rope(json, where, c);
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
  validate_family_settings(*this, where);
  validate_moe_settings(*this, where);
}

int64_t ModelConfig::rotary_dim() const { return static_cast<int64_t>(static_cast<double>(head_dim) * partial_rotary_factor); }

double ModelConfig::attention_scale() const {
  return 1.0 / std::sqrt(query_pre_attn_scalar ? *query_pre_attn_scalar : static_cast<double>(head_dim));
}

std::optional<int64_t> ModelConfig::sliding_window_for_layer(int64_t layer) const {
  if (!sliding_window) return std::nullopt;
  if (!layer_types.empty()) return layer_types[layer] == "sliding_attention" ? sliding_window : std::nullopt;
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
  c.rms_norm_eps = 1e-6;
  apply_family_preset(c);
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
  if (!norm_unit_offset) j["hidden_act"] = hidden_act;  // Gemma writes hidden_activation (with its family keys)
  j["max_position_embeddings"] = max_position_embeddings;
  j["initializer_range"] = initializer_range;
  j["rms_norm_eps"] = rms_norm_eps;
  write_rope(*this, j);
  j["attention_dropout"] = 0.0;
  write_family_keys(*this, j);
  j["tie_word_embeddings"] = tie_word_embeddings;
  j["torch_dtype"] = torch_dtype;
  j["use_cache"] = true;
  if (bos_token_id) j["bos_token_id"] = *bos_token_id;
  if (eos_token_ids.size() == 1) j["eos_token_id"] = eos_token_ids[0];
  if (eos_token_ids.size() > 1) j["eos_token_id"] = eos_token_ids;
  return j;
}

}  // namespace qtune
