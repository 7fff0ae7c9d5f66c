// RmsNorm implementation: an autograd function that keeps only x and the per-row 1/rms for the backward
// (autograd through the composition would keep the float32 copy, its square and the normed tensor).
#include "models/rms_norm.h"

#include "kernels/fused_ops.h"

namespace qtune {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct RmsNormFunction : public torch::autograd::Function<RmsNormFunction> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& weight, double eps) {
    RmsNormResult r = rms_norm_forward(x, weight, eps);
    ctx->save_for_backward({x, weight, r.rstd});
    return r.y;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad_output) {
    const auto saved = ctx->get_saved_variables();
    return {rms_norm_backward(grad_output[0], saved[0], saved[1], saved[2]), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

RmsNormImpl::RmsNormImpl(torch::Tensor weight, double eps, bool unit_offset) : weight_(std::move(weight)), eps_(eps) {
  TORCH_CHECK(weight_.dim() == 1, "RmsNorm weight must be 1-D, got ", weight_.sizes());
  if (unit_offset) weight_ = weight_.to(weight_.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat) + 1.0;
  weight_.set_requires_grad(false);
  register_buffer("weight", weight_);
}

torch::Tensor RmsNormImpl::forward(const torch::Tensor& x) {
  if (torch::GradMode::is_enabled() && x.requires_grad()) return RmsNormFunction::apply(x, weight_, eps_);
  return rms_norm_forward(x, weight_, eps_).y;
}

}  // namespace qtune
