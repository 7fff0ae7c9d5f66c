// Rotary position embedding (the "rotate half" layout of HF Llama: dims [0, Dh/2) pair with [Dh/2, Dh)),
// with default, linear, llama3 and longrope frequency scaling, and partial rotation (the first rotary_dim dims of
// each head turn, the rest pass through: Phi-4-mini).
// Legend: B batch, T tokens, H heads, Dh head dim.
#pragma once

#include "core/torch.h"

#include "models/model_config.h"

namespace qtune {

// Inverse frequencies [rotary_dim/2] in fp32, computed with the same fp32 operations as transformers. longrope:
// the short factors, or the long ones with long_factors.
torch::Tensor rope_inverse_frequencies(int64_t rotary_dim, double theta, const RopeScaling& scaling, bool long_factors = false);

struct RopeTables {
  torch::Tensor cos;  // [B, 1, T, rotary_dim] in the compute dtype
  torch::Tensor sin;  // [B, 1, T, rotary_dim]
};

// cos/sin of position_ids [B, T] (int64) × inv_freq, angles in fp32, times `factor` (longrope's attention factor),
// then cast to `dtype`.
RopeTables rope_tables(const torch::Tensor& inv_freq, const torch::Tensor& position_ids, at::ScalarType dtype, double factor = 1.0);

// x [B, H, T, Dh] -> x·cos + rotate_half(x)·sin (the plain composition: the reference of the tests)
torch::Tensor apply_rope(const torch::Tensor& x, const RopeTables& tables);

// The same rotation done in place on a projection's output x [B, T, H·Dh] or [B, T, H, Dh]: returns x
// itself (or a rotated copy when x is a view or a leaf, which must not be changed). Differentiable; the
// backward keeps only the tables, shared by every layer. Tables narrower than head_dim (partial rotation)
// go through the plain composition instead, into a new tensor.
torch::Tensor apply_rope_(torch::Tensor x, const RopeTables& tables, int64_t head_dim);

}  // namespace qtune
