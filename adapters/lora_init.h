// How LoRA's A and B start (PEFT's init_lora_weights). kaiming and gaussian draw A and set B = 0: the layer
// starts as the base. pissa, pissa_niter_N and olora take A and B from the base weight W and leave the rest,
// W − s·B·A, as the base (the residual): the layer also starts as the base, and trains W's principal
// directions (PiSSA: the top-R singular vectors; OLoRA: the first R columns of W's QR factorization).
//
// PiSSA:  W = V·diag(S)·Uᵀ (pissa: full SVD; pissa_niter_N: randomized, N subspace iterations), S' = S[:R]/s,
//         A = diag(√S')·Uᵀ[:R], B = V[:, :R]·diag(√S')
// OLoRA:  W = Q·R (reduced),  A = R[:R rows], B = Q[:, :R columns]
#pragma once

#include "core/torch.h"

#include <cstdint>
#include <memory>
#include <string>

#include "models/frozen_linear.h"

namespace qtune {

// InputError naming lora_init for anything but kaiming, gaussian, pissa, pissa_niter_N (N >= 0) and olora.
void check_lora_init(const std::string& init);

// pissa, pissa_niter_N and olora: A and B come from the base, which becomes the residual.
bool init_uses_base(const std::string& init);

struct LoraStart {
  torch::Tensor A;         // float32 [R, in]
  torch::Tensor B;         // float32 [out, R]
  torch::Tensor residual;  // float32 [out, in], W − s·B·A; undefined when the base stays as it is
};

// A random start (kaiming: nn.Linear's default init, bound 1/√in; gaussian: N(0, 1/R)) from a generator
// seeded by `seed`, on the CPU.
LoraStart random_lora_start(const std::string& init, int64_t in_features, int64_t out_features, int64_t r, uint64_t seed);

// A start from the base weight `w` (float32 [out, in], on any device) for init_uses_base(init); the randomized
// SVD of pissa_niter_N draws from a generator seeded by `seed`. InputError naming lora_init when R > min(out, in).
LoraStart lora_start_from_base(const std::string& init, const torch::Tensor& w, int64_t r, double scale, uint64_t seed);

// A frozen weight in `like`'s format holding `w` (float32 [out, in]): a dense weight in like's dtype, or a
// 4-bit one quantized with like's type, block size and double quantization (as PEFT re-quantizes a residual).
std::shared_ptr<FrozenWeight> same_format_weight(const FrozenWeight& like, const torch::Tensor& w);

}  // namespace qtune
