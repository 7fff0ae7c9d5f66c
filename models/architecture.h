// The HF tensor table of a checkpoint: every tensor name and shape a ModelConfig implies,
// and which of them are linear projections (the ones a 4-bit base quantizes).
#pragma once

#include <string>
#include <vector>

#include "models/model_config.h"
#include "models/safetensors.h"

namespace qtune {

struct WeightSpec {
  std::string name;            // "model.layers.0.self_attn.q_proj.weight"
  std::vector<int64_t> shape;  // [out, in] for projections
  bool decoder_projection;     // q/k/v/o/gate/up/down weights (experts' too): quantized in a 4-bit base
  bool router = false;         // an MoE router [E, D]: a projection kept in the compute dtype
};

std::vector<WeightSpec> hf_weight_specs(const ModelConfig& config);

// Parameter counts by group, from the table (not from loaded tensors).
struct ParameterCounts {
  int64_t embedding = 0;          // embed_tokens
  int64_t lm_head = 0;            // 0 when tied
  int64_t decoder_projections = 0;  // the experts' included
  int64_t routers = 0;            // MoE routers (kept in the compute dtype, like the norms)
  int64_t other = 0;              // norms and biases
  // MoE: the experts' share of decoder_projections, and the part of it one token runs (k of E experts per sparse layer).
  int64_t expert_projections = 0, active_expert_projections = 0;
  int64_t total() const { return embedding + lm_head + decoder_projections + routers + other; }
  // The parameters one token uses: all but the experts it is not routed to (= total() for a dense model).
  int64_t active() const { return total() - expert_projections + active_expert_projections; }
};
ParameterCounts count_parameters(const ModelConfig& config);

// Bytes of a 4-bit (bitsandbytes layout) base: projections at 4 bits plus one absmax per `block_size`
// weights (fp32, or 8-bit with one fp32 scale per 256 absmax under double quantization); everything
// else in `other_dtype_bytes` per parameter.
double four_bit_bytes(const ParameterCounts& counts, int64_t block_size, bool double_quant, int other_dtype_bytes);

}  // namespace qtune
