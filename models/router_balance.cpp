// RouterBalance: counting in the forward, the gradient added by an autograd node per sparse layer.
#include "models/router_balance.h"

namespace qtune {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// out passes through; the layer's Σ_n p gets the balance's gradient (the loss term it stands for is linear in it).
struct BalanceGradient : public torch::autograd::Function<BalanceGradient> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& out, const torch::Tensor& prob_sum, const RouterBalance* balance) {
    ctx->saved_data["balance"] = reinterpret_cast<int64_t>(balance);
    ctx->saved_data["dtype"] = static_cast<int64_t>(prob_sum.scalar_type());
    return out.view_as(out);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad_output) {
    const auto* balance = reinterpret_cast<const RouterBalance*>(ctx->saved_data["balance"].toInt());
    const auto dtype = static_cast<at::ScalarType>(ctx->saved_data["dtype"].toInt());
    return {grad_output[0], balance->gradient().to(grad_output[0].device(), dtype), torch::Tensor()};
  }
};

}  // namespace

void RouterBalance::arm(double weight) {
  pending_ = true;
  weight_ = weight;
}

void RouterBalance::disarm() {
  pending_ = recording_ = false;
  weight_ = 0;
}

void RouterBalance::begin_forward(const torch::Tensor& real_tokens) {
  pending_ = false;
  recording_ = true;
  real_tokens_ = real_tokens;
  real_count_ = real_tokens.sum().item<double>();
  choices_ = prob_sums_ = torch::Tensor();
  layers_ = 0;
  rows_ = 0;
}

void RouterBalance::end_forward() { recording_ = false; }

torch::Tensor RouterBalance::add_layer(const torch::Tensor& out, const torch::Tensor& router_logits, int64_t top_k) {
  if (weight_ == 0 || !real_tokens_.defined()) return out;
  const torch::Tensor p = torch::softmax(router_logits, -1);  // in the logits' dtype, as transformers
  const torch::Tensor mask = real_tokens_.to(p.scalar_type()).unsqueeze(1);
  if (recording_) {
    torch::NoGradGuard no_grad;
    const torch::Tensor chosen = std::get<1>(torch::topk(p, top_k, -1));  // [N, k]
    const torch::Tensor counts = torch::zeros({p.size(1)}, torch::kDouble).to(p.device())
                                     .scatter_add_(0, chosen.reshape(-1), mask.to(torch::kDouble).expand({-1, top_k}).reshape(-1));
    const torch::Tensor sums = (p * mask).sum(0).to(torch::kDouble);
    choices_ = choices_.defined() ? choices_ + counts : counts;
    prob_sums_ = prob_sums_.defined() ? prob_sums_ + sums : sums;
    ++layers_;
    rows_ += real_count_;
  }
  if (!torch::GradMode::is_enabled() || !router_logits.requires_grad()) return out;
  return BalanceGradient::apply(out, (p * mask).sum(0), this);
}

double RouterBalance::loss() const {
  if (layers_ == 0 || rows_ == 0) return 0;
  const double E = static_cast<double>(choices_.size(0));
  return E * ((choices_ / rows_) * (prob_sums_ / rows_)).sum().item<double>();
}

torch::Tensor RouterBalance::gradient() const {
  const double E = static_cast<double>(choices_.size(0));
  return choices_ * (weight_ * E / (rows_ * rows_));
}

}  // namespace qtune
