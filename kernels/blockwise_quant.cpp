// CPU blockwise 4-bit quantization, threaded over blocks.
#include "kernels/blockwise_quant.h"

#include <ATen/Parallel.h>

#include <array>
#include <atomic>
#include <cmath>
#include <type_traits>

#include "core/error.h"
#include "kernels/dequant4_simd.h"

namespace qtune {
namespace {

// Blocks handled per parallel task: enough work to amortize the scheduling.
int64_t grain(int64_t blocksize) { return std::max<int64_t>(1, 16384 / blocksize); }

template <typename T>
void quantize_blocks(const T* w, int64_t n, QuantType type, int64_t blocksize, uint8_t* packed, float* absmax, std::atomic<bool>& finite) {
  const int64_t blocks = (n + blocksize - 1) / blocksize;
  at::parallel_for(0, blocks, grain(blocksize), [&](int64_t first, int64_t last) {
    for (int64_t b = first; b < last; ++b) {
      const int64_t begin = b * blocksize, end = std::min(n, begin + blocksize);
      float max = 0;
      for (int64_t i = begin; i < end; ++i) {
        const float v = static_cast<float>(w[i]);
        if (!std::isfinite(v)) finite = false;
        max = std::max(max, std::fabs(v));
      }
      absmax[b] = max;
      const float scale = 1.0f / max;  // infinity for an all-zero block: codes become those of NaN
      // Pairs (2j, 2j+1); a missing last element is quantized as 0, as bitsandbytes pads it.
      for (int64_t i = begin; i < end; i += 2) {
        const float a = static_cast<float>(w[i]) * scale;
        const float c = i + 1 < end ? static_cast<float>(w[i + 1]) * scale : 0.0f * scale;
        const uint8_t hi = type == QuantType::NF4 ? quantize_nf4(a) : quantize_fp4(a);
        const uint8_t lo = type == QuantType::NF4 ? quantize_nf4(c) : quantize_fp4(c);
        packed[i / 2] = static_cast<uint8_t>((hi << 4) | lo);
      }
    }
  });
}

// Whether T has an AVX-512 block expansion (dequant4_simd.h) and this CPU runs it.
template <typename T>
bool simd_dequant_for() {
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, c10::BFloat16>) return cpu_has_avx512_dequant();
  return false;
}

template <typename T>
void dequantize_blocks(const uint8_t* packed, const float* absmax, const float* values, int64_t n, int64_t blocksize, T* out) {
  const int64_t blocks = (n + blocksize - 1) / blocksize;
  const bool simd = simd_dequant_for<T>();
  at::parallel_for(0, blocks, grain(blocksize), [&](int64_t first, int64_t last) {
    for (int64_t b = first; b < last; ++b) {
      if constexpr (std::is_same_v<T, float> || std::is_same_v<T, c10::BFloat16>) {
        if (simd && (b + 1) * blocksize <= n) {  // a full block: blocksize is a multiple of 32
          dequantize_block_avx512(packed + b * blocksize / 2, blocksize, values, absmax[b], out + b * blocksize);
          continue;
        }
      }
      // The block's 16 possible outputs, each rounded to T once; then every element is a table lookup. A
      // block starts on a byte (blocksize is even): element 2j is byte j's high nibble, 2j+1 its low one.
      std::array<T, 16> table;
      for (int c = 0; c < 16; ++c) table[c] = static_cast<T>(values[c] * absmax[b]);
      const int64_t begin = b * blocksize, count = std::min(n, begin + blocksize) - begin;
      const uint8_t* bytes = packed + begin / 2;
      T* o = out + begin;
      for (int64_t j = 0; j < count / 2; ++j) {
        o[2 * j] = table[bytes[j] >> 4];
        o[2 * j + 1] = table[bytes[j] & 0x0F];
      }
      if (count % 2 != 0) o[count - 1] = table[bytes[count / 2] >> 4];
    }
  });
}

}  // namespace

int64_t Quantized4bit::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

int64_t Quantized4bit::storage_bytes() const {
  int64_t bytes = packed.numel() + scales.absmax.numel() * static_cast<int64_t>(scales.absmax.element_size()) + code_map.numel() * 4;
  if (scales.nested) bytes += scales.nested_absmax.numel() * 4 + scales.nested_map.numel() * 4;
  return bytes;
}

void check_blocksize(int64_t blocksize, const std::string& where) {
  if (blocksize < 32 || blocksize > 4096 || (blocksize & (blocksize - 1)) != 0)
    input_error("{}: blocksize {} must be a power of two from 32 to 4096 (64 is the QLoRA default)", where, blocksize);
}

const char* quant_type_name(QuantType type) { return type == QuantType::NF4 ? "nf4" : "fp4"; }

QuantType parse_quant_type(const std::string& name, const std::string& where) {
  if (name == "nf4") return QuantType::NF4;
  if (name == "fp4") return QuantType::FP4;
  input_error("{}: quant type '{}' is unknown; use nf4 or fp4", where, name);
}

void quantize_blockwise_8bit(const at::Tensor& values, const at::Tensor& map, int64_t blocksize, at::Tensor& codes, at::Tensor& absmax) {
  TORCH_CHECK(values.scalar_type() == at::kFloat && values.is_contiguous() && values.dim() == 1, "quantize_blockwise_8bit: float32 [n]");
  TORCH_CHECK(map.scalar_type() == at::kFloat && map.numel() == 256, "quantize_blockwise_8bit: map must be float32 [256]");
  const int64_t n = values.numel(), blocks = (n + blocksize - 1) / blocksize;
  codes = at::empty({n}, at::kByte);
  absmax = at::empty({blocks}, at::kFloat);
  const float* v = values.data_ptr<float>();
  const float* m = map.contiguous().data_ptr<float>();
  uint8_t* q = codes.data_ptr<uint8_t>();
  float* a = absmax.data_ptr<float>();
  at::parallel_for(0, blocks, 1, [&](int64_t first, int64_t last) {
    for (int64_t b = first; b < last; ++b) {
      const int64_t begin = b * blocksize, end = std::min(n, begin + blocksize);
      float max = 0;
      for (int64_t i = begin; i < end; ++i) max = std::max(max, std::fabs(v[i]));
      a[b] = max;
      const float scale = 1.0f / max;
      for (int64_t i = begin; i < end; ++i) q[i] = quantize_to_map(v[i] * scale, m);
    }
  });
}

// Each block's scale repeated over its elements: [n].
static at::Tensor per_element(const at::Tensor& absmax, int64_t blocksize, int64_t n) {
  return absmax.repeat_interleave(blocksize).slice(0, 0, n);
}

at::Tensor dequantize_blockwise_8bit(const at::Tensor& codes, const at::Tensor& absmax, const at::Tensor& map, int64_t blocksize) {
  const int64_t n = codes.numel();
  if (!codes.is_cpu()) return map.index_select(0, codes.to(at::kLong)) * per_element(absmax, blocksize, n);
  at::Tensor out = at::empty({n}, at::kFloat);
  const uint8_t* q = codes.contiguous().data_ptr<uint8_t>();
  const float* a = absmax.contiguous().data_ptr<float>();
  const float* m = map.contiguous().data_ptr<float>();
  float* o = out.data_ptr<float>();
  for (int64_t i = 0; i < n; ++i) o[i] = m[q[i]] * a[i / blocksize];
  return out;
}

Quantized4bit quantize_4bit(const at::Tensor& weight, QuantType type, int64_t blocksize, bool double_quant, const std::string& where) {
  check_blocksize(blocksize, where);
#ifdef QTUNE_WITH_CUDA
  if (weight.is_cuda()) return quantize_4bit_cuda(weight, type, blocksize, double_quant, where);
#endif
  TORCH_CHECK(weight.device().is_cpu(), "quantize_4bit: this build quantizes CPU tensors only");
  const at::Tensor w = weight.contiguous();
  Quantized4bit q = describe_4bit(w, type, blocksize);
  const int64_t n = w.numel();
  q.packed = at::empty({(n + 1) / 2}, at::kByte);
  at::Tensor absmax = at::empty({q.blocks()}, at::kFloat);
  std::atomic<bool> finite{true};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, w.scalar_type(), "quantize_4bit", [&] {
    quantize_blocks<scalar_t>(w.data_ptr<scalar_t>(), n, type, blocksize, q.packed.data_ptr<uint8_t>(), absmax.data_ptr<float>(), finite);
  });
  require_finite_weight(finite, where);
  q.scales = make_scales(absmax, double_quant);
  return q;
}

Quantized4bit describe_4bit(const at::Tensor& weight, QuantType type, int64_t blocksize) {
  Quantized4bit q;
  q.type = type;
  q.blocksize = blocksize;
  q.shape = weight.sizes().vec();
  q.dtype = weight.scalar_type();
  // The map bitsandbytes stores as quant_map: FP4's code 8 (sign bit, magnitude 0) is +0.0 there, since its
  // table is written with Python's integer -0, which is 0.
  std::array<float, 16> map = code_values(type);
  for (float& v : map) v = v == 0.0f ? 0.0f : v;
  q.code_map = at::from_blob(map.data(), {16}, at::kFloat).to(weight.device(), /*non_blocking=*/false, /*copy=*/true);
  return q;
}

QuantizedAbsmax make_scales(const at::Tensor& absmax, bool double_quant) {
  QuantizedAbsmax scales;
  if (!double_quant) {
    scales.absmax = absmax;
    return scales;
  }
  // The absmax, centred on its mean, in 8 bits per block of 256. The mean is summed in double so that
  // it does not depend on a reduction order (any offset is valid: it is stored with the weight).
  const at::Tensor host = absmax.cpu();
  scales.nested = true;
  scales.offset = static_cast<float>(host.sum(at::kDouble).item<double>() / static_cast<double>(host.numel()));
  at::Tensor codes, nested_absmax;
  quantize_blockwise_8bit(host - scales.offset, dynamic_map_signed(), scales.nested_blocksize, codes, nested_absmax);
  scales.absmax = codes.to(absmax.device());
  scales.nested_absmax = nested_absmax.to(absmax.device());
  scales.nested_map = dynamic_map_signed().to(absmax.device(), /*non_blocking=*/false, /*copy=*/true);
  return scales;
}

void require_finite_weight(bool finite, const std::string& where) {
  if (!finite) input_error("{}: holds NaN or infinite values; the checkpoint is corrupt (re-download or re-export it)", where);
}

at::Tensor dequantize_absmax(const QuantizedAbsmax& scales) {
  if (!scales.nested) return scales.absmax;
  return dequantize_blockwise_8bit(scales.absmax, scales.nested_absmax, scales.nested_map, scales.nested_blocksize) + scales.offset;
}

at::Tensor dequantize_4bit_aten(const Quantized4bit& q, at::ScalarType dtype) {
  const int64_t n = q.numel();
  const at::Tensor codes = at::stack({q.packed.__rshift__(4), q.packed.bitwise_and(15)}, 1).view({-1}).slice(0, 0, n).to(at::kLong);
  const at::Tensor values = q.code_map.to(q.packed.device(), at::kFloat).index_select(0, codes);
  return (values * per_element(dequantize_absmax(q.scales), q.blocksize, n)).to(dtype).view(q.shape);
}

std::vector<at::Tensor*> tensors_of(Quantized4bit& q) {
  std::vector<at::Tensor*> out;
  for (at::Tensor* t : {&q.packed, &q.code_map, &q.scales.absmax, &q.scales.nested_absmax, &q.scales.nested_map})
    if (t->defined()) out.push_back(t);
  return out;
}

Quantized4bit to_device(const Quantized4bit& q, const at::Device& device) {
  Quantized4bit out = q;
  for (at::Tensor* t : tensors_of(out)) *t = t->to(device);
  return out;
}

at::Tensor dequantize_4bit(const Quantized4bit& q, c10::optional<at::ScalarType> dtype) {
  const at::ScalarType out_type = dtype.value_or(q.dtype);
#ifdef QTUNE_WITH_CUDA
  if (q.packed.is_cuda()) return dequantize_4bit_cuda(q, out_type);
#endif
  if (!q.packed.is_cpu()) return dequantize_4bit_aten(q, out_type);
  at::Tensor out = at::empty({q.numel()}, at::TensorOptions().dtype(out_type));
  dequantize_4bit_into(q, out);
  return out.view(q.shape);
}

void dequantize_4bit_into(const Quantized4bit& q, const at::Tensor& out) {
  const int64_t n = q.numel();
  TORCH_CHECK(q.packed.is_cpu() && out.is_cpu() && out.is_contiguous() && out.numel() == n, "dequantize_4bit_into: needs a contiguous CPU output of ", n,
              " elements");
  TORCH_CHECK(q.packed.numel() == (n + 1) / 2, "dequantize_4bit: packed size does not match the shape");
  at::Tensor absmax = dequantize_absmax(q.scales).contiguous();
  TORCH_CHECK(absmax.numel() == q.blocks(), "dequantize_4bit: absmax count does not match the shape");
  const at::Tensor packed = q.packed.contiguous(), values = q.code_map.to(at::kFloat).contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, out.scalar_type(), "dequantize_4bit", [&] {
    dequantize_blocks<scalar_t>(packed.data_ptr<uint8_t>(), absmax.data_ptr<float>(), values.data_ptr<float>(), n, q.blocksize,
                                out.data_ptr<scalar_t>());
  });
}

}  // namespace qtune
