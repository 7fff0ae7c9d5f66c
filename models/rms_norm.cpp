// RmsNorm implementation. Depends on: models/rms_norm.h.
#include "models/rms_norm.h"

namespace qtune {

RmsNormImpl::RmsNormImpl(torch::Tensor weight, double eps) : weight_(std::move(weight)), eps_(eps) {
  TORCH_CHECK(weight_.dim() == 1, "RmsNorm weight must be 1-D, got ", weight_.sizes());
  weight_.set_requires_grad(false);
  register_buffer("weight", weight_);
}

torch::Tensor RmsNormImpl::forward(const torch::Tensor& x) {
  // At least fp32 (as transformers), fp64 for fp64 models (exact gradient checks).
  torch::Tensor x32 = x.to(x.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat);
  torch::Tensor normed = x32 * torch::rsqrt(x32.pow(2).mean(-1, /*keepdim=*/true) + eps_);
  return weight_ * normed.to(x.scalar_type());
}

}  // namespace qtune
