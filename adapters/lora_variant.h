// The seam every LoRA flavour goes through (PEFT's LoraVariant): the variant's own start values, what the
// layer adds to the base output, and what a merge makes of the base weight. Plain LoRA and DoRA implement
// it; how A and B start (kaiming, gaussian, PiSSA, OLoRA) is adapters/lora_init.h.
//
// Legend: R rank, in/out the projection's features, s the scale (α/R or α/√R), W the base weight as the
// layer computes with it (deq(W) on a 4-bit base), x the adapter's input after dropout.
//   LoRA:  y' = y + s·(x·Aᵀ)·Bᵀ                              merged: W + s·B·A
//   DoRA:  y' = y + (g − 1)⊙(x·Wᵀ) + g⊙s·(x·Aᵀ)·Bᵀ,          merged: g⊙(W + s·B·A)
//          g = m / ‖W + s·B·A‖ per output row, the norm held constant in the backward (DoRA §4.3, as PEFT)
#pragma once

#include "core/torch.h"

#include <functional>
#include <string>

#include "models/frozen_linear.h"

namespace qtune {

// An adapter's trained tensors (or a frozen copy of them).
struct LoraTensors {
  torch::Tensor A;          // [R, in]
  torch::Tensor B;          // [out, R]
  torch::Tensor magnitude;  // DoRA's m [out] ("lora_magnitude_vector"); undefined for plain LoRA
};

// Where a training backward puts the adapter's gradients instead of .grad: sums shaped as the tensors, in
// the sums' dtype; `added` runs once they hold this backward's part (see LoraAdapterImpl::sum_gradients_into).
struct LoraGradientSums {
  torch::Tensor A, B, magnitude;
  std::function<void()> added;
};

// What a variant's forward sees.
struct LoraInput {
  const FrozenLinearImpl& layer;  // the base projection (DoRA reads its weight and bias)
  torch::Tensor y;                // x·Wᵀ + b for the undropped input: a fresh tensor, updated in place where possible
  torch::Tensor x;                // the adapter's input, after dropout
  bool dropped = false;           // dropout changed x, so y is not x·Wᵀ + b of this x
  double scale = 1;
  LoraGradientSums* sums = nullptr;  // nullptr: autograd's own gradients (.grad), or no autograd
};

class LoraVariant {
 public:
  virtual ~LoraVariant() = default;
  // The variant's own tensors, once A and B hold their start values; `base` is W in float32 [out, in].
  virtual void init(LoraTensors& t, const torch::Tensor& base, double scale) const = 0;
  // y' for `in` (see the legend).
  virtual torch::Tensor forward(const LoraTensors& t, LoraInput in) const = 0;
  // The merged weight [out, in] in float32 (float64 for a float64 base), from `base` = W (rounded as training saw it).
  virtual torch::Tensor merged_weight(const LoraTensors& t, const torch::Tensor& base, double scale) const = 0;
};

// DoRA's when use_dora, else plain LoRA's.
const LoraVariant& lora_variant(bool use_dora);

// x [..., in] · m [in, out] with LoRA's factors cast to x's dtype: s·(x·Aᵀ)·Bᵀ.
torch::Tensor low_rank_term(const torch::Tensor& x, const torch::Tensor& A, const torch::Tensor& B, double scale);

}  // namespace qtune
