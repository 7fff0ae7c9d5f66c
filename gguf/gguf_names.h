// How llama.cpp names and lays out what a Hugging Face checkpoint holds: the architecture's metadata keys and
// the tensor names ("model.layers.3.self_attn.q_proj.weight" <-> "blk.3.attn_q.weight", per family: Gemma's
// sandwich norms, Phi-3's fused projections, a mixture of experts' router and stacked experts), the Llama family's
// Q/K row order (HF keeps the two rotary halves of each head apart; ggml's rope pairs neighbouring rows) and Gemma's
// norm weights (stored as 1 + w: ggml's RMS norm multiplies by the weight, Gemma's by 1 + w).
#pragma once

#include "core/torch.h"

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "gguf/gguf_file.h"
#include "models/model_config.h"

namespace qtune {

// "llama" (Llama, Mistral and Mixtral), "qwen2", "qwen3", "gemma2", "gemma3", "phi3", "qwen3moe".
std::string gguf_architecture(Architecture arch);

// general.* and <arch>.* keys: context length, sizes, head counts, RMS epsilon, rope base and scaling, sliding
// window, and each family's own (gguf_family_keys.cpp).
void add_architecture_metadata(const ModelConfig& config, const std::string& model_name, GgufMetadata& metadata);

// Rope scaling that llama.cpp takes as tensors, by GGUF name: Llama 3's rope_freqs.weight [Dh/2] of per-frequency
// divisors; longrope's rope_factors_long.weight and rope_factors_short.weight [rotary dims / 2]. Empty for others.
std::vector<std::pair<std::string, torch::Tensor>> rope_factor_tensors(const ModelConfig& config);

// The GGUF name of an HF tensor of a model of `arch`, nullopt for one llama.cpp does not use; and the inverse.
std::optional<std::string> gguf_tensor_name(Architecture arch, const std::string& hf_name);
std::optional<std::string> hf_tensor_name(Architecture arch, const std::string& gguf_name);

// Mixture of experts: llama.cpp keeps a sparse layer's experts stacked, one tensor per projection (gguf-py's
// ffn_gate_exps, ffn_up_exps, ffn_down_exps), numpy shape [E, out, in] = ggml ne [in, out, E]: expert e's rows are
// rows e·out .. e·out + out - 1, each a row of its own. The router (<block>.gate) is ffn_gate_inp (gguf_tensor_name).
// An expert projection's stacked tensor and its place in it: "model.layers.3.block_sparse_moe.experts.5.w1.weight" ->
// {"blk.3.ffn_gate_exps.weight", 5}; nullopt for any other tensor.
struct StackedExpert {
  std::string gguf_name;
  int64_t expert = 0;
};
std::optional<StackedExpert> stacked_expert_tensor(const ModelConfig& config, const std::string& hf_name);

// An HF tensor's values as the GGUF file holds them, and back: the rows of q_proj / k_proj (weight [H·Dh, D], bias
// [H·Dh], or a LoRA B [H·Dh, r]) regrouped for the Llama family (Qwen, Gemma and Phi-3 use NeoX-style rope in
// llama.cpp too: rows as HF has them); Gemma's norm weights plus 1 (minus 1 back, in float32: exact wherever
// 1 + w >= 0.5, so the model's own float32 1 + w comes out bit for bit). Other tensors unchanged.
torch::Tensor to_gguf_values(const ModelConfig& config, const std::string& hf_name, const torch::Tensor& t);
torch::Tensor from_gguf_values(const ModelConfig& config, const std::string& hf_name, const torch::Tensor& t);

// The family keys beyond the common ones (gguf_family_keys.cpp): Gemma's soft-capping, layer pattern, local rope
// base and query scale; Phi-3's longrope keys and window; a mixture of experts' expert counts and width.
void add_family_metadata(const ModelConfig& config, const std::string& arch, GgufMetadata& metadata);
void read_family_metadata(const GgufFile& file, const std::string& arch, ModelConfig& config);

}  // namespace qtune
