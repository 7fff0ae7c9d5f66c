// Internal to the ggml codecs (ggml_quants.cpp, ggml_kquants.cpp): the scalar conversions both need. Include it
// only from files built with -ffp-contract=off (gguf/CMakeLists.txt): these inline functions become part of the
// quantizers' arithmetic, which must match ggml's float operations exactly.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace qtune::ggml_detail {

inline uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

inline float bits_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// IEEE binary16, round to nearest even; overflow gives infinity, NaN a quiet NaN of the same sign.
inline uint16_t f32_to_f16(float f) {
  const uint32_t bits = float_bits(f);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t magnitude = bits & 0x7fffffffu;
  if (magnitude > 0x7f800000u) return sign | 0x7e00u;
  if (magnitude >= 0x477ff000u) return sign | 0x7c00u;  // >= 65520 rounds (to even) past 65504
  if (magnitude < 0x38800000u) {                         // below 2^-14: a binary16 subnormal, in units of 2^-24
    const float units = bits_float(magnitude) * 16777216.0f;  // exact: scaling by a power of two
    return sign | static_cast<uint16_t>(std::nearbyint(units));  // the default rounding mode: nearest even
  }
  uint32_t half = (magnitude >> 13) - (112u << 10);  // rebias the exponent from 127 to 15
  const uint32_t dropped = magnitude & 0x1fffu;
  // Round up above the halfway point, and at it when odd (branch-free: the bits are random); a mantissa carry
  // moves into the exponent, which is the right result.
  half += static_cast<uint32_t>(dropped > 0x1000u) | (static_cast<uint32_t>(dropped == 0x1000u) & half & 1u);
  return sign | static_cast<uint16_t>(half);
}

inline float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu, mantissa = h & 0x3ffu;
  if (exponent == 0) {
    const float value = static_cast<float>(mantissa) * (1.0f / 16777216.0f);  // exact
    return sign ? -value : value;
  }
  if (exponent == 31) return bits_float(sign | 0x7f800000u | (mantissa << 13));
  return bits_float(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

inline void put_f16(uint8_t* out, float f) {
  const uint16_t h = f32_to_f16(f);
  std::memcpy(out, &h, 2);
}

inline float get_f16(const uint8_t* in) {
  uint16_t h;
  std::memcpy(&h, in, 2);
  return f16_to_f32(h);
}

// Round half to even for |v| < 2^22 (the K-quants' magnitudes are far below): adding 1.5 * 2^23 leaves the
// rounded integer in the low mantissa bits, as ggml's K-quant helper does (and as fast: no libm call).
inline int nearest_even(float v) {
  const uint32_t bits = float_bits(v + 12582912.0f);
  return static_cast<int>(bits & 0x7fffffu) - 0x400000;
}

}  // namespace qtune::ggml_detail
