// Blockwise 4-bit quantization of frozen weights in bitsandbytes' exact format (NF4/FP4, packed two codes
// per byte with the first in the high nibble, one absmax per block; optionally the absmax itself
// quantized to 8 bits in blocks of 256 after subtracting its mean), and the inverse.
//
// Math, for block b of `blocksize` consecutive elements of the flattened weight:
//   absmax[b] = max |w|;  code(w) = quantize_nf4(w * (1 / absmax[b]))  (float32, as bitsandbytes)
//   deq(w)    = values[code] * absmax[b], rounded once to the output dtype.
// Double quantization: offset = mean(absmax); (absmax - offset) in blocks of 256 is quantized with the
// dynamic map: absmax'[b] = map[q[b]] * absmax2[b / 256] + offset.
#pragma once

#include <string>
#include <vector>

#include "core/torch.h"
#include "kernels/quant_maps.h"

namespace qtune {

// The absmax of every block, possibly 8-bit quantized.
struct QuantizedAbsmax {
  at::Tensor absmax;  // float32 [blocks], or uint8 [blocks] codes when nested
  bool nested = false;
  at::Tensor nested_absmax;    // float32 [ceil(blocks / nested_blocksize)]
  at::Tensor nested_map;       // float32 [256], sorted
  int64_t nested_blocksize = 256;
  float offset = 0;            // mean of the original absmax
};

struct Quantized4bit {
  at::Tensor packed;  // uint8 [ceil(numel / 2)]
  QuantizedAbsmax scales;
  at::Tensor code_map;  // float32 [16]: the value of each code (bitsandbytes' "quant_map")
  QuantType type = QuantType::NF4;
  int64_t blocksize = 64;
  std::vector<int64_t> shape;        // of the original weight
  at::ScalarType dtype = at::kBFloat16;  // of the original weight (and of dequantize() by default)

  int64_t numel() const;
  int64_t blocks() const { return (numel() + blocksize - 1) / blocksize; }
  int64_t storage_bytes() const;  // everything above that lives on the device
};

// Valid block sizes: powers of two from 32 to 4096 (bitsandbytes: 64 and up on CUDA; 32 on CPU).
void check_blocksize(int64_t blocksize, const std::string& where);

// Quantizes `weight` (any float dtype, any shape; CPU, or CUDA when built with it). InputError naming `where` when it holds NaN or
// infinity (a corrupt checkpoint), or the block size is invalid.
Quantized4bit quantize_4bit(const at::Tensor& weight, QuantType type, int64_t blocksize, bool double_quant, const std::string& where);

// Pieces shared by the CPU and CUDA implementations of quantize_4bit:
// q with the weight's description (type, blocksize, shape, dtype, code map on the weight's device) and no data.
Quantized4bit describe_4bit(const at::Tensor& weight, QuantType type, int64_t blocksize);
// The scales of a weight from its float32 absmax [blocks]: as they are, or double-quantized (offset =
// mean, 8-bit codes in blocks of 256, computed on the CPU) and returned on the absmax's device.
QuantizedAbsmax make_scales(const at::Tensor& absmax, bool double_quant);
// InputError naming `where` unless the weight was finite.
void require_finite_weight(bool finite, const std::string& where);

// The per-block absmax as float32 (undoing double quantization).
at::Tensor dequantize_absmax(const QuantizedAbsmax& scales);

// The weight in `dtype` (default: the original dtype), shaped as the original, on q.packed's device:
// a threaded loop on CPU, the CUDA kernels on CUDA (when built with them), ATen ops elsewhere.
at::Tensor dequantize_4bit(const Quantized4bit& q, c10::optional<at::ScalarType> dtype = c10::nullopt);
// The CPU loop into `out` (contiguous, CPU, q.numel() elements of the output dtype), so a caller can reuse one buffer.
void dequantize_4bit_into(const Quantized4bit& q, const at::Tensor& out);
// The same with ATen ops only (any device); bit-identical to the CPU loop.
at::Tensor dequantize_4bit_aten(const Quantized4bit& q, at::ScalarType dtype);

// q with every tensor moved to `device`.
Quantized4bit to_device(const Quantized4bit& q, const at::Device& device);
// q's tensors (the undefined ones skipped), in a fixed order: what moving or packing q must visit.
std::vector<at::Tensor*> tensors_of(Quantized4bit& q);

// 8-bit blockwise quantization against a sorted 256-value map (used for the nested absmax).
void quantize_blockwise_8bit(const at::Tensor& values /* float32 [n] */, const at::Tensor& map, int64_t blocksize, at::Tensor& codes,
                             at::Tensor& absmax);
at::Tensor dequantize_blockwise_8bit(const at::Tensor& codes, const at::Tensor& absmax, const at::Tensor& map, int64_t blocksize);

#ifdef QTUNE_WITH_CUDA
// The CUDA kernels behind quantize_4bit / dequantize_4bit for CUDA tensors (kernels/cuda/).
Quantized4bit quantize_4bit_cuda(const at::Tensor& weight, QuantType type, int64_t blocksize, bool double_quant, const std::string& where);
at::Tensor dequantize_4bit_cuda(const Quantized4bit& q, at::ScalarType dtype);
// y [out] = deq(W) · x for one token x [in] (decoding): reads the 4-bit codes once, no dequantized copy.
at::Tensor gemv_4bit_cuda(const at::Tensor& x, const Quantized4bit& q);
#endif

const char* quant_type_name(QuantType type);  // "nf4" / "fp4"
QuantType parse_quant_type(const std::string& name, const std::string& where);

}  // namespace qtune
