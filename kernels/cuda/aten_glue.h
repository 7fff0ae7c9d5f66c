// Helpers of the ATen glue of the CUDA kernels (quant4_torch.cpp, fused_torch.cpp): the kernels' element
// type of a dtype, and CUDA status checks as c10::Error. Built only against a CUDA LibTorch.
#pragma once

#include <ATen/ATen.h>
#include <cuda_runtime.h>

#include "kernels/cuda/quant4_kernels.cuh"

namespace qtune::cuda_glue {

// `op` names the caller in the error, e.g. "rms_norm_forward_cuda".
inline cuda::ElementType element_type(at::ScalarType dtype, const char* op) {
  switch (dtype) {
    case at::kFloat: return cuda::ElementType::F32;
    case at::kBFloat16: return cuda::ElementType::BF16;
    case at::kHalf: return cuda::ElementType::F16;
    default: TORCH_CHECK(false, op, ": the CUDA kernels support f32, bf16 and f16, not ", dtype);
  }
}

inline void check(cudaError_t status, const char* what) { TORCH_CHECK(status == cudaSuccess, what, ": ", cudaGetErrorString(status)); }

}  // namespace qtune::cuda_glue
