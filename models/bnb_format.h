// The bitsandbytes 4-bit checkpoint format (HF `*-bnb-4bit` repos): the tensors stored for each 4-bit
// weight, the `quant_state` JSON, and the `quantization_config` of config.json.
//
// For a weight "<w>" (e.g. model.layers.0.mlp.up_proj.weight) of N elements, blocksize B:
//   <w>                                    U8  [ceil(N/2), 1]   two codes per byte, first in the high nibble
//   <w>.absmax                             F32 [ceil(N/B)]      or U8 codes when double-quantized
//   <w>.quant_map                          F32 [16]             value of each code
//   <w>.nested_absmax                      F32 [ceil(N/B/256)]  double quantization only
//   <w>.nested_quant_map                   F32 [256]            double quantization only
//   <w>.quant_state.bitsandbytes__<nf4|fp4> U8 [len]            UTF-8 JSON: quant_type, blocksize, dtype, shape,
//                                                                (nested_blocksize, nested_dtype, nested_offset)
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "kernels/blockwise_quant.h"
#include "models/safetensors.h"

namespace qtune {

// The tensors bitsandbytes stores for weight `name`, in its order.
std::vector<std::pair<std::string, at::Tensor>> bnb_tensors(const std::string& name, const Quantized4bit& q);

// The names, dtypes and shapes of bnb_tensors(name, q) from q's metadata alone (type, blocksize, shape, dtype and, when
// double-quantized, nested_blocksize and offset): what a writer declares before the codes exist.
std::vector<TensorSpec> bnb_tensor_specs(const std::string& name, const Quantized4bit& q);

// The quant_state JSON exactly as Python's json.dumps writes it for bitsandbytes.
std::string bnb_quant_state_json(const Quantized4bit& q);

// True when `name` is one of the auxiliary tensors of a 4-bit weight (absmax, quant_map, ...).
bool is_bnb_aux_tensor(const std::string& name);

// Reads and validates weight `name`; `expected_shape` comes from config.json. InputError naming the
// file, the tensor and the field on any inconsistency (sizes, quant type, blocksize, shape).
Quantized4bit read_bnb_weight(const Checkpoint& checkpoint, const std::string& name, const std::vector<int64_t>& expected_shape);

// How a checkpoint's config.json says it is quantized.
struct BnbConfig {
  bool load_in_4bit = false;
  QuantType type = QuantType::NF4;
  bool double_quant = false;
  std::string compute_dtype = "bfloat16";
};
// nullopt when config.json has no bitsandbytes 4-bit quantization_config; InputError when it is malformed.
std::optional<BnbConfig> read_bnb_config(const nlohmann::json& config, const std::string& where);
// The quantization_config object transformers writes for a 4-bit model.
nlohmann::ordered_json bnb_quantization_config(const BnbConfig& config);

}  // namespace qtune
