// AdamW update and state.
#include "trainer/adamw.h"

#include <cmath>
#include <map>

#include <fmt/ranges.h>

#include "core/error.h"

namespace qtune {

AdamW::AdamW(std::vector<std::pair<std::string, torch::Tensor>> parameters, AdamWOptions options) : options_(options) {
  for (auto& [name, param] : parameters) {
    auto fp32 = param.options().dtype(at::kFloat);
    slots_.push_back({name, param, torch::zeros(param.sizes(), fp32), torch::zeros(param.sizes(), fp32)});
  }
}

void AdamW::zero_grad() {
  for (auto& s : slots_)
    if (s.param.grad().defined()) s.param.mutable_grad() = torch::Tensor();
}

void AdamW::step(double lr) {
  torch::NoGradGuard no_grad;
  ++step_;
  const double c1 = 1.0 - std::pow(options_.beta1, static_cast<double>(step_));
  const double c2 = 1.0 - std::pow(options_.beta2, static_cast<double>(step_));
  for (auto& s : slots_) {
    if (!s.param.grad().defined()) continue;
    const torch::Tensor g = s.param.grad().to(at::kFloat);
    torch::Tensor p = s.param.to(at::kFloat);
    if (options_.weight_decay != 0) p.mul_(1.0 - lr * options_.weight_decay);
    s.exp_avg.mul_(options_.beta1).add_(g, 1.0 - options_.beta1);
    s.exp_avg_sq.mul_(options_.beta2).addcmul_(g, g, 1.0 - options_.beta2);
    const torch::Tensor denominator = (s.exp_avg_sq.sqrt() / std::sqrt(c2)).add_(options_.eps);
    p.addcdiv_(s.exp_avg, denominator, -lr / c1);
    if (p.data_ptr() != s.param.data_ptr()) s.param.copy_(p);  // parameters kept in another dtype
  }
}

std::vector<std::pair<std::string, torch::Tensor>> AdamW::state() const {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& s : slots_) {
    out.emplace_back(s.name + ".exp_avg", s.exp_avg);
    out.emplace_back(s.name + ".exp_avg_sq", s.exp_avg_sq);
  }
  return out;
}

void AdamW::load_state(const std::vector<std::pair<std::string, torch::Tensor>>& tensors, int64_t steps_taken, const std::string& where) {
  std::map<std::string, torch::Tensor> by_name(tensors.begin(), tensors.end());
  torch::NoGradGuard no_grad;
  for (auto& s : slots_) {
    const std::pair<const char*, torch::Tensor*> moments[] = {{".exp_avg", &s.exp_avg}, {".exp_avg_sq", &s.exp_avg_sq}};
    for (const auto& [suffix, target] : moments) {
      auto it = by_name.find(s.name + suffix);
      if (it == by_name.end()) input_error("{}: optimizer state '{}{}' is missing (was the checkpoint made with another config?)", where, s.name, suffix);
      if (it->second.sizes() != target->sizes())
        input_error("{}: optimizer state '{}{}' has shape [{}] but the parameter needs [{}]", where, s.name, suffix, fmt::join(it->second.sizes(), ", "),
                    fmt::join(target->sizes(), ", "));
      target->copy_(it->second);
    }
  }
  step_ = steps_taken;
}

}  // namespace qtune
