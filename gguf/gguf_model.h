// A model from a GGUF file of an architecture qtune runs (llama, qwen2, qwen3, gemma2, gemma3, phi3, qwen3moe; Mistral
// and Mixtral are written as llama): the ModelConfig from the metadata, every tensor dequantized at load into the
// compute dtype (the Llama family's Q/K rows put back in HF order, Gemma's norms less 1, stacked experts split into
// each expert's projections), and the tokenizer from the tokenizer.ggml.* keys.
#pragma once

#include <memory>
#include <string>

#include "data/tokenizer.h"
#include "data/tokenizer_config.h"
#include "gguf/gguf_file.h"
#include "models/model_config.h"
#include "models/model_loader.h"
#include "models/transformer.h"

namespace qtune {

// The HF config of the model a GGUF file holds. InputError naming the file for another architecture or a missing key.
ModelConfig config_from_gguf(const GgufFile& file);

struct GgufModel {
  CausalLM model{nullptr};
  std::unique_ptr<Tokenizer> tokenizer;
  TokenizerConfig tokenizer_config;
};

// options.dtype is the compute dtype; options.quantize re-quantizes the dequantized projections to 4 bits.
GgufModel load_gguf_model(const std::string& path, const LoadOptions& options);

}  // namespace qtune
