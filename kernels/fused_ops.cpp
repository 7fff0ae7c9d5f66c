// CPU implementations of the fused ops (ATen, the same arithmetic as the plain composition the models used
// before) and the dispatch to CUDA.
#include "kernels/fused_ops.h"

namespace qtune {
namespace {

// The dtype of the row statistics: float32, float64 for float64 tensors (the exact gradient checks).
at::ScalarType stat_type(const at::Tensor& x) { return x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat; }

// [B, T, H·Dh] or [B, T, H, Dh] seen as [B, T, H, Dh].
at::Tensor heads_view(const at::Tensor& x, const at::Tensor& cos, int64_t head_dim) {
  TORCH_CHECK(x.dim() >= 3 && x.is_contiguous() && head_dim % 2 == 0, "rope: x must be a contiguous [B, T, H·Dh], got ", x.sizes());
  TORCH_CHECK(cos.dim() == 3 && cos.size(0) == x.size(0) && cos.size(1) == x.size(1) && cos.size(2) == head_dim,
              "rope: cos/sin must be [B, T, Dh], got ", cos.sizes(), " for x ", x.sizes());
  return x.view({x.size(0), x.size(1), -1, head_dim});
}

// (x₁, x₂) -> (x₁·c − x₂·s, x₂·c + x₁·s) per head; sign −1 rotates backwards (the gradient).
at::Tensor rotate(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, int64_t head_dim, double sign) {
  const at::Tensor h = heads_view(x, cos, head_dim);  // [B, T, H, Dh]
  const int64_t half = head_dim / 2;
  const at::Tensor c = cos.unsqueeze(2), s = sin.unsqueeze(2) * sign;  // [B, T, 1, Dh]
  const at::Tensor rotated = at::cat({-h.slice(-1, half), h.slice(-1, 0, half)}, -1);
  return (h * c + rotated * s).view(x.sizes());
}

}  // namespace

RmsNormResult rms_norm_forward(const at::Tensor& x, const at::Tensor& weight, double eps) {
  TORCH_CHECK(weight.dim() == 1 && x.size(-1) == weight.size(0), "rms_norm: weight [N] for x [..., N], got ", weight.sizes(), " and ", x.sizes());
  const bool float_weight = weight.scalar_type() != x.scalar_type();  // Gemma: scaled in float32, rounded once
#ifdef QTUNE_WITH_CUDA
  if (x.is_cuda() && x.scalar_type() != at::kDouble && !float_weight) return rms_norm_forward_cuda(x, weight, eps);
#endif
  const at::Tensor x32 = x.to(stat_type(x));
  const at::Tensor rstd = at::rsqrt(x32.pow(2).mean(-1, /*keepdim=*/true) + eps);  // [..., 1]
  if (float_weight) return {(x32 * rstd * weight.to(x32.scalar_type())).to(x.scalar_type()), rstd.reshape({-1})};
  return {weight * (x32 * rstd).to(x.scalar_type()), rstd.reshape({-1})};
}

at::Tensor rms_norm_backward(const at::Tensor& grad_y, const at::Tensor& x, const at::Tensor& weight, const at::Tensor& rstd) {
#ifdef QTUNE_WITH_CUDA
  if (x.is_cuda() && x.scalar_type() != at::kDouble && weight.scalar_type() == x.scalar_type()) return rms_norm_backward_cuda(grad_y, x, weight, rstd);
#endif
  const at::ScalarType t = stat_type(x);
  std::vector<int64_t> row_shape = x.sizes().vec();
  row_shape.back() = 1;
  const at::Tensor r = rstd.view(row_shape);
  const at::Tensor normed = x.to(t) * r;                                 // x̂
  const at::Tensor g = grad_y.to(t) * weight.to(t);                      // g'
  const at::Tensor mean_gn = (g * normed).mean(-1, /*keepdim=*/true);    // mean(g' ⊙ x̂)
  return (r * (g - normed * mean_gn)).to(x.scalar_type());
}

void rope_forward_(at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, int64_t head_dim) {
#ifdef QTUNE_WITH_CUDA
  if (x.is_cuda() && x.scalar_type() != at::kDouble) return rope_forward_cuda_(x, cos, sin, head_dim);
#endif
  x.copy_(rotate(x, cos, sin, head_dim, 1.0));  // one temporary on the CPU; the CUDA kernel has none
}

at::Tensor rope_backward(const at::Tensor& grad_y, const at::Tensor& cos, const at::Tensor& sin, int64_t head_dim) {
#ifdef QTUNE_WITH_CUDA
  if (grad_y.is_cuda() && grad_y.scalar_type() != at::kDouble) return rope_backward_cuda(grad_y.contiguous(), cos, sin, head_dim);
#endif
  return rotate(grad_y.contiguous(), cos, sin, head_dim, -1.0);
}

at::Tensor swiglu_forward(const at::Tensor& gate, const at::Tensor& up) {
  TORCH_CHECK(gate.sizes() == up.sizes(), "swiglu: gate and up must have one shape, got ", gate.sizes(), " and ", up.sizes());
#ifdef QTUNE_WITH_CUDA
  if (gate.is_cuda() && gate.scalar_type() != at::kDouble) return swiglu_forward_cuda(gate.contiguous(), up.contiguous());
#endif
  if (gate.scalar_type() == at::kFloat || gate.scalar_type() == at::kDouble) return at::silu(gate) * up;
  return (at::silu(gate.to(at::kFloat)) * up.to(at::kFloat)).to(gate.scalar_type());  // the CPU has no half silu: float32, rounded once
}

std::pair<at::Tensor, at::Tensor> swiglu_backward(const at::Tensor& grad_h, const at::Tensor& gate, const at::Tensor& up) {
#ifdef QTUNE_WITH_CUDA
  if (gate.is_cuda() && gate.scalar_type() != at::kDouble) return swiglu_backward_cuda(grad_h.contiguous(), gate.contiguous(), up.contiguous());
#endif
  const at::ScalarType t = stat_type(gate);
  const at::Tensor g = gate.to(t), u = up.to(t), dh = grad_h.to(t);
  const at::Tensor grad_gate = at::silu_backward(dh * u, g);  // ATen's fused dsilu: dh·u·σ·(1 + g·(1 − σ))
  const at::Tensor grad_up = dh * at::silu(g);
  return {grad_gate.to(gate.scalar_type()), grad_up.to(up.scalar_type())};
}

}  // namespace qtune
