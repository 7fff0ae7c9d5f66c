// Writing a randomly initialized model in exact Hugging Face layout (config.json, generation_config.json,
// model.safetensors or shards + index), streamed tensor by tensor so any size fits in memory.
#pragma once

#include <c10/core/ScalarType.h>

#include <cstdint>
#include <optional>
#include <string>

#include "models/model_config.h"
#include "models/model_loader.h"

namespace qtune {

struct InitModelOptions {
  ModelConfig config;
  std::string out_dir;
  std::uint64_t seed = 0;
  at::ScalarType dtype = at::kBFloat16;
  std::uint64_t max_shard_bytes = 5'000'000'000ull;  // as transformers' save_pretrained default
  bool force = false;                                 // allow writing into a folder that holds a model
  // Write the decoder projections in 4 bits (bitsandbytes format, as `qtune quantize` would from the
  // 16-bit model of the same seed), so a 70B-shaped model never exists in 16 bits on disk.
  std::optional<QuantizeOptions> quantize;
};

// Initialization as transformers does it: projections and embeddings ~ N(0, initializer_range),
// biases 0, norm weights 1. Each tensor draws from its own generator seeded by (seed, tensor name),
// so the result depends only on the seed and the config. With `quantize`, each 4-bit projection is made and
// quantized when the writer reaches it: host memory ≈ one tensor, whatever the model's size (with double
// quantization every projection is made twice: the shard headers need each one's nested offset first).
void write_random_model(const InitModelOptions& options);

}  // namespace qtune
