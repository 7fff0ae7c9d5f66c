// Internal to the ggml codecs: the K-quant block formats (ggml_kquants.cpp) that ggml_quants.cpp's type table
// dispatches to. Each format encodes or decodes one 256-weight super-block of kBytes bytes.
#pragma once

#include <cstdint>

namespace qtune::ggml_detail {

constexpr int kSuperBlock = 256;

// Q4_K / Q5_K: fp16 d, fp16 dmin, 12 bytes of 6-bit scales and mins, [qh,] qs. Defined for kBits 4 and 5.
template <int kBits>
struct KAffineFormat {
  static constexpr int kBlock = kSuperBlock, kBytes = kBits == 4 ? 144 : 176;
  static constexpr int kMaxCode = (1 << kBits) - 1;
  static constexpr int kQs = kBytes - 128, kQh = 16;  // Q5_K only
  static void encode(const float* x, uint8_t* out);
  static void decode(const uint8_t* in, float* y);
};

extern template struct KAffineFormat<4>;
extern template struct KAffineFormat<5>;

// Q6_K: ql, qh, 16 int8 scales, fp16 d.
struct Q6KFormat {
  static constexpr int kBlock = kSuperBlock, kBytes = 210;
  static void encode(const float* x, uint8_t* out);
  static void decode(const uint8_t* in, float* y);
};

}  // namespace qtune::ggml_detail
