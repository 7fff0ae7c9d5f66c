// AdamW update and state.
#include "trainer/adamw.h"

#include <cmath>
#include <map>

#include <fmt/ranges.h>

#include "core/error.h"

namespace qtune {

AdamW::AdamW(std::vector<AdamWParameter> parameters, AdamWOptions options) : options_(options) {
  for (auto& parameter : parameters) {
    torch::Tensor zeros = torch::zeros(parameter.tensor.sizes(), parameter.tensor.options().dtype(at::kFloat));
    slots_.push_back({std::move(parameter), zeros, zeros.clone()});
  }
}

void AdamW::zero_grad() {
  for (auto& s : slots_)
    if (s.parameter.tensor.grad().defined()) s.parameter.tensor.mutable_grad() = torch::Tensor();
}

void AdamW::step(double lr) {
  torch::NoGradGuard no_grad;
  ++step_;
  const double c1 = 1.0 - std::pow(options_.beta1, static_cast<double>(step_));
  const double c2 = 1.0 - std::pow(options_.beta2, static_cast<double>(step_));
  for (auto& s : slots_) {
    torch::Tensor& param = s.parameter.tensor;
    const double param_lr = lr * s.parameter.lr_factor;
    // No gradient (an MoE expert no token of the step reached) counts as a zero one, as for PEFT's fused experts and
    // as when ranks add their gradients: the moments decay and the parameter still moves with them.
    const torch::Tensor g = param.grad().defined() ? param.grad().to(at::kFloat) : torch::zeros_like(param, at::kFloat);
    torch::Tensor p = param.to(at::kFloat);
    if (s.parameter.weight_decay != 0) p.mul_(1.0 - param_lr * s.parameter.weight_decay);
    s.exp_avg.mul_(options_.beta1).add_(g, 1.0 - options_.beta1);
    s.exp_avg_sq.mul_(options_.beta2).addcmul_(g, g, 1.0 - options_.beta2);
    const torch::Tensor denominator = (s.exp_avg_sq.sqrt() / std::sqrt(c2)).add_(options_.eps);
    p.addcdiv_(s.exp_avg, denominator, -param_lr / c1);
    if (p.data_ptr() != param.data_ptr()) param.copy_(p);  // parameters kept in another dtype
  }
}

std::vector<std::pair<std::string, torch::Tensor>> AdamW::state() const {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& s : slots_) {
    out.emplace_back(s.parameter.name + ".exp_avg", s.exp_avg);
    out.emplace_back(s.parameter.name + ".exp_avg_sq", s.exp_avg_sq);
  }
  return out;
}

void AdamW::load_state(const std::vector<std::pair<std::string, torch::Tensor>>& tensors, int64_t steps_taken, const std::string& where) {
  std::map<std::string, torch::Tensor> by_name(tensors.begin(), tensors.end());
  torch::NoGradGuard no_grad;
  for (auto& s : slots_) {
    const std::pair<const char*, torch::Tensor*> moments[] = {{".exp_avg", &s.exp_avg}, {".exp_avg_sq", &s.exp_avg_sq}};
    for (const auto& [suffix, target] : moments) {
      const std::string& name = s.parameter.name;
      auto it = by_name.find(name + suffix);
      if (it == by_name.end()) input_error("{}: optimizer state '{}{}' is missing (was the checkpoint made with another config?)", where, name, suffix);
      if (it->second.sizes() != target->sizes())
        input_error("{}: optimizer state '{}{}' has shape [{}] but the parameter needs [{}]", where, name, suffix, fmt::join(it->second.sizes(), ", "),
                    fmt::join(target->sizes(), ", "));
      target->copy_(it->second);
    }
  }
  step_ = steps_taken;
}

}  // namespace qtune
