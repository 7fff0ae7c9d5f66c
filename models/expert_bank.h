// The experts of a sparse layer as one autograd function, used when no expert projection has an adapter or a bias
// and the activation is SwiGLU (Mixtral and Qwen3-MoE without LoRA on the experts). Per expert, its rows' gate and up
// products go into two [S, I] tensors; SwiGLU runs over all rows at once; then each expert's down product. The
// backward reverses it. Each expert's weights are decoded into one buffer reused from expert to expert (no
// allocation per expert, nothing for the heap to fragment), and autograd keeps one node per layer instead of six per
// expert. The GEMMs and the elementwise ops are the per-expert Mlp's, so the numbers are the same to the bit.
// Legend: S rows (tokens x their k choices, sorted by expert), D hidden, I the experts' intermediate size.
#pragma once

#include "core/torch.h"

#include <cstdint>
#include <vector>

namespace qtune {

// Whether every expert (an Mlp) qualifies: SwiGLU, separate gate/up/down, no adapter, no bias, 4-bit or dense weights.
bool can_group_experts(const torch::nn::ModuleList& experts);

// rows [S, D]: the experts' rows back to back, sizes[e] of them for expert e (Σ sizes = S) -> [S, D], each row
// through its expert's MLP; differentiable with respect to rows.
torch::Tensor grouped_experts(const torch::Tensor& rows, const std::vector<int64_t>& sizes, const torch::nn::ModuleList& experts);

}  // namespace qtune
