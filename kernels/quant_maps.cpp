// The 4-bit tables and the dynamic map.
#include "kernels/quant_maps.h"

#include "kernels/quant_codes.h"

#include <algorithm>
#include <cmath>

namespace qtune {

const std::array<float, 16>& nf4_values() {
  // QLoRA paper / bitsandbytes: quantiles of N(0, 1), normalized to [-1, 1], with an exact zero.
  static const std::array<float, 16> values = {
      -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f, -0.28444138169288635f, -0.18477343022823334f,
      -0.09105003625154495f, 0.0f, 0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
      0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f};
  return values;
}

const std::array<float, 16>& fp4_values() {
  // bitsandbytes FP4 (1 sign, 2 exponent, 1 mantissa bits, bias 3): magnitudes 0, 0.0625, 8, 12, 4, 6, 2, 3
  // by the low three bits, divided by the largest (12).
  static const std::array<float, 16> values = [] {
    const float magnitudes[8] = {0.0f, 0.0625f, 8.0f, 12.0f, 4.0f, 6.0f, 2.0f, 3.0f};
    std::array<float, 16> v{};
    for (int i = 0; i < 8; ++i) {
      v[i] = magnitudes[i] / 12.0f;
      v[i + 8] = -magnitudes[i] / 12.0f;
    }
    return v;
  }();
  return values;
}

uint8_t quantize_nf4(float x) { return codes::nf4_code(x); }

uint8_t quantize_fp4(float x) { return codes::fp4_code(x); }

const at::Tensor& dynamic_map_signed() {
  // Exponent i = 0..6 covers magnitudes 10^(i-6) * (0.1 .. 1) with 2^i linear steps (bin means); plus 0
  // and 1. Built with the same float32 tensor ops as bitsandbytes so the values match to the bit.
  static const at::Tensor map = [] {
    std::vector<at::Tensor> parts;
    for (int i = 0; i < 7; ++i) {
      at::Tensor boundaries = at::linspace(0.1, 1.0, (1 << i) + 1, at::kFloat);
      at::Tensor means = (boundaries.slice(0, 0, -1) + boundaries.slice(0, 1)) / 2.0;
      const double scale = std::pow(10.0, -6 + i);
      parts.push_back(means * scale);
      parts.push_back(means * -scale);
    }
    parts.push_back(at::zeros({1}, at::kFloat));
    parts.push_back(at::ones({1}, at::kFloat));
    return std::get<0>(at::cat(parts).sort()).contiguous();
  }();
  return map;
}

uint8_t quantize_to_map(float x, const float* map) {
  const float* upper = std::lower_bound(map, map + 256, x);  // first value >= x
  if (upper == map) return 0;
  if (upper == map + 256) return 255;
  const float* lower = upper - 1;
  const float midpoint = (*lower + *upper) * 0.5f;
  return static_cast<uint8_t>((x >= midpoint ? upper : lower) - map);
}

}  // namespace qtune
