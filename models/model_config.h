// ModelConfig: the decoder hyper-parameters read from a Hugging Face config.json (Llama 2/3/3.x, Mistral,
// Qwen2/2.5, Qwen3, Gemma 2, Gemma 3 text, Phi-3/3.5/4) and written back in HF layout. The families differ only
// by the switches below; the modules read them, nothing else asks which family a model is.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace qtune {

enum class Architecture { kLlama, kMistral, kQwen2, kQwen3, kGemma2, kGemma3, kPhi3, kMixtral, kQwen3Moe };

// RoPE frequency scaling. "default" (none), "linear" (positions / factor), "llama3" (Llama 3.1+ band-wise
// scaling of the inverse frequencies) and "longrope" (Phi-3: per-frequency divisors, the long set once a
// forward's positions pass original_max_position_embeddings, and cos/sin times attention_factor).
struct RopeScaling {
  std::string type = "default";
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
  std::vector<double> short_factor, long_factor;  // longrope: rotary_dim/2 each
  double attention_factor = 1.0;                  // longrope: default_longrope_attention_factor() unless given

  // The LongRoPE paper's cos/sin factor for this factor and original context: √(1 + ln f / ln original), 1 if f ≤ 1.
  double default_longrope_attention_factor() const;
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
  bool qk_norm = false;                   // Qwen3, Gemma 3: RMSNorm over Dh on q and k before RoPE
  bool tie_word_embeddings = false;
  std::string hidden_act = "silu";        // gated MLP activation: silu (SwiGLU) or gelu_pytorch_tanh (GeGLU, Gemma)
  bool norm_unit_offset = false;          // Gemma: RMSNorm scales by (1 + w), computed in float32
  bool sandwich_norms = false;            // Gemma 2/3: also a norm after attention and around the MLP
  bool fused_projections = false;         // Phi-3: one qkv_proj and one gate_up_proj
  bool scale_embeddings = false;          // Gemma: embeddings times √D (rounded to the compute dtype)
  std::optional<double> query_pre_attn_scalar;    // Gemma: scores scaled by its −½ power instead of Dh's
  std::optional<double> attn_logit_softcapping;   // Gemma 2: scores c·tanh(scores/c)
  std::optional<double> final_logit_softcapping;  // Gemma 2: logits c·tanh(logits/c)
  std::vector<std::string> layer_types;   // Gemma: "sliding_attention" | "full_attention" per layer
  std::optional<double> local_rope_theta; // Gemma 3: the sliding layers' rope base (unscaled)
  double partial_rotary_factor = 1.0;     // Phi-4-mini: RoPE on the first Dh·factor dims of each head only
  std::string torch_dtype = "bfloat16";
  double initializer_range = 0.02;
  std::optional<int64_t> bos_token_id;
  std::vector<int64_t> eos_token_ids;

    // Mixture of experts (Mixtral, Qwen3-MoE). A sparse layer's MLP is a router ("<block>.gate", [E, D], kept in the
  // compute dtype) and E experts, each a gated MLP of moe_intermediate_size; a token runs its top-k experts.
  int64_t num_experts = 0;                // E (num_local_experts / num_experts); 0: every layer dense
  int64_t num_experts_per_tok = 0;        // k
  int64_t moe_intermediate_size = 0;      // each expert's F (Mixtral: intermediate_size)
  bool norm_topk_prob = true;             // the k routing weights divided by their sum (Mixtral always)
  bool routing_weights_in_compute_dtype = false;  // Qwen3-MoE rounds them to the compute dtype; Mixtral keeps float32
  int64_t decoder_sparse_step = 1;        // Qwen3-MoE: layer i is sparse when (i + 1) % step == 0 ...
  std::vector<int64_t> mlp_only_layers;   // ... and i is not listed here (those keep a dense MLP of intermediate_size)
  double router_aux_loss_coef = 0.001;    // the load-balancing loss's weight when the router is trained
  bool output_router_logits = false;      // transformers then adds the load-balancing loss to the training loss

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
  int64_t rotary_dim() const;           // dims of each head that RoPE turns (head_dim unless partial)
  double attention_scale() const;       // the factor on q·kᵀ
  // The decoder projections of layer `layer`, by name within it, attention first: self_attn.q_proj ... mlp.down_proj
  // (self_attn.qkv_proj, self_attn.o_proj, mlp.gate_up_proj, mlp.down_proj when fused). A sparse layer lists its router
  // and then each expert's gate, up and down projections: block_sparse_moe.gate, block_sparse_moe.experts.0.w1, ...
  std::vector<std::string> layer_projection_names(int64_t layer) const;
  bool is_sparse_layer(int64_t layer) const;  // the layer's MLP is a router and experts
  std::string moe_block_name() const;         // "block_sparse_moe" (Mixtral) or "mlp"
  // An expert's gate, up and down projection names: w1, w3, w2 (Mixtral) or gate_proj, up_proj, down_proj.
  std::vector<std::string> expert_projection_names() const;
  void validate(const std::string& where) const;  // InputError on inconsistent sizes
};

// After a preset's sizes changed (init-model): the settings that follow them. Gemma's layer types (every
// `sliding_window_pattern`-th layer full; 0: the family's 2 or 6) and query scale (hidden/heads); Phi-3's longrope
// factors (rotary_dim/2 each, rising smoothly: short 1..1.5, long 1..16).
void fit_preset_to_sizes(ModelConfig& c, int64_t sliding_window_pattern = 0);

// Gemma's layer pattern: every `pattern`-th layer (1-based) full attention, the others sliding.
std::vector<std::string> gemma_layer_types(int64_t num_layers, int64_t pattern);

// "llama"|"mistral"|"qwen2"|"qwen3"|"gemma2"|"gemma3"|"phi3"|"mixtral"|"qwen3_moe"
Architecture parse_architecture_name(const std::string& name);
std::string supported_architectures();                           // for error messages

}  // namespace qtune
