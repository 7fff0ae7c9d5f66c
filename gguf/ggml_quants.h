// The ggml tensor types qtune writes and reads, and their codecs: F32, F16, BF16, the 32-weight blocks
// Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, and the 256-weight K-quant super-blocks Q4_K, Q5_K, Q6_K. Block layouts are
// the GGUF specification's (and the gguf Python package's); the code is qtune's own.
//
// Q8_0 and Q4_0/Q4_1/Q5_0/Q5_1 quantize exactly as ggml's reference quantizer (and gguf.quants) does, so the
// codes are byte-identical. The K-quants choose each sub-block's scale (and min) by a weighted least-squares
// search over candidate scales, as llama.cpp's reference quantizer does without an importance matrix (what
// llama_model_quantize runs when no imatrix is given), in the same float32 arithmetic, so that their codes too
// are llama.cpp's byte for byte. Decoding computes exactly the float32 values gguf.quants.dequantize computes.
//
// Non-finite input: F32/F16/BF16 carry NaN and infinity (NaN made quiet) as ggml does; the block types refuse a
// row holding one with an InputError, because every weight of its block would decode to garbage (ggml encodes
// it anyway). Callers should refuse such weights earlier, naming the tensor (gguf_export does).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace qtune {

enum class GgmlType : uint32_t {
  kF32 = 0, kF16 = 1, kQ4_0 = 2, kQ4_1 = 3, kQ5_0 = 6, kQ5_1 = 7, kQ8_0 = 8,
  kQ4_K = 12, kQ5_K = 13, kQ6_K = 14, kBF16 = 30,
};

struct GgmlTypeTraits {
  const char* name;    // "Q4_K", as gguf-py's GGMLQuantizationType names it
  int64_t block_size;  // weights per block (1 for F32/F16/BF16)
  int64_t type_size;   // bytes per block
};

// The type with this ggml id, if qtune supports it (others: nullopt, for a reader's error message).
std::optional<GgmlType> ggml_type_from_id(uint32_t id);
const GgmlTypeTraits& ggml_traits(GgmlType type);
// Bytes of one row of `row_length` weights; InputError unless row_length is a multiple of the block size.
uint64_t ggml_row_bytes(GgmlType type, int64_t row_length);

// `rows` rows of `row_length` float32 weights -> their encoding (rows x ggml_row_bytes bytes) into `out`.
// Rows are independent, so large tensors are split over threads (at::parallel_for). InputError for a row length
// that is not a multiple of the block size, or (block types) a row holding NaN or infinity.
void ggml_quantize(GgmlType type, const float* x, int64_t rows, int64_t row_length, uint8_t* out);
// The inverse: decodes `rows` rows into float32.
void ggml_dequantize(GgmlType type, const uint8_t* data, int64_t rows, int64_t row_length, float* out);

}  // namespace qtune
