// qtune::AdamW: decoupled weight decay Adam (Loshchilov & Hutter), the update torch.optim.AdamW makes,
// with fp32 moments kept per parameter so that they can be checkpointed and restored exactly. Each
// parameter has its own learning-rate factor and weight decay, as torch's parameter groups do (LoRA+).
//
//   lr_p = lr·lr_factor;  p <- p - lr_p·wd·p;  m <- b1·m + (1-b1)·g;  v <- b2·v + (1-b2)·g²
//   p <- p - lr_p/(1-b1^t) · m / (sqrt(v)/sqrt(1-b2^t) + eps)
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "core/torch.h"

namespace qtune {

struct AdamWOptions {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
};

// One trained tensor with its own settings.
struct AdamWParameter {
  std::string name;
  torch::Tensor tensor;
  double lr_factor = 1.0;     // this tensor learns at lr × lr_factor (the schedule's lr scales every tensor alike)
  double weight_decay = 0.0;  // decoupled, at this tensor's learning rate
};

class AdamW {
 public:
  AdamW(std::vector<AdamWParameter> parameters, AdamWOptions options);
  void step(double lr);  // uses each parameter's .grad()
  void zero_grad();
  int64_t steps_taken() const { return step_; }

  // Moments by "<name>.exp_avg" / "<name>.exp_avg_sq", and the step count, for checkpoints.
  std::vector<std::pair<std::string, torch::Tensor>> state() const;
  void load_state(const std::vector<std::pair<std::string, torch::Tensor>>& tensors, int64_t steps_taken, const std::string& where);

 private:
  struct Slot {
    AdamWParameter parameter;
    torch::Tensor exp_avg, exp_avg_sq;  // moments in fp32
  };
  std::vector<Slot> slots_;
  AdamWOptions options_;
  int64_t step_ = 0;
};

}  // namespace qtune
