// RmsNorm: y = w ⊙ x / sqrt(mean(x²) + eps), computed in fp32 and cast back (as transformers does).
// Gemma's (unit_offset): y = (x̂ ⊙ (1 + w)) in fp32, cast once; the scale 1 + w is kept in fp32.
// Legend: N normalized size (D, or Dh for Qwen3's q/k norm).
#pragma once

#include "core/torch.h"

namespace qtune {

class RmsNormImpl : public torch::nn::Module {
 public:
  RmsNormImpl(torch::Tensor weight /* [N], frozen */, double eps, bool unit_offset = false);
  torch::Tensor forward(const torch::Tensor& x);  // [..., N] -> [..., N], x's dtype
  const torch::Tensor& weight() const { return weight_; }  // the scale applied (1 + w for Gemma)

 private:
  torch::Tensor weight_;  // [N]
  double eps_;
};
TORCH_MODULE(RmsNorm);

}  // namespace qtune
