// ATen glue of the fused CUDA kernels (kernels/cuda/fused_kernels.cu): the *_cuda functions of
// kernels/fused_ops.h. Checks (CUDA tensors on one device, one dtype, shapes), output allocation, and the
// current stream of the inputs' device. f32, bf16 and f16 only: float64 tensors fail the dtype check (the
// dispatch in kernels/fused_ops.cpp keeps them on the ATen path). Inputs that are only read are made
// contiguous (free when they are already); the tensor rotated in place must be contiguous. Built only
// against a CUDA LibTorch (QTUNE_WITH_CUDA).
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include <initializer_list>

#include "kernels/cuda/aten_glue.h"
#include "kernels/cuda/fused_kernels.cuh"
#include "kernels/fused_ops.h"

namespace qtune {
namespace {

using cuda_glue::check;
using cuda_glue::element_type;

struct Named {
  const char* name;
  const at::Tensor& tensor;
};

// The kernels' element type of the first tensor, after checking that every tensor is a CUDA tensor on the
// first one's device, with its dtype.
cuda::ElementType common_type(const char* op, std::initializer_list<Named> tensors) {
  const Named& first = *tensors.begin();
  for (const Named& t : tensors) {
    TORCH_CHECK(t.tensor.defined(), op, ": ", t.name, " is an undefined tensor");
    TORCH_CHECK(t.tensor.is_cuda(), op, ": ", t.name, " must be a CUDA tensor, got one on ", t.tensor.device());
    TORCH_CHECK(t.tensor.device() == first.tensor.device(), op, ": ", t.name, " is on ", t.tensor.device(), " but ", first.name, " on ",
                first.tensor.device());
    TORCH_CHECK(t.tensor.scalar_type() == first.tensor.scalar_type(), op, ": ", t.name, " has dtype ", t.tensor.scalar_type(), " but ", first.name,
                " has ", first.tensor.scalar_type());
  }
  return element_type(first.tensor.scalar_type(), op);
}

int64_t leading_rows(const at::Tensor& x) {  // the product of all sizes but the last
  int64_t rows = 1;
  for (int64_t d = 0; d + 1 < x.dim(); ++d) rows *= x.size(d);
  return rows;
}

void check_weight(const char* op, const at::Tensor& x, const at::Tensor& weight) {
  TORCH_CHECK(x.dim() >= 1 && weight.dim() == 1 && weight.size(0) == x.size(-1), op, ": weight must be [N] for x [..., N], got ", weight.sizes(),
              " and ", x.sizes());
}

// The heads of x [B, T, H·Dh] or [B, T, H, Dh], after checking x against the tables [B, T, Dh].
int64_t rope_heads(const char* op, const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, int64_t head_dim) {
  TORCH_CHECK(head_dim > 0 && head_dim % 2 == 0, op, ": head_dim must be even and positive, got ", head_dim);
  const bool flat = x.dim() == 3 && x.size(2) % head_dim == 0, split = x.dim() == 4 && x.size(3) == head_dim;
  TORCH_CHECK(flat || split, op, ": x must be [B, T, H·Dh] or [B, T, H, Dh] with Dh = ", head_dim, ", got ", x.sizes());
  for (const Named& table : {Named{"cos", cos}, Named{"sin", sin}})
    TORCH_CHECK(table.tensor.dim() == 3 && table.tensor.size(0) == x.size(0) && table.tensor.size(1) == x.size(1) && table.tensor.size(2) == head_dim, op,
                ": ", table.name, " must be [B, T, Dh] = [", x.size(0), ", ", x.size(1), ", ", head_dim, "], got ", table.tensor.sizes());
  return flat ? x.size(2) / head_dim : x.size(2);
}

}  // namespace

RmsNormResult rms_norm_forward_cuda(const at::Tensor& x, const at::Tensor& weight, double eps) {
  const char* op = "rms_norm_forward_cuda";
  const cuda::ElementType type = common_type(op, {{"x", x}, {"weight", weight}});
  check_weight(op, x, weight);
  const c10::cuda::CUDAGuard guard(x.device());
  const at::Tensor input = x.contiguous(), w = weight.contiguous();
  const int64_t rows = leading_rows(input), n = input.size(-1);
  RmsNormResult result{at::empty(input.sizes(), input.options()), at::empty({rows}, input.options().dtype(at::kFloat))};
  check(cuda::rms_norm_forward(input.data_ptr(), w.data_ptr(), rows, n, static_cast<float>(eps), type, result.y.data_ptr(),
                               result.rstd.data_ptr<float>(), at::cuda::getCurrentCUDAStream()),
        op);
  return result;
}

at::Tensor rms_norm_backward_cuda(const at::Tensor& grad_y, const at::Tensor& x, const at::Tensor& weight, const at::Tensor& rstd) {
  const char* op = "rms_norm_backward_cuda";
  const cuda::ElementType type = common_type(op, {{"x", x}, {"grad_y", grad_y}, {"weight", weight}});
  check_weight(op, x, weight);
  TORCH_CHECK(grad_y.sizes() == x.sizes(), op, ": grad_y must have x's shape ", x.sizes(), ", got ", grad_y.sizes());
  const int64_t rows = leading_rows(x), n = x.size(-1);
  TORCH_CHECK(rstd.defined(), op, ": rstd is an undefined tensor");
  TORCH_CHECK(rstd.device() == x.device() && rstd.scalar_type() == at::kFloat && rstd.numel() == rows, op, ": rstd must be float32 [", rows, "] on ",
              x.device(), " (one value per row of x ", x.sizes(), "), got ", rstd.scalar_type(), " ", rstd.sizes(), " on ", rstd.device());
  const c10::cuda::CUDAGuard guard(x.device());
  const at::Tensor input = x.contiguous(), grad = grad_y.contiguous(), w = weight.contiguous(), r = rstd.contiguous();
  at::Tensor grad_x = at::empty(input.sizes(), input.options());
  check(cuda::rms_norm_backward(grad.data_ptr(), input.data_ptr(), w.data_ptr(), r.data_ptr<float>(), rows, n, type, grad_x.data_ptr(),
                                at::cuda::getCurrentCUDAStream()),
        op);
  return grad_x;
}

void rope_forward_cuda_(at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, int64_t head_dim) {
  const char* op = "rope_forward_cuda_";
  const cuda::ElementType type = common_type(op, {{"x", x}, {"cos", cos}, {"sin", sin}});
  const int64_t heads = rope_heads(op, x, cos, sin, head_dim);
  TORCH_CHECK(x.is_contiguous(), op, ": x is rotated in place and must be contiguous, got strides ", x.strides(), " for ", x.sizes());
  const c10::cuda::CUDAGuard guard(x.device());
  const at::Tensor c = cos.contiguous(), s = sin.contiguous();
  check(cuda::rope_forward_inplace(x.data_ptr(), c.data_ptr(), s.data_ptr(), x.size(0), x.size(1), heads, head_dim, type,
                                   at::cuda::getCurrentCUDAStream()),
        op);
}

at::Tensor rope_backward_cuda(const at::Tensor& grad_y, const at::Tensor& cos, const at::Tensor& sin, int64_t head_dim) {
  const char* op = "rope_backward_cuda";
  const cuda::ElementType type = common_type(op, {{"grad_y", grad_y}, {"cos", cos}, {"sin", sin}});
  const int64_t heads = rope_heads(op, grad_y, cos, sin, head_dim);
  const c10::cuda::CUDAGuard guard(grad_y.device());
  const at::Tensor grad = grad_y.contiguous(), c = cos.contiguous(), s = sin.contiguous();
  at::Tensor grad_x = at::empty(grad.sizes(), grad.options());
  check(cuda::rope_backward(grad.data_ptr(), c.data_ptr(), s.data_ptr(), grad.size(0), grad.size(1), heads, head_dim, type, grad_x.data_ptr(),
                            at::cuda::getCurrentCUDAStream()),
        op);
  return grad_x;
}

at::Tensor swiglu_forward_cuda(const at::Tensor& gate, const at::Tensor& up) {
  const char* op = "swiglu_forward_cuda";
  const cuda::ElementType type = common_type(op, {{"gate", gate}, {"up", up}});
  TORCH_CHECK(gate.sizes() == up.sizes(), op, ": gate and up must have one shape, got ", gate.sizes(), " and ", up.sizes());
  const c10::cuda::CUDAGuard guard(gate.device());
  const at::Tensor g = gate.contiguous(), u = up.contiguous();
  at::Tensor h = at::empty(g.sizes(), g.options());
  check(cuda::swiglu_forward(g.data_ptr(), u.data_ptr(), g.numel(), type, h.data_ptr(), at::cuda::getCurrentCUDAStream()), op);
  return h;
}

std::pair<at::Tensor, at::Tensor> swiglu_backward_cuda(const at::Tensor& grad_h, const at::Tensor& gate, const at::Tensor& up) {
  const char* op = "swiglu_backward_cuda";
  const cuda::ElementType type = common_type(op, {{"gate", gate}, {"up", up}, {"grad_h", grad_h}});
  TORCH_CHECK(gate.sizes() == up.sizes() && grad_h.sizes() == gate.sizes(), op, ": grad_h, gate and up must have one shape, got ", grad_h.sizes(), ", ",
              gate.sizes(), " and ", up.sizes());
  const c10::cuda::CUDAGuard guard(gate.device());
  const at::Tensor dh = grad_h.contiguous(), g = gate.contiguous(), u = up.contiguous();
  at::Tensor grad_gate = at::empty(g.sizes(), g.options()), grad_up = at::empty(g.sizes(), g.options());
  check(cuda::swiglu_backward(dh.data_ptr(), g.data_ptr(), u.data_ptr(), g.numel(), type, grad_gate.data_ptr(), grad_up.data_ptr(),
                              at::cuda::getCurrentCUDAStream()),
        op);
  return {grad_gate, grad_up};
}

}  // namespace qtune
