// The 4-bit code books and the value -> code functions, shared by the CPU implementation and the CUDA
// kernels so both give the same codes bit for bit.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define QTUNE_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define QTUNE_HOST_DEVICE inline
#endif

namespace qtune::codes {

// Boundaries between neighbouring NF4 values (their midpoints), ascending, as bitsandbytes writes them.
QTUNE_HOST_DEVICE float nf4_boundary(int i) {
  constexpr float boundaries[15] = {-0.8480964004993439f, -0.6106329262256622f, -0.4599952697753906f, -0.33967943489551544f,
                                    -0.23460740596055984f, -0.13791173323988914f, -0.045525018125772476f, 0.03979014977812767f,
                                    0.1202552504837513f, 0.2035212516784668f, 0.2920137718319893f, 0.3893125355243683f,
                                    0.5016634166240692f, 0.6427869200706482f, 0.8614784181118011f};
  return boundaries[i];
}

// The NF4 code of x (x = weight / absmax): how many boundaries lie strictly below it. NaN (a block whose
// absmax is 0, since bitsandbytes multiplies by 1/absmax) compares false everywhere: code 0.
QTUNE_HOST_DEVICE uint8_t nf4_code(float x) {
  uint8_t code = 0;
  for (int i = 0; i < 15; ++i) code += x > nf4_boundary(i);
  return code;
}

// FP4 (1 sign bit, 2 exponent, 1 mantissa; bias 3): magnitude intervals as bitsandbytes bounds them, and
// the 3-bit code of each interval; bit 3 is the sign of x < 0.
QTUNE_HOST_DEVICE uint8_t fp4_code(float x) {
  constexpr float boundaries[7] = {0.00260417f, 0.0859375f, 0.20833333f, 0.29166667f, 0.4166667f, 0.583333f, 0.8333333f};
  constexpr uint8_t interval_codes[8] = {0b000, 0b001, 0b110, 0b111, 0b100, 0b101, 0b010, 0b011};
  const uint8_t sign = x < 0 ? 0b1000 : 0;
  const float magnitude = x < 0 ? -x : x;
  int interval = 0;
  for (int i = 0; i < 7; ++i) interval += magnitude > boundaries[i];
  return static_cast<uint8_t>(interval_codes[interval] + sign);
}

}  // namespace qtune::codes
