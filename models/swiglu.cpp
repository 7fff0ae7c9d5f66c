// SwiGLU autograd function.
#include "models/swiglu.h"

#include "kernels/fused_ops.h"

namespace qtune {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct SwigluFunction : public torch::autograd::Function<SwigluFunction> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& gate, const torch::Tensor& up) {
    ctx->save_for_backward({gate, up});
    return swiglu_forward(gate, up);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad_output) {
    const auto saved = ctx->get_saved_variables();
    auto [grad_gate, grad_up] = swiglu_backward(grad_output[0], saved[0], saved[1]);
    return {grad_gate, grad_up};
  }
};

}  // namespace

torch::Tensor swiglu(const torch::Tensor& gate, const torch::Tensor& up) {
  if (torch::GradMode::is_enabled() && (gate.requires_grad() || up.requires_grad())) return SwigluFunction::apply(gate, up);
  return swiglu_forward(gate, up);
}

torch::Tensor geglu(const torch::Tensor& gate, const torch::Tensor& up) { return at::gelu(gate, "tanh") * up; }

}  // namespace qtune
