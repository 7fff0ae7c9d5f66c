// ModelConfig: the Llama-family hyper-parameters read from a Hugging Face config.json (Llama 2/3/3.x,
// Mistral, Qwen2/2.5, Qwen3) and written back in HF layout.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace qtune {

enum class Architecture { kLlama, kMistral, kQwen2, kQwen3 };

// RoPE frequency scaling. "default" (none), "linear" (positions / factor) and "llama3" (Llama 3.1+
// band-wise scaling of the inverse frequencies).
struct RopeScaling {
  std::string type = "default";
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};

struct ModelConfig {
  Architecture arch = Architecture::kLlama;
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;        // D
  int64_t intermediate_size = 0;  // F
  int64_t num_layers = 0;         // L
  int64_t num_heads = 0;          // H
  int64_t num_kv_heads = 0;       // KV
  int64_t head_dim = 0;           // Dh (hidden/heads unless the config says otherwise)
  double rms_norm_eps = 1e-5;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  int64_t max_position_embeddings = 2048;
  std::optional<int64_t> sliding_window;  // tokens a query sees, itself included; none = full causal
  int64_t max_window_layers = 0;          // Qwen: layers below this index use full attention
  bool qkv_bias = false;                  // bias on q/k/v projections
  bool o_bias = false;                    // bias on o_proj
  bool mlp_bias = false;                  // bias on gate/up/down
  bool qk_norm = false;                   // Qwen3: RMSNorm over Dh on q and k before RoPE
  bool tie_word_embeddings = false;
  std::string torch_dtype = "bfloat16";
  double initializer_range = 0.02;
  std::optional<int64_t> bos_token_id;
  std::vector<int64_t> eos_token_ids;

  // Reads `config.json` (or the config.json inside a folder). InputError names the file and the key,
  // or lists the supported architectures.
  static ModelConfig load(const std::string& path_or_dir);
  static ModelConfig from_json(const nlohmann::json& json, const std::string& where);
  // The HF config.json content for this architecture (the keys transformers writes).
  nlohmann::ordered_json to_hf_json() const;

  // A default config of each architecture with the given sizes (used by init-model).
  static ModelConfig preset(Architecture arch);

  std::string hf_class_name() const;  // "LlamaForCausalLM", ...
  std::string model_type() const;     // "llama", ...
  std::optional<int64_t> sliding_window_for_layer(int64_t layer) const;
  void validate(const std::string& where) const;  // InputError on inconsistent sizes
};

Architecture parse_architecture_name(const std::string& name);  // "llama"|"mistral"|"qwen2"|"qwen3"
std::string supported_architectures();                           // for error messages

}  // namespace qtune
