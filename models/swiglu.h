// SwiGLU, the gate of the Llama MLP: silu(gate) ⊙ up, differentiable with a backward that keeps only
// gate and up (autograd through the composition also keeps silu(gate)). Depends on: kernels/fused_ops.h.
#pragma once

#include "core/torch.h"

namespace qtune {

torch::Tensor swiglu(const torch::Tensor& gate, const torch::Tensor& up);  // [..., F] x2 -> [..., F]

}  // namespace qtune
