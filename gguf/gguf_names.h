// How llama.cpp names and lays out what a Hugging Face checkpoint holds: the architecture's metadata keys and
// the tensor names ("model.layers.3.self_attn.q_proj.weight" <-> "blk.3.attn_q.weight"), and the Llama family's
// Q/K row order (HF keeps the two rotary halves of each head apart; ggml's rope pairs neighbouring rows).
#pragma once

#include "core/torch.h"

#include <optional>
#include <string>

#include "gguf/gguf_file.h"
#include "models/model_config.h"

namespace qtune {

// "llama" (Llama and Mistral), "qwen2", "qwen3".
std::string gguf_architecture(Architecture arch);

// general.* and <arch>.* keys: context length, sizes, head counts, RMS epsilon, rope base and scaling, sliding window.
void add_architecture_metadata(const ModelConfig& config, const std::string& model_name, GgufMetadata& metadata);

// Llama 3 frequency scaling as llama.cpp takes it: the tensor rope_freqs.weight [Dh/2] of per-frequency divisors
// (nullopt for other scalings, which are metadata keys).
std::optional<torch::Tensor> rope_factors(const ModelConfig& config);

// The GGUF name of an HF tensor, nullopt for one llama.cpp does not use.
std::optional<std::string> gguf_tensor_name(const std::string& hf_name);
std::optional<std::string> hf_tensor_name(const std::string& gguf_name);  // the inverse

// The rows of q_proj / k_proj (weight [H·Dh, D], bias [H·Dh], or a LoRA B [H·Dh, r]) in ggml's order for the
// Llama family (a no-op for Qwen, whose rope is NeoX-style in llama.cpp too), and back.
torch::Tensor to_gguf_rows(const ModelConfig& config, const std::string& hf_name, const torch::Tensor& t);
torch::Tensor from_gguf_rows(const ModelConfig& config, const std::string& hf_name, const torch::Tensor& t);

}  // namespace qtune
