// CUDA kernels of the fused decoder ops (RMSNorm, RoPE, SwiGLU; the math is in kernels/fused_ops.h), behind
// launchers that take raw pointers, sizes and a stream (no torch headers). All tensors are contiguous and
// in `type` unless said otherwise; the arithmetic is float32 with one rounding to `type` per output.
// Outputs must not overlap the inputs, except where said. Every launcher returns cudaErrorInvalidValue for
// invalid sizes (or type) and otherwise the launch status.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/quant4_kernels.cuh"

namespace qtune::cuda {

// x [rows, n], weight [n] -> y [rows, n] = weight ⊙ (T)(x · r), rstd [rows] float32 = r = rsqrt(mean(x²) + eps).
cudaError_t rms_norm_forward(const void* x, const void* weight, int64_t rows, int64_t n, float eps, ElementType type, void* y, float* rstd,
                             cudaStream_t stream);

// grad_x [rows, n] = r · (g' − x̂ · mean(g' ⊙ x̂)), g' = grad_y ⊙ weight, x̂ = x · r, with r = rstd [rows] (float32) of the forward.
cudaError_t rms_norm_backward(const void* grad_y, const void* x, const void* weight, const float* rstd, int64_t rows, int64_t n, ElementType type,
                              void* grad_x, cudaStream_t stream);

// x [batch, tokens, heads, head_dim] rotated in place by cos/sin [batch, tokens, head_dim]: for i < head_dim/2,
// (x[i], x[i+h]) -> (x[i]·cos[i] − x[i+h]·sin[i], x[i+h]·cos[i+h] + x[i]·sin[i+h]), h = head_dim/2. Each output reads the
// table at its own index, as the CPU's x·cos + rotate_half(x)·sin does (the tables' halves are equal anyway).
// head_dim: even, > 0.
cudaError_t rope_forward_inplace(void* x, const void* cos, const void* sin, int64_t batch, int64_t tokens, int64_t heads, int64_t head_dim,
                                 ElementType type, cudaStream_t stream);

// The gradient, the rotation by −angle (the forward with sin negated): grad_x[i] = g[i]·cos[i] + g[i+h]·sin[i],
// grad_x[i+h] = g[i+h]·cos[i+h] − g[i]·sin[i+h]. grad_x may be grad_y itself (in place).
cudaError_t rope_backward(const void* grad_y, const void* cos, const void* sin, int64_t batch, int64_t tokens, int64_t heads, int64_t head_dim,
                          ElementType type, void* grad_x, cudaStream_t stream);

// h [n] = silu(gate) ⊙ up, silu(g) = g / (1 + e^−g).
cudaError_t swiglu_forward(const void* gate, const void* up, int64_t n, ElementType type, void* h, cudaStream_t stream);

// s = sigmoid(gate): grad_gate [n] = grad_h ⊙ up ⊙ s ⊙ (1 + gate ⊙ (1 − s)), grad_up [n] = grad_h ⊙ gate ⊙ s.
cudaError_t swiglu_backward(const void* grad_h, const void* gate, const void* up, int64_t n, ElementType type, void* grad_gate, void* grad_up,
                            cudaStream_t stream);

}  // namespace qtune::cuda
