// The CUDA kernels of RMSNorm, RoPE and SwiGLU and their launchers (contracts in fused_kernels.cuh).
// Elementwise and row loops are grid-stride loops with int64 indices, so any size fits a capped grid.
// Rows and elementwise arrays move in 16-byte packs when every pointer is 16-byte aligned (and, for rows,
// the row length is a whole number of packs); otherwise element by element.
#include "kernels/cuda/fused_kernels.cuh"

#include <algorithm>
#include <cstdint>
#include <initializer_list>

#include "kernels/cuda/element_convert.cuh"

namespace qtune::cuda {
namespace {

constexpr int kThreads = 256;            // threads of every CUDA block (a multiple of 32: the reductions rely on it)
constexpr int kPackBytes = 16;           // one vector load or store
constexpr int64_t kWarpRowMax = 1024;    // RMSNorm rows up to this length take one warp each, longer ones a CUDA block
constexpr int64_t kMaxBlocks = 1 << 20;  // grid cap; the grid-stride loops cover the rest

template <typename T, int V> struct alignas(sizeof(T) * V) Pack {
  T v[V];
};

__device__ __forceinline__ float warp_sum(float v) {
  // Butterfly: every lane ends with the same, bitwise identical sum (a + b == b + a exactly).
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// Sum over the CUDA block, returned to every thread. partial: 33 floats of shared memory. It may be called
// again at once: the second barrier orders this call's reads of partial before the next call's writes.
__device__ float block_sum(float v, float* partial) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  v = warp_sum(v);
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = warp_sum(lane < warps ? partial[lane] : 0.0f);
    if (lane == 0) partial[32] = v;
  }
  __syncthreads();
  return partial[32];
}

// The threads that share one RMSNorm row: a warp (short rows, kThreads/32 rows per CUDA block at a time) or
// the whole CUDA block. Every thread of a group walks the same rows, so block_sum's barriers are uniform.
template <bool kWarp> struct RowGroup {
  __device__ static int rank() { return kWarp ? threadIdx.x % 32 : threadIdx.x; }
  __device__ static int size() { return kWarp ? 32 : blockDim.x; }
  __device__ static int64_t first_row() {
    return kWarp ? static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32 : static_cast<int64_t>(blockIdx.x);
  }
  __device__ static int64_t row_stride() { return static_cast<int64_t>(gridDim.x) * (kWarp ? blockDim.x / 32 : 1); }
  __device__ static float sum(float v, float* partial) {
    if constexpr (kWarp) {
      return warp_sum(v);
    } else {
      return block_sum(v, partial);
    }
  }
};

// n % V == 0 (the launcher falls back to V = 1 otherwise), so a row is n / V whole packs.
template <typename T, int V, bool kWarp>
__global__ void __launch_bounds__(kThreads) rms_norm_forward_kernel(const T* __restrict__ x, const T* __restrict__ w, int64_t rows, int64_t n,
                                                                    float eps, T* __restrict__ y, float* __restrict__ rstd) {
  using G = RowGroup<kWarp>;
  using P = Pack<T, V>;
  __shared__ float partial[33];
  const int64_t packs = n / V;
  const P* wp = reinterpret_cast<const P*>(w);
  for (int64_t row = G::first_row(); row < rows; row += G::row_stride()) {
    const P* xp = reinterpret_cast<const P*>(x + row * n);
    P* yp = reinterpret_cast<P*>(y + row * n);
    float squares = 0.0f;
    for (int64_t k = G::rank(); k < packs; k += G::size()) {
      const P xv = xp[k];
#pragma unroll
      for (int j = 0; j < V; ++j) squares += to_float(xv.v[j]) * to_float(xv.v[j]);
    }
    const float r = rsqrtf(G::sum(squares, partial) / static_cast<float>(n) + eps);
    if (G::rank() == 0) rstd[row] = r;
    for (int64_t k = G::rank(); k < packs; k += G::size()) {  // the second read of the row mostly hits L1/L2
      const P xv = xp[k], wv = wp[k];
      P out;
#pragma unroll
      for (int j = 0; j < V; ++j) {
        const float normed = to_float(from_float<T>(to_float(xv.v[j]) * r));  // x̂ rounded to T first, as weight * x̂.to(T)
        out.v[j] = from_float<T>(to_float(wv.v[j]) * normed);
      }
      yp[k] = out;
    }
  }
}

template <typename T, int V, bool kWarp>
__global__ void __launch_bounds__(kThreads) rms_norm_backward_kernel(const T* __restrict__ grad_y, const T* __restrict__ x, const T* __restrict__ w,
                                                                     const float* __restrict__ rstd, int64_t rows, int64_t n, T* __restrict__ grad_x) {
  using G = RowGroup<kWarp>;
  using P = Pack<T, V>;
  __shared__ float partial[33];
  const int64_t packs = n / V;
  const P* wp = reinterpret_cast<const P*>(w);
  for (int64_t row = G::first_row(); row < rows; row += G::row_stride()) {
    const P* xp = reinterpret_cast<const P*>(x + row * n);
    const P* gp = reinterpret_cast<const P*>(grad_y + row * n);
    P* out_p = reinterpret_cast<P*>(grad_x + row * n);
    const float r = rstd[row];
    float dot = 0.0f;  // sum of g' ⊙ x̂ over the row
    for (int64_t k = G::rank(); k < packs; k += G::size()) {
      const P xv = xp[k], gv = gp[k], wv = wp[k];
#pragma unroll
      for (int j = 0; j < V; ++j) dot += to_float(gv.v[j]) * to_float(wv.v[j]) * (to_float(xv.v[j]) * r);
    }
    const float mean = G::sum(dot, partial) / static_cast<float>(n);
    for (int64_t k = G::rank(); k < packs; k += G::size()) {
      const P xv = xp[k], gv = gp[k], wv = wp[k];
      P out;
#pragma unroll
      for (int j = 0; j < V; ++j) {
        const float g = to_float(gv.v[j]) * to_float(wv.v[j]), normed = to_float(xv.v[j]) * r;
        out.v[j] = from_float<T>(r * (g - normed * mean));
      }
      out_p[k] = out;
    }
  }
}

// One thread per pair (i, i + half) of one head. `in` and `out` may be the same array (the forward works in
// place): each thread reads both elements of its pair before writing them, and no other thread touches them.
// sign = −1 negates sin: the backward.
template <typename T>
__global__ void __launch_bounds__(kThreads) rope_kernel(const T* in, const T* __restrict__ cos, const T* __restrict__ sin, int64_t pairs,
                                                        int64_t heads, int64_t half, float sign, T* out) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t p = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; p < pairs; p += stride) {
    const int64_t i = p % half, head = p / half;  // head: the flat (b, t, h) index
    const int64_t at = head * 2 * half + i;        // x[b, t, h, i]
    const int64_t table = head / heads * 2 * half + i;  // cos[b, t, i]
    const float x1 = to_float(in[at]), x2 = to_float(in[at + half]);
    const float c1 = to_float(cos[table]), c2 = to_float(cos[table + half]);
    const float s1 = sign * to_float(sin[table]), s2 = sign * to_float(sin[table + half]);
    out[at] = from_float<T>(x1 * c1 - x2 * s1);
    out[at + half] = from_float<T>(x2 * c2 + x1 * s2);
  }
}

__device__ __forceinline__ float swiglu(float g, float u) { return g / (1.0f + expf(-g)) * u; }

struct SwigluGrad {
  float gate, up;
};
__device__ __forceinline__ SwigluGrad swiglu_grad(float dh, float g, float u) {
  const float s = 1.0f / (1.0f + expf(-g));  // expf(-g) = inf for g < -88: s = 0, no NaN
  return {dh * u * s * (1.0f + g * (1.0f - s)), dh * g * s};
}

// The first n / V * V elements in packs, the fewer than V left by the first threads one by one.
template <typename T, int V>
__global__ void __launch_bounds__(kThreads) swiglu_forward_kernel(const T* __restrict__ gate, const T* __restrict__ up, int64_t n, T* __restrict__ h) {
  using P = Pack<T, V>;
  const int64_t packs = n / V, stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  for (int64_t k = first; k < packs; k += stride) {
    const P g = reinterpret_cast<const P*>(gate)[k], u = reinterpret_cast<const P*>(up)[k];
    P out;
#pragma unroll
    for (int j = 0; j < V; ++j) out.v[j] = from_float<T>(swiglu(to_float(g.v[j]), to_float(u.v[j])));
    reinterpret_cast<P*>(h)[k] = out;
  }
  for (int64_t i = packs * V + first; i < n; i += stride) h[i] = from_float<T>(swiglu(to_float(gate[i]), to_float(up[i])));
}

template <typename T, int V>
__global__ void __launch_bounds__(kThreads) swiglu_backward_kernel(const T* __restrict__ grad_h, const T* __restrict__ gate, const T* __restrict__ up,
                                                                   int64_t n, T* __restrict__ grad_gate, T* __restrict__ grad_up) {
  using P = Pack<T, V>;
  const int64_t packs = n / V, stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  for (int64_t k = first; k < packs; k += stride) {
    const P dh = reinterpret_cast<const P*>(grad_h)[k], g = reinterpret_cast<const P*>(gate)[k], u = reinterpret_cast<const P*>(up)[k];
    P dg, du;
#pragma unroll
    for (int j = 0; j < V; ++j) {
      const SwigluGrad d = swiglu_grad(to_float(dh.v[j]), to_float(g.v[j]), to_float(u.v[j]));
      dg.v[j] = from_float<T>(d.gate);
      du.v[j] = from_float<T>(d.up);
    }
    reinterpret_cast<P*>(grad_gate)[k] = dg;
    reinterpret_cast<P*>(grad_up)[k] = du;
  }
  for (int64_t i = packs * V + first; i < n; i += stride) {
    const SwigluGrad d = swiglu_grad(to_float(grad_h[i]), to_float(gate[i]), to_float(up[i]));
    grad_gate[i] = from_float<T>(d.gate);
    grad_up[i] = from_float<T>(d.up);
  }
}

// Host helpers.

unsigned grid_for(int64_t work, int64_t per_block) { return static_cast<unsigned>(std::min((work + per_block - 1) / per_block, kMaxBlocks)); }

bool aligned(std::initializer_list<const void*> pointers) {
  for (const void* p : pointers)
    if (reinterpret_cast<uintptr_t>(p) % kPackBytes != 0) return false;
  return true;
}

template <typename T> struct Tag {
  using type = T;
};

// Calls launch(Tag<T>{}) with the C++ type of `type`, then returns the launch status.
template <typename Launch> cudaError_t with_type(ElementType type, Launch&& launch) {
  switch (type) {
    case ElementType::F32: launch(Tag<float>{}); break;
    case ElementType::BF16: launch(Tag<__nv_bfloat16>{}); break;
    case ElementType::F16: launch(Tag<__half>{}); break;
    default: return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

template <typename T, int V>
void launch_rms_norm_forward(const void* x, const void* w, int64_t rows, int64_t n, float eps, void* y, float* rstd, cudaStream_t stream) {
  const auto args = [&](auto kernel, unsigned grid) {
    kernel<<<grid, kThreads, 0, stream>>>(static_cast<const T*>(x), static_cast<const T*>(w), rows, n, eps, static_cast<T*>(y), rstd);
  };
  if (n <= kWarpRowMax) args(rms_norm_forward_kernel<T, V, true>, grid_for(rows, kThreads / 32));
  else args(rms_norm_forward_kernel<T, V, false>, grid_for(rows, 1));
}

template <typename T, int V>
void launch_rms_norm_backward(const void* grad_y, const void* x, const void* w, const float* rstd, int64_t rows, int64_t n, void* grad_x,
                              cudaStream_t stream) {
  const auto args = [&](auto kernel, unsigned grid) {
    kernel<<<grid, kThreads, 0, stream>>>(static_cast<const T*>(grad_y), static_cast<const T*>(x), static_cast<const T*>(w), rstd, rows, n,
                                          static_cast<T*>(grad_x));
  };
  if (n <= kWarpRowMax) args(rms_norm_backward_kernel<T, V, true>, grid_for(rows, kThreads / 32));
  else args(rms_norm_backward_kernel<T, V, false>, grid_for(rows, 1));
}

cudaError_t rope(const void* in, const void* cos, const void* sin, int64_t batch, int64_t tokens, int64_t heads, int64_t head_dim, ElementType type,
                 float sign, void* out, cudaStream_t stream) {
  if (batch < 0 || tokens < 0 || heads < 0 || head_dim <= 0 || head_dim % 2 != 0) return cudaErrorInvalidValue;
  const int64_t half = head_dim / 2, pairs = batch * tokens * heads * half;
  if (pairs == 0) return cudaSuccess;  // (so heads > 0 in the kernel)
  return with_type(type, [&](auto tag) {
    using T = typename decltype(tag)::type;
    rope_kernel<T><<<grid_for(pairs, kThreads), kThreads, 0, stream>>>(static_cast<const T*>(in), static_cast<const T*>(cos), static_cast<const T*>(sin),
                                                                      pairs, heads, half, sign, static_cast<T*>(out));
  });
}

}  // namespace

cudaError_t rms_norm_forward(const void* x, const void* weight, int64_t rows, int64_t n, float eps, ElementType type, void* y, float* rstd,
                             cudaStream_t stream) {
  if (rows < 0 || n < 0) return cudaErrorInvalidValue;
  if (rows == 0) return cudaSuccess;
  return with_type(type, [&](auto tag) {
    using T = typename decltype(tag)::type;
    constexpr int V = kPackBytes / sizeof(T);
    if (n % V == 0 && aligned({x, weight, y})) launch_rms_norm_forward<T, V>(x, weight, rows, n, eps, y, rstd, stream);
    else launch_rms_norm_forward<T, 1>(x, weight, rows, n, eps, y, rstd, stream);
  });
}

cudaError_t rms_norm_backward(const void* grad_y, const void* x, const void* weight, const float* rstd, int64_t rows, int64_t n, ElementType type,
                              void* grad_x, cudaStream_t stream) {
  if (rows < 0 || n < 0) return cudaErrorInvalidValue;
  if (rows == 0) return cudaSuccess;
  return with_type(type, [&](auto tag) {
    using T = typename decltype(tag)::type;
    constexpr int V = kPackBytes / sizeof(T);
    if (n % V == 0 && aligned({grad_y, x, weight, grad_x})) launch_rms_norm_backward<T, V>(grad_y, x, weight, rstd, rows, n, grad_x, stream);
    else launch_rms_norm_backward<T, 1>(grad_y, x, weight, rstd, rows, n, grad_x, stream);
  });
}

cudaError_t rope_forward_inplace(void* x, const void* cos, const void* sin, int64_t batch, int64_t tokens, int64_t heads, int64_t head_dim,
                                 ElementType type, cudaStream_t stream) {
  return rope(x, cos, sin, batch, tokens, heads, head_dim, type, 1.0f, x, stream);
}

cudaError_t rope_backward(const void* grad_y, const void* cos, const void* sin, int64_t batch, int64_t tokens, int64_t heads, int64_t head_dim,
                          ElementType type, void* grad_x, cudaStream_t stream) {
  return rope(grad_y, cos, sin, batch, tokens, heads, head_dim, type, -1.0f, grad_x, stream);
}

cudaError_t swiglu_forward(const void* gate, const void* up, int64_t n, ElementType type, void* h, cudaStream_t stream) {
  if (n < 0) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  return with_type(type, [&](auto tag) {
    using T = typename decltype(tag)::type;
    constexpr int V = kPackBytes / sizeof(T);
    const unsigned grid = grid_for((n + V - 1) / V, kThreads);  // enough threads for the packs and for the tail
    const auto g = static_cast<const T*>(gate), u = static_cast<const T*>(up);
    if (aligned({gate, up, h})) swiglu_forward_kernel<T, V><<<grid, kThreads, 0, stream>>>(g, u, n, static_cast<T*>(h));
    else swiglu_forward_kernel<T, 1><<<grid_for(n, kThreads), kThreads, 0, stream>>>(g, u, n, static_cast<T*>(h));
  });
}

cudaError_t swiglu_backward(const void* grad_h, const void* gate, const void* up, int64_t n, ElementType type, void* grad_gate, void* grad_up,
                            cudaStream_t stream) {
  if (n < 0) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  return with_type(type, [&](auto tag) {
    using T = typename decltype(tag)::type;
    constexpr int V = kPackBytes / sizeof(T);
    const auto dh = static_cast<const T*>(grad_h), g = static_cast<const T*>(gate), u = static_cast<const T*>(up);
    const auto dg = static_cast<T*>(grad_gate), du = static_cast<T*>(grad_up);
    if (aligned({grad_h, gate, up, grad_gate, grad_up}))
      swiglu_backward_kernel<T, V><<<grid_for((n + V - 1) / V, kThreads), kThreads, 0, stream>>>(dh, g, u, n, dg, du);
    else
      swiglu_backward_kernel<T, 1><<<grid_for(n, kThreads), kThreads, 0, stream>>>(dh, g, u, n, dg, du);
  });
}

}  // namespace qtune::cuda
