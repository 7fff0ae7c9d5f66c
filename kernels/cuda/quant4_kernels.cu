// The 4-bit CUDA kernels and their launchers.
#include "kernels/cuda/quant4_kernels.cuh"

#include "kernels/cuda/element_convert.cuh"
#include "kernels/quant_codes.h"

namespace qtune::cuda {
namespace {

__device__ __forceinline__ uint8_t code_of(float x, Format format) {
  return format == Format::NF4 ? qtune::codes::nf4_code(x) : qtune::codes::fp4_code(x);
}

// One warp per quantization block: lanes stride over the block's pairs, the absmax is a warp max.
template <typename T>
__global__ void quantize_kernel(const T* __restrict__ w, int64_t n, int blocksize, Format format, uint8_t* __restrict__ packed,
                                float* __restrict__ absmax, int* nonfinite) {
  const int lane = threadIdx.x % 32;
  const int64_t block = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int64_t begin = block * blocksize;
  if (begin >= n) return;
  const int64_t end = min(n, begin + blocksize);
  float max = 0.0f;
  bool finite = true;
  for (int64_t i = begin + lane; i < end; i += 32) {
    const float v = to_float(w[i]);
    finite = finite && isfinite(v);
    max = fmaxf(max, fabsf(v));
  }
  for (int offset = 16; offset > 0; offset /= 2) max = fmaxf(max, __shfl_xor_sync(0xffffffffu, max, offset));
  if (!__all_sync(0xffffffffu, finite) && lane == 0) atomicExch(nonfinite, 1);
  if (lane == 0) absmax[block] = max;
  const float scale = __frcp_rn(max);  // IEEE 1/max (infinity for a zero block, as on the CPU)
  for (int64_t i = begin + 2 * lane; i < end; i += 64) {
    const float a = __fmul_rn(to_float(w[i]), scale);
    const float b = __fmul_rn(i + 1 < end ? to_float(w[i + 1]) : 0.0f, scale);
    packed[i / 2] = static_cast<uint8_t>((code_of(a, format) << 4) | code_of(b, format));
  }
}

__global__ void dequantize_absmax_kernel(const uint8_t* __restrict__ codes, const float* __restrict__ nested_absmax, const float* __restrict__ map,
                                         int64_t blocks, int nested_blocksize, float offset, float* __restrict__ out) {
  const int64_t b = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (b < blocks) out[b] = __fadd_rn(__fmul_rn(map[codes[b]], nested_absmax[b / nested_blocksize]), offset);
}

// Each thread turns 8 packed bytes (16 weights, all in one quantization block since blocksize >= 32)
// into 16 outputs; the code map sits in shared memory.
template <typename T>
__global__ void dequantize_kernel(const uint8_t* __restrict__ packed, const float* __restrict__ absmax, const float* __restrict__ code_map,
                                  int64_t n, int blocksize, T* __restrict__ out) {
  __shared__ float values[16];
  if (threadIdx.x < 16) values[threadIdx.x] = code_map[threadIdx.x];
  __syncthreads();
  const int64_t first = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) * 16;
  if (first >= n) return;
  const float scale = absmax[first / blocksize];
  if (first + 16 <= n && (reinterpret_cast<uintptr_t>(packed + first / 2) % 8) == 0) {
    const uint2 bytes = *reinterpret_cast<const uint2*>(packed + first / 2);
    const uint32_t words[2] = {bytes.x, bytes.y};
#pragma unroll
    for (int k = 0; k < 8; ++k) {
      const uint8_t byte = static_cast<uint8_t>(words[k / 4] >> (8 * (k % 4)));
      out[first + 2 * k] = from_float<T>(__fmul_rn(values[byte >> 4], scale));
      out[first + 2 * k + 1] = from_float<T>(__fmul_rn(values[byte & 15], scale));
    }
    return;
  }
  for (int64_t i = first; i < min(n, first + 16); ++i) {
    const uint8_t byte = packed[i / 2];
    out[i] = from_float<T>(__fmul_rn(values[i % 2 == 0 ? byte >> 4 : byte & 15], scale));
  }
}

// One warp per output row: lanes stride over the row's packed bytes, then a warp sum.
template <typename T>
__global__ void gemv_kernel(const T* __restrict__ x, const uint8_t* __restrict__ packed, const float* __restrict__ absmax,
                            const float* __restrict__ code_map, int64_t rows, int64_t cols, int blocksize, T* __restrict__ y) {
  __shared__ float values[16];
  if (threadIdx.x < 16) values[threadIdx.x] = code_map[threadIdx.x];
  __syncthreads();
  const int lane = threadIdx.x % 32;
  const int64_t row = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  if (row >= rows) return;
  float sum = 0.0f;
  const int64_t base = row * cols;  // element index of W[row, 0]
  for (int64_t k = 2 * lane; k < cols; k += 64) {
    const int64_t i = base + k;  // cols is even for every model projection; odd tails handled below
    const uint8_t byte = packed[i / 2];
    const float scale = absmax[i / blocksize];
    if (i % 2 == 0) {
      sum += to_float(x[k]) * values[byte >> 4] * scale;
      if (k + 1 < cols) sum += to_float(x[k + 1]) * values[byte & 15] * absmax[(i + 1) / blocksize];
    } else {  // odd row start: element i is a low nibble
      sum += to_float(x[k]) * values[byte & 15] * scale;
      if (k + 1 < cols) sum += to_float(x[k + 1]) * values[packed[(i + 1) / 2] >> 4] * absmax[(i + 1) / blocksize];
    }
  }
  for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
  if (lane == 0) y[row] = from_float<T>(sum);
}

bool valid_blocksize(int blocksize) { return blocksize >= 32 && blocksize <= 4096 && (blocksize & (blocksize - 1)) == 0; }

}  // namespace

cudaError_t quantize_4bit(const void* w, ElementType type, int64_t n, int blocksize, Format format, uint8_t* packed, float* absmax,
                          int* nonfinite, cudaStream_t stream) {
  if (!valid_blocksize(blocksize)) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  const int64_t blocks = (n + blocksize - 1) / blocksize;
  const int threads = 256;  // 8 warps = 8 quantization blocks per CUDA block
  const unsigned grid = static_cast<unsigned>((blocks * 32 + threads - 1) / threads);
  switch (type) {
    case ElementType::F32: quantize_kernel<<<grid, threads, 0, stream>>>(static_cast<const float*>(w), n, blocksize, format, packed, absmax, nonfinite); break;
    case ElementType::BF16: quantize_kernel<<<grid, threads, 0, stream>>>(static_cast<const __nv_bfloat16*>(w), n, blocksize, format, packed, absmax, nonfinite); break;
    case ElementType::F16: quantize_kernel<<<grid, threads, 0, stream>>>(static_cast<const __half*>(w), n, blocksize, format, packed, absmax, nonfinite); break;
  }
  return cudaGetLastError();
}

cudaError_t dequantize_absmax(const uint8_t* codes, const float* nested_absmax, const float* map, int64_t blocks, int nested_blocksize,
                              float offset, float* out, cudaStream_t stream) {
  if (blocks == 0) return cudaSuccess;
  const int threads = 256;
  dequantize_absmax_kernel<<<static_cast<unsigned>((blocks + threads - 1) / threads), threads, 0, stream>>>(codes, nested_absmax, map, blocks,
                                                                                                           nested_blocksize, offset, out);
  return cudaGetLastError();
}

cudaError_t dequantize_4bit(const uint8_t* packed, const float* absmax, const float* code_map, int64_t n, int blocksize, ElementType type,
                            void* out, cudaStream_t stream) {
  if (!valid_blocksize(blocksize)) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  const int threads = 256;
  const unsigned grid = static_cast<unsigned>(((n + 15) / 16 + threads - 1) / threads);
  switch (type) {
    case ElementType::F32: dequantize_kernel<<<grid, threads, 0, stream>>>(packed, absmax, code_map, n, blocksize, static_cast<float*>(out)); break;
    case ElementType::BF16: dequantize_kernel<<<grid, threads, 0, stream>>>(packed, absmax, code_map, n, blocksize, static_cast<__nv_bfloat16*>(out)); break;
    case ElementType::F16: dequantize_kernel<<<grid, threads, 0, stream>>>(packed, absmax, code_map, n, blocksize, static_cast<__half*>(out)); break;
  }
  return cudaGetLastError();
}

cudaError_t gemv_4bit(const void* x, const uint8_t* packed, const float* absmax, const float* code_map, int64_t rows, int64_t cols,
                      int blocksize, ElementType type, void* y, cudaStream_t stream) {
  if (!valid_blocksize(blocksize)) return cudaErrorInvalidValue;
  if (rows == 0) return cudaSuccess;
  const int threads = 256;
  const unsigned grid = static_cast<unsigned>((rows * 32 + threads - 1) / threads);
  switch (type) {
    case ElementType::F32: gemv_kernel<<<grid, threads, 0, stream>>>(static_cast<const float*>(x), packed, absmax, code_map, rows, cols, blocksize, static_cast<float*>(y)); break;
    case ElementType::BF16: gemv_kernel<<<grid, threads, 0, stream>>>(static_cast<const __nv_bfloat16*>(x), packed, absmax, code_map, rows, cols, blocksize, static_cast<__nv_bfloat16*>(y)); break;
    case ElementType::F16: gemv_kernel<<<grid, threads, 0, stream>>>(static_cast<const __half*>(x), packed, absmax, code_map, rows, cols, blocksize, static_cast<__half*>(y)); break;
  }
  return cudaGetLastError();
}

}  // namespace qtune::cuda
