// CUDA kernels of the 4-bit formats, behind launchers that take raw pointers, sizes and a stream (no
// torch headers, so they compile on machines whose LibTorch has no CUDA). Same codes and values as the
// CPU implementation in kernels/blockwise_quant.cpp, bit for bit.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace qtune::cuda {

enum class ElementType { F32, BF16, F16 };
enum class Format { NF4, FP4 };

// w [n] -> packed [ceil(n/2)] (first element in the high nibble), absmax [ceil(n/blocksize)] float32.
// *nonfinite is set to 1 (it is not cleared) when w holds NaN or infinity. blocksize: power of two, 32..4096.
cudaError_t quantize_4bit(const void* w, ElementType type, int64_t n, int blocksize, Format format, uint8_t* packed, float* absmax,
                          int* nonfinite, cudaStream_t stream);

// absmax'[b] = map[codes[b]] * nested_absmax[b / nested_blocksize] + offset, rounded after each operation
// (no fused multiply-add), as on the CPU.
cudaError_t dequantize_absmax(const uint8_t* codes, const float* nested_absmax, const float* map, int64_t blocks, int nested_blocksize,
                              float offset, float* out, cudaStream_t stream);

// out[i] = (T)(code_map[code(i)] * absmax[i / blocksize]) for i < n.
cudaError_t dequantize_4bit(const uint8_t* packed, const float* absmax, const float* code_map, int64_t n, int blocksize, ElementType type,
                            void* out, cudaStream_t stream);

// y[r] = sum_k x[k] * deq(W)[r, k] for W [rows, cols] (batch-1 decoding). x and y in `type`; float accumulation.
cudaError_t gemv_4bit(const void* x, const uint8_t* packed, const float* absmax, const float* code_map, int64_t rows, int64_t cols,
                      int blocksize, ElementType type, void* y, cudaStream_t stream);

}  // namespace qtune::cuda
