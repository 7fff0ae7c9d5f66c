// Loading a Hugging Face checkpoint folder (config.json + safetensors) into a CausalLM, after checking
// every tensor the config implies against the files.
#pragma once

#include "core/torch.h"

#include <map>
#include <string>
#include <vector>

#include "kernels/blockwise_quant.h"
#include "models/architecture.h"
#include "models/bnb_format.h"
#include "models/model_config.h"
#include "models/safetensors.h"
#include "models/transformer.h"

namespace qtune {

// A checkpoint folder whose tensors were checked against its config: names, shapes, float dtypes.
struct CheckedCheckpoint {
  ModelConfig config;
  Checkpoint checkpoint;
  std::vector<WeightSpec> specs;
  std::map<std::string, int64_t> parameters_by_dtype;  // "bf16" -> count
  std::vector<std::string> unused;                     // tensors in the files the model does not use
  std::optional<BnbConfig> bnb;                        // set for a pre-quantized bitsandbytes 4-bit checkpoint
};

// InputError naming the file and tensor on a missing tensor, a wrong shape or a non-float dtype.
CheckedCheckpoint check_checkpoint(const std::string& dir);

// Load-time 4-bit quantization of the decoder projections (config: load_in_4bit, bnb_4bit_*).
struct QuantizeOptions {
  QuantType type = QuantType::NF4;
  int64_t blocksize = 64;
  bool double_quant = true;
};

struct LoadOptions {
  at::ScalarType dtype = at::kFloat;  // compute dtype: f32 or bf16 (f16 also works)
  torch::Device device = torch::kCPU;
  // Quantize the decoder projections while loading (tensor by tensor from the mapped files, so host
  // memory peaks at the quantized model plus one tensor). A pre-quantized checkpoint loads as it is.
  std::optional<QuantizeOptions> quantize;
  // The decoder's 4-bit weights stay in host memory (for CausalLMImpl::stream_layers_from_host, offload_base):
  // a model too big for the device loads without ever being on it whole.
  bool layers_on_host = false;
};

CausalLM load_causal_lm(const std::string& dir, const LoadOptions& options = {});

// Parses "f32"/"float32", "bf16"/"bfloat16", "f16"/"float16"; InputError naming `where` otherwise.
at::ScalarType parse_dtype(const std::string& name, const std::string& where);

}  // namespace qtune
