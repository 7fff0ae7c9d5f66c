// DenseWeight and FrozenLinear implementation.
#include "models/frozen_linear.h"

namespace qtune {

std::string dtype_short_name(at::ScalarType dtype) {
  switch (dtype) {
    case at::kFloat: return "f32";
    case at::kBFloat16: return "bf16";
    case at::kHalf: return "f16";
    case at::kDouble: return "f64";
    default: return c10::toString(dtype);
  }
}

torch::Tensor batch_invariant_matmul(const torch::Tensor& x, const torch::Tensor& m) {
  if (!x.is_cpu() || x.dim() != 3) return torch::matmul(x, m);
  // One 2-D GEMM per sequence. (A batched GEMM over m expanded to [B, in, out] would be the same per sequence,
  // but in bf16 LibTorch copies the stride-0 operand on every call and runs at a third of the 2-D rate.)
  std::vector<torch::Tensor> rows;
  rows.reserve(static_cast<std::size_t>(x.size(0)));
  for (int64_t b = 0; b < x.size(0); ++b) rows.push_back(torch::matmul(x[b], m));
  return rows.size() == 1 ? rows.front().unsqueeze(0) : torch::stack(rows);
}

DenseWeight::DenseWeight(torch::Tensor weight) : weight_(std::move(weight)) {
  TORCH_CHECK(weight_.dim() == 2, "DenseWeight expects [out, in], got ", weight_.sizes());
  weight_.set_requires_grad(false);
}

std::string DenseWeight::format() const { return dtype_short_name(weight_.scalar_type()); }

FrozenLinearImpl::FrozenLinearImpl(std::shared_ptr<FrozenWeight> weight, torch::Tensor bias)
    : weight_(std::move(weight)), bias_(std::move(bias)) {
  if (bias_.defined()) {
    TORCH_CHECK(bias_.dim() == 1 && bias_.size(0) == weight_->out_features(), "bias must be [out]");
    register_buffer("bias", bias_);
  }
}

torch::Tensor FrozenLinearImpl::forward(const torch::Tensor& x) {
  torch::Tensor y = weight_->matmul(x);
  if (bias_.defined()) y = y + bias_;
  return adapter_ ? adapter_->add_to(*this, std::move(y), x) : y;
}

void FrozenLinearImpl::set_weight(std::shared_ptr<FrozenWeight> weight) {
  TORCH_CHECK(weight->in_features() == weight_->in_features() && weight->out_features() == weight_->out_features(),
              "set_weight: another shape");
  weight_ = std::move(weight);
}

void FrozenLinearImpl::set_adapter(std::shared_ptr<LinearAdapter> adapter) {
  if (adapter_) unregister_module("adapter");
  adapter_ = std::move(adapter);
  if (adapter_) register_module("adapter", adapter_);
}

}  // namespace qtune
