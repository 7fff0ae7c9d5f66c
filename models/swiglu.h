// SwiGLU, the gate of the Llama MLP: silu(gate) ⊙ up, differentiable with a backward that keeps only
// gate and up (autograd through the composition also keeps silu(gate)).
#pragma once

#include "core/torch.h"

namespace qtune {

torch::Tensor swiglu(const torch::Tensor& gate, const torch::Tensor& up);  // [..., F] x2 -> [..., F]

// GeGLU, Gemma's gate: gelu_tanh(gate) ⊙ up in the inputs' dtype, as transformers' gelu_pytorch_tanh (autograd
// through ATen's gelu).
torch::Tensor geglu(const torch::Tensor& gate, const torch::Tensor& up);

}  // namespace qtune
