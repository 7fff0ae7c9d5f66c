// The elementwise and row-wise ops of the decoder layer with hand-written backwards: RMSNorm, rotary
// embedding (in place) and SwiGLU. Each works on the CPU (ATen ops: the reference the CUDA kernels are
// tested against) and, in CUDA builds, on CUDA tensors through kernels/cuda/fused_kernels.cu.
// The autograd functions that use them live in models/ (rms_norm.cpp, rope.cpp, transformer.cpp).
// Legend: R rows (all dims but the last), N normalized size, B batch, T tokens,
// H heads, Dh head dim.
//
// RMSNorm  y = w ⊙ cast(x̂),  x̂ = x · r,  r = 1/√(mean(x²) + eps)      (x̂ and r in float32, as transformers)
//          grad_x = r · (g' − x̂ · mean(g' ⊙ x̂)),  g' = grad_y ⊙ w      (float32, cast to x's dtype)
// RoPE     (x₁, x₂) the halves of a head: y₁ = x₁·cos − x₂·sin,  y₂ = x₂·cos + x₁·sin
//          backward: the rotation by −angle: g₁·cos + g₂·sin,  g₂·cos − g₁·sin
// SwiGLU   h = silu(g) ⊙ u,  σ = sigmoid(g):  grad_g = grad_h ⊙ u ⊙ σ ⊙ (1 + g·(1 − σ)),  grad_u = grad_h ⊙ g ⊙ σ
#pragma once

#include <utility>

#include "core/torch.h"

namespace qtune {

struct RmsNormResult {
  at::Tensor y;     // [..., N] in x's dtype
  at::Tensor rstd;  // [R] float32 (float64 for float64 x): r of each row, kept for the backward
};
RmsNormResult rms_norm_forward(const at::Tensor& x /* [..., N] */, const at::Tensor& weight /* [N] */, double eps);
at::Tensor rms_norm_backward(const at::Tensor& grad_y, const at::Tensor& x, const at::Tensor& weight, const at::Tensor& rstd);  // grad_x

// x [B, T, H·Dh] or [B, T, H, Dh], contiguous, rotated in place; cos/sin [B, T, Dh] (both halves equal),
// contiguous, in x's dtype.
void rope_forward_(at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, int64_t head_dim);
at::Tensor rope_backward(const at::Tensor& grad_y, const at::Tensor& cos, const at::Tensor& sin, int64_t head_dim);  // new tensor

at::Tensor swiglu_forward(const at::Tensor& gate, const at::Tensor& up);  // silu(gate) ⊙ up
std::pair<at::Tensor, at::Tensor> swiglu_backward(const at::Tensor& grad_h, const at::Tensor& gate, const at::Tensor& up);  // (grad_gate, grad_up)

#ifdef QTUNE_WITH_CUDA
// The CUDA implementations (kernels/cuda/fused_torch.cpp); same contracts, float32 arithmetic inside.
RmsNormResult rms_norm_forward_cuda(const at::Tensor& x, const at::Tensor& weight, double eps);
at::Tensor rms_norm_backward_cuda(const at::Tensor& grad_y, const at::Tensor& x, const at::Tensor& weight, const at::Tensor& rstd);
void rope_forward_cuda_(at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, int64_t head_dim);
at::Tensor rope_backward_cuda(const at::Tensor& grad_y, const at::Tensor& cos, const at::Tensor& sin, int64_t head_dim);
at::Tensor swiglu_forward_cuda(const at::Tensor& gate, const at::Tensor& up);
std::pair<at::Tensor, at::Tensor> swiglu_backward_cuda(const at::Tensor& grad_h, const at::Tensor& gate, const at::Tensor& up);
#endif

}  // namespace qtune
