// RmsNorm: y = w ⊙ x / sqrt(mean(x²) + eps), computed in fp32 and cast back (as transformers does).
// Legend: N normalized size (D, or Dh for Qwen3's q/k norm).
#pragma once

#include "core/torch.h"

namespace qtune {

class RmsNormImpl : public torch::nn::Module {
 public:
  RmsNormImpl(torch::Tensor weight /* [N], frozen */, double eps);
  torch::Tensor forward(const torch::Tensor& x);  // [..., N] -> [..., N], x's dtype
  const torch::Tensor& weight() const { return weight_; }

 private:
  torch::Tensor weight_;  // [N]
  double eps_;
};
TORCH_MODULE(RmsNorm);

}  // namespace qtune
