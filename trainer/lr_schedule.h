// Learning-rate schedules as transformers defines them (constant, constant_with_warmup, linear, cosine
// with an optional floor): the multiplier of the base learning rate at each optimizer step.
#pragma once

#include <cstdint>
#include <string>

namespace qtune {

struct LrSchedule {
  std::string kind = "cosine";  // constant | constant_with_warmup | linear | cosine
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;
  double min_lr_ratio = 0;  // cosine only: the floor, as a fraction of the base rate

  // Multiplier for the update made at optimizer step `step` (0-based): warmup rises linearly from 0.
  double factor(int64_t step) const;
};

// warmup_steps, or ceil(warmup_ratio x total) when warmup_steps is 0 (transformers' rule).
int64_t warmup_steps_for(int64_t warmup_steps, double warmup_ratio, int64_t total_steps);

}  // namespace qtune
