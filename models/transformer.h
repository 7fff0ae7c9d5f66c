// The decoder of every family (Llama 2/3, Mistral, Qwen2/3, Gemma 2/3, Phi-3/4): embeddings (Gemma: times √D),
// RMSNorm (Gemma: 1 + w), RoPE (per layer type for Gemma 3, partial and longrope for Phi), GQA attention (optional
// q/k/v/o bias, q/k norms, sliding window per layer, Gemma's query scale and logit soft-capping, Phi-3's fused
// qkv_proj), gated MLP (SwiGLU or GeGLU, Phi-3's fused gate_up_proj), Gemma's norms after attention and MLP,
// lm_head (optionally tied, Gemma 2's final soft-capping), KV cache; Mixtral's and Qwen3-MoE's routed experts (moe.h). Module and weight names follow transformers;
// the ModelConfig switches choose the parts.
// Legend: B batch, T tokens, Tk keys (cache + new), D hidden, H heads, KV kv-heads, Dh head dim,
// F ffn, V vocab, L layers.
#pragma once

#include "core/torch.h"

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "models/activation_offload.h"
#include "models/frozen_linear.h"
#include "models/layer_stream.h"
#include "models/model_config.h"
#include "models/moe.h"
#include "models/rms_norm.h"
#include "models/rope.h"
#include "models/sequence_layout.h"

namespace qtune {

// Cached keys/values for generation: one entry per layer.
struct KVCache {
  std::vector<torch::Tensor> keys;    // L x [B, KV, Tc, Dh] (RoPE already applied)
  std::vector<torch::Tensor> values;  // L x [B, KV, Tc, Dh]
  torch::Tensor segments;             // [B, Tc] segment ids of the cached tokens
  int64_t length() const { return segments.defined() ? segments.size(1) : 0; }
};

// The frozen tensors of one model, keyed by HF name, as a loader produces them. Projections come as
// FrozenWeights so that the storage format (dense, 4-bit) is the loader's choice.
struct ModelWeights {
  std::map<std::string, std::shared_ptr<FrozenWeight>> projections;  // "model.layers.0.self_attn.q_proj"
  std::map<std::string, torch::Tensor> tensors;                       // everything else, by full tensor name
  torch::Tensor take(const std::string& name);                        // throws if absent
};

// Per-forward state shared by every layer.
struct AttentionContext {
  RopeTables rope;
  RopeTables rope_local;  // Gemma 3's sliding layers (their own base); undefined otherwise
  // True when every row is one whole sequence (no padding, no packing, no cache, no window shorter than
  // the row): plain causal attention, and no [T, Tk] mask is made at all (flash attention takes none).
  bool causal = false;
  torch::Tensor visible_full;    // [B, 1, 1, T, Tk] bool (undefined when causal)
  torch::Tensor visible_window;  // same with the sliding window applied (undefined if no window)
};

// How scores are formed: q·kᵀ·scale, then (Gemma 2) c·tanh(scores/c).
struct ScoreOptions {
  std::optional<double> scale;    // none: 1/√Dh
  std::optional<double> softcap;  // none: no capping
};

// softmax(q·kᵀ·scale masked)·v with GQA (query head h uses kv head h / (H/KV)): q [B, H, T, Dh],
// k/v [B, KV, Tk, Dh], visible [B, 1, 1, T, Tk] or undefined with causal -> [B, H, T, Dh].
// CUDA and CPU tensors: scaled_dot_product_attention (on CUDA flash when causal, memory-efficient with a
// mask; on the CPU its flash kernel, 8x the eager math at T = 2048). Soft-capping, and other devices: the
// eager math of transformers (softmax in float32).
torch::Tensor attend(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, const torch::Tensor& visible, bool causal,
                     const ScoreOptions& scores = {});

// Whether attend() goes through scaled_dot_product_attention for tensors on `device`.
bool fused_attention_available(const torch::Device& device);

class AttentionImpl : public torch::nn::Module {
 public:
  AttentionImpl(const ModelConfig& config, int64_t layer, ModelWeights& weights);
  // x [B, T, D] -> [B, T, D]; appends to cache->keys/values[layer] when given.
  torch::Tensor forward(const torch::Tensor& x, const AttentionContext& context, KVCache* cache);

  FrozenLinear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
  FrozenLinear qkv_proj{nullptr};            // Phi-3: q, k and v rows in one projection (then q/k/v_proj are null)
  RmsNorm q_norm{nullptr}, k_norm{nullptr};  // Qwen3, Gemma 3 only

 private:
  // q [B, T, H·Dh], k, v [B, T, KV·Dh] from x [B, T, D].
  std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> project(const torch::Tensor& x);

  int64_t layer_, num_heads_, num_kv_heads_, head_dim_;
  bool windowed_, local_rope_;
  ScoreOptions scores_;
};
TORCH_MODULE(Attention);

class MlpImpl : public torch::nn::Module {
 public:
  MlpImpl(const ModelConfig& config, int64_t layer, ModelWeights& weights);  // the layer's "mlp."
  // One expert of a sparse layer ("<prefix>w1", "<prefix>w3", "<prefix>w2": gate, up, down, no bias).
  MlpImpl(const ModelConfig& config, const std::string& prefix, const std::vector<std::string>& names, ModelWeights& weights);
  torch::Tensor forward(const torch::Tensor& x);  // [..., D]: down(act(gate(x)) ⊙ up(x)), act silu or gelu(tanh)
  // The projections by name within the MLP ("gate_proj", ...; an expert's "w1", ...), gate, up, down.
  std::vector<std::pair<std::string, FrozenLinear>> projections();
  bool uses_gelu() const { return gelu_; }  // GeGLU (Gemma) rather than SwiGLU

  FrozenLinear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
  FrozenLinear gate_up_proj{nullptr};  // Phi-3: gate rows then up rows (then gate/up_proj are null)

 private:
  bool gelu_;
  std::vector<std::string> names_;  // gate, up, down (or gate_up, down when fused)
};
TORCH_MODULE(Mlp);

class DecoderLayerImpl : public torch::nn::Module {
 public:
  DecoderLayerImpl(const ModelConfig& config, int64_t layer, ModelWeights& weights);
  torch::Tensor forward(const torch::Tensor& x, const AttentionContext& context, KVCache* cache);  // [B, T, D]
  // The projections, by name within the layer ("self_attn.q_proj", ...), attention first.
  std::vector<std::pair<std::string, FrozenLinear>> projections();
  torch::Tensor feed_forward(const torch::Tensor& x);  // the dense MLP or the experts

  RmsNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
  RmsNorm pre_feedforward_layernorm{nullptr}, post_feedforward_layernorm{nullptr};  // Gemma 2/3 (sandwich norms)
  Attention self_attn{nullptr};
  Mlp mlp{nullptr};        // dense layers
  MoeBlock moe{nullptr};   // sparse layers (Mixtral's block_sparse_moe, Qwen3-MoE's mlp)
  std::string moe_name;    // the sparse block's module name
};
TORCH_MODULE(DecoderLayer);

class CausalLMImpl : public torch::nn::Module {
 public:
  CausalLMImpl(ModelConfig config, ModelWeights weights);

  // Logits [B, T, V] for input_ids [B, T]. Without a layout: one dense sequence per row.
  torch::Tensor forward(const torch::Tensor& input_ids, const std::optional<SequenceLayout>& layout = std::nullopt,
                        KVCache* cache = nullptr);
  // The final normed hidden states [B, T, D] (for losses that apply lm_head chunk by chunk).
  torch::Tensor hidden_states(const torch::Tensor& input_ids, const SequenceLayout& layout, KVCache* cache = nullptr);
  torch::Tensor logits(const torch::Tensor& hidden);  // [.., D] -> [.., V] (soft-capped where the model caps)

  // Every projection by HF module name ("model.layers.0.self_attn.q_proj"), lm_head excluded.
  std::vector<std::pair<std::string, FrozenLinear>> projections();
  const ModelConfig& config() const { return config_; }
  // Recompute each decoder layer in the backward instead of keeping its activations (training).
  void set_gradient_checkpointing(bool on) { gradient_checkpointing_ = on; }
  // With checkpointing: each layer's saved input waits in host memory (pinned, copied on a side stream on
  // CUDA) until its recompute, so the GPU holds no per-layer activations at all (models/activation_offload.h).
  void set_activation_offloading(bool on) { activation_offload_ = on ? std::make_shared<ActivationOffload>() : nullptr; }
  // offload_base: the 4-bit decoder layers move to (pinned) host memory and are streamed to device()
  // layer by layer while the model computes (models/layer_stream.h). Training then needs gradient
  // checkpointing. Call once the rest of the model is on its device. Throws unless every decoder
  // projection is 4-bit.
  void stream_layers_from_host();
  LayerStream* layer_stream() { return layer_stream_.get(); }  // null unless streaming
  // The routers' load-balancing loss of an MoE model (models/router_balance.h); null for a dense one.
  RouterBalance* router_balance() { return router_balance_.get(); }
  at::ScalarType dtype() const { return embed_tokens_.scalar_type(); }
  torch::Device device() const { return embed_tokens_.device(); }

  torch::nn::ModuleList layers{nullptr};
  RmsNorm norm{nullptr};
  FrozenLinear lm_head{nullptr};

 private:
  ModelConfig config_;
  torch::Tensor embed_tokens_;  // [V, D]
  torch::Tensor inv_freq_;         // [rotary_dim/2] fp32 (longrope: the short factors')
  torch::Tensor inv_freq_long_;    // longrope: the long factors'
  torch::Tensor inv_freq_local_;   // Gemma 3's sliding layers
  RopeTables rope_for(const torch::Tensor& position_ids, bool local) const;
  bool gradient_checkpointing_ = false;
  std::shared_ptr<ActivationOffload> activation_offload_;
  std::shared_ptr<LayerStream> layer_stream_;
  std::shared_ptr<RouterBalance> router_balance_;
};
TORCH_MODULE(CausalLM);

}  // namespace qtune
