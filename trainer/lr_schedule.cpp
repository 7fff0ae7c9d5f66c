// The schedule formulas.
#include "trainer/lr_schedule.h"

#include <algorithm>
#include <cmath>

namespace qtune {

double LrSchedule::factor(int64_t step) const {
  if (kind == "constant") return 1.0;
  if (step < warmup_steps) return static_cast<double>(step) / static_cast<double>(std::max<int64_t>(1, warmup_steps));
  if (kind == "constant_with_warmup") return 1.0;
  const double remaining = static_cast<double>(std::max<int64_t>(1, total_steps - warmup_steps));
  const double progress = static_cast<double>(step - warmup_steps) / remaining;
  if (kind == "linear") return std::max(0.0, 1.0 - progress);
  const double cosine = std::max(0.0, 0.5 * (1.0 + std::cos(M_PI * progress)));  // half a period: 1 -> 0
  return min_lr_ratio + (1.0 - min_lr_ratio) * cosine;
}

int64_t warmup_steps_for(int64_t warmup_steps, double warmup_ratio, int64_t total_steps) {
  if (warmup_steps > 0) return warmup_steps;
  return static_cast<int64_t>(std::ceil(warmup_ratio * static_cast<double>(total_steps)));
}

}  // namespace qtune
