// ggml's K-quants: the 256-weight super-block formats Q4_K, Q5_K and Q6_K, with llama.cpp's scale searches.
//
// Exactness: as in ggml_quants.cpp, the arithmetic is float32 in the order of llama.cpp's reference quantizer with
// no fused multiply-adds (this file is built with -ffp-contract=off), so the codes equal llama.cpp's byte for byte.
#include "gguf/ggml_kquants.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "gguf/ggml_scalars.h"

namespace qtune::ggml_detail {
namespace {

// Q4_K / Q5_K sub-block scales and mins, 6 bits each in 12 bytes: sub-blocks 0-3 in the low 6 bits of bytes 0-3
// (scale) and 4-7 (min); sub-blocks 4-7 in the nibbles of bytes 8-11 (scale low, min high), their upper 2 bits in
// the top bits of bytes 0-3 (scale) and 4-7 (min).
void pack_scales_mins(const uint8_t* scales, const uint8_t* mins, uint8_t* out) {
  for (int j = 0; j < 4; ++j) {
    out[j] = static_cast<uint8_t>(scales[j] | ((scales[j + 4] >> 4) << 6));
    out[j + 4] = static_cast<uint8_t>(mins[j] | ((mins[j + 4] >> 4) << 6));
    out[j + 8] = static_cast<uint8_t>((scales[j + 4] & 0xf) | ((mins[j + 4] & 0xf) << 4));
  }
}

void unpack_scale_min(const uint8_t* packed, int j, int& scale, int& min) {
  if (j < 4) {
    scale = packed[j] & 63;
    min = packed[j + 4] & 63;
  } else {
    scale = (packed[j + 4] & 0xf) | ((packed[j - 4] >> 6) << 4);
    min = (packed[j + 4] >> 4) | ((packed[j] >> 6) << 4);
  }
}

// Q4_K / Q5_K codes: each 64 weights share 32 bytes of qs, the first 32 in the low nibbles; Q5_K's fifth bits
// are bit 2c (first 32) and 2c + 1 (second 32) of qh[l] for chunk c of 64.
void pack_k_codes(const uint8_t* codes, uint8_t* qs, uint8_t* qh) {
  std::memset(qs, 0, 128);
  if (qh) std::memset(qh, 0, 32);
  for (int e = 0; e < kSuperBlock; ++e) {
    const int chunk = e / 64, second = (e % 64) / 32, l = e % 32;
    const int low = codes[e] & 0xf;
    qs[chunk * 32 + l] |= static_cast<uint8_t>(second ? low << 4 : low);
    if (qh && (codes[e] & 16)) qh[l] |= static_cast<uint8_t>(1 << (2 * chunk + second));
  }
}

int unpack_k_code(const uint8_t* qs, const uint8_t* qh, int e) {
  const int chunk = e / 64, second = (e % 64) / 32, l = e % 32;
  const int low = second ? qs[chunk * 32 + l] >> 4 : qs[chunk * 32 + l] & 0xf;
  return qh ? low | (((qh[l] >> (2 * chunk + second)) & 1) << 4) : low;
}

// Q6_K codes (0..63, value code - 32): each 128 weights use 64 bytes of ql and 32 of qh; quarter q of the 128 has
// its low nibble in ql[(q & 1) * 32 + l] (low nibble for q < 2, high for q >= 2) and its 2 high bits at bit 2q of qh[l].
void pack_q6_codes(const uint8_t* codes, uint8_t* ql, uint8_t* qh) {
  std::memset(ql, 0, 128);
  std::memset(qh, 0, 64);
  for (int e = 0; e < kSuperBlock; ++e) {
    const int half = e / 128, quarter = (e % 128) / 32, l = e % 32;
    const int low = codes[e] & 0xf;
    ql[half * 64 + (quarter & 1) * 32 + l] |= static_cast<uint8_t>(quarter >= 2 ? low << 4 : low);
    qh[half * 32 + l] |= static_cast<uint8_t>((codes[e] >> 4) << (2 * quarter));
  }
}

int unpack_q6_code(const uint8_t* ql, const uint8_t* qh, int e) {
  const int half = e / 128, quarter = (e % 128) / 32, l = e % 32;
  const uint8_t byte = ql[half * 64 + (quarter & 1) * 32 + l];
  const int low = quarter >= 2 ? byte >> 4 : byte & 0xf;
  return low | (((qh[half * 32 + l] >> (2 * quarter)) & 3) << 4);
}

// Codes clamp(round_even(iscale * (x - min)), 0, nmax) of a sub-block of 32.
void affine_codes(const float* x, int nmax, float iscale, float min, uint8_t* codes) {
  for (int i = 0; i < 32; ++i) codes[i] = static_cast<uint8_t>(std::clamp(nearest_even(iscale * (x[i] - min)), 0, nmax));
}

// sum w * (scale * code + min - x)^2 over a sub-block of 32.
float weighted_error(const float* x, const float* w, const uint8_t* codes, float scale, float min) {
  float error = 0;
  for (int i = 0; i < 32; ++i) {
    const float diff = scale * codes[i] + min - x[i];
    error += w[i] * (diff * diff);
  }
  return error;
}

struct ScaleOffset {
  float scale = 0, offset = 0;  // x ~ scale * code + offset, offset <= 0
};

struct SubBlockFit {
  float scale = 0, min = 0;  // x ~ scale * code - min, as stored (min >= 0)
};

// The weighted least-squares (scale, min) for fixed codes; min is held at 0 when the fit wants it positive.
// false when the codes cannot be fitted (all equal).
bool least_squares(const float* x, const float* w, const uint8_t* codes, float sum_w, float sum_x, ScaleOffset& fit) {
  float sum_l = 0, sum_l2 = 0, sum_xl = 0;
  for (int i = 0; i < 32; ++i) {
    const float wl = w[i] * codes[i];
    sum_l += wl;
    sum_l2 += wl * codes[i];
    sum_xl += wl * x[i];
  }
  const float det = sum_w * sum_l2 - sum_l * sum_l;
  if (!(det > 0)) return false;
  fit.scale = (sum_w * sum_xl - sum_x * sum_l) / det;
  fit.offset = (sum_l2 * sum_x - sum_l * sum_xl) / det;
  if (fit.offset > 0) {
    fit.offset = 0;
    fit.scale = sum_xl / sum_l2;
  }
  return true;
}

// llama.cpp's scale search for a Q4_K/Q5_K sub-block of 32 (weights w): codes from the range [min(x, 0), max x],
// then `steps + 1` candidate inverse scales (nmax + rmin + rdelta * k) / (max - min), each refitted by least
// squares; the fit of smallest weighted squared error wins. As in llama.cpp, a winning fit's min replaces the
// range's lower end for the candidates after it.
SubBlockFit search_scale_min(const float* x, const float* w, int nmax, float rmin, float rdelta, int steps, uint8_t* codes) {
  float min = x[0], max = x[0], sum_w = w[0], sum_x = w[0] * x[0];
  for (int i = 1; i < 32; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    sum_w += w[i];
    sum_x += w[i] * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {
    std::memset(codes, 0, 32);
    return {0, -min};
  }
  const float first_iscale = nmax / (max - min);
  ScaleOffset best{1 / first_iscale, min};
  affine_codes(x, nmax, first_iscale, min, codes);
  float best_error = weighted_error(x, w, codes, best.scale, best.offset);
  uint8_t candidate[32];
  for (int k = 0; k <= steps; ++k) {
    affine_codes(x, nmax, (rmin + rdelta * k + nmax) / (max - best.offset), best.offset, candidate);
    ScaleOffset fit;
    if (!least_squares(x, w, candidate, sum_w, sum_x, fit)) continue;
    const float error = weighted_error(x, w, candidate, fit.scale, fit.offset);
    if (error < best_error) {
      std::memcpy(codes, candidate, 32);
      best_error = error;
      best = fit;
    }
  }
  return {best.scale, -best.offset};
}

// Q4_K / Q5_K sub-block fits. Weights av_x + |x| (av_x: the sub-block's RMS), so that large weights count more;
// the search ranges of llama.cpp's reference quantizer (Q4_K: nmax + [-1, 1] in 21 steps; Q5_K: nmax + [-0.5, 1]
// in 16).
template <int kBits>
SubBlockFit fit_sub_block(const float* x, uint8_t* codes) {
  constexpr int kMaxCode = KAffineFormat<kBits>::kMaxCode;
  float sum_x2 = 0;
  for (int l = 0; l < 32; ++l) sum_x2 += x[l] * x[l];
  const float av_x = std::sqrt(sum_x2 / 32);
  float w[32];
  for (int l = 0; l < 32; ++l) w[l] = av_x + std::fabs(x[l]);
  return kBits == 4 ? search_scale_min(x, w, kMaxCode, -1.0f, 0.1f, 20, codes) : search_scale_min(x, w, kMaxCode, -0.5f, 0.1f, 15, codes);
}

void quantize_scales(const SubBlockFit* fits, float max_scale, float max_min, uint8_t* packed) {
  const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
  const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
  uint8_t scales[8], mins[8];
  for (int j = 0; j < 8; ++j) {  // to uint8 first (a negative value wraps), then at most 63, as llama.cpp does
    scales[j] = std::min<uint8_t>(63, static_cast<uint8_t>(nearest_even(inv_scale * fits[j].scale)));
    mins[j] = std::min<uint8_t>(63, static_cast<uint8_t>(nearest_even(inv_min * fits[j].min)));
  }
  pack_scales_mins(scales, mins, packed);
}

// The codes recomputed against the quantized scale and min; a sub-block whose quantized scale is 0 keeps the
// codes of its search.
template <int kBits>
void requantize(const float* x, const uint8_t* block, uint8_t* codes) {
  constexpr int kMaxCode = KAffineFormat<kBits>::kMaxCode;
  const float d = get_f16(block), dmin = get_f16(block + 2);
  for (int j = 0; j < 8; ++j) {
    int scale, min;
    unpack_scale_min(block + 4, j, scale, min);
    const float sub_d = d * scale;
    if (sub_d == 0) continue;
    const float sub_m = dmin * min;
    for (int i = 32 * j; i < 32 * j + 32; ++i) codes[i] = static_cast<uint8_t>(std::clamp(nearest_even((x[i] + sub_m) / sub_d), 0, kMaxCode));
  }
}

// llama.cpp's signed scale search for a Q6_K sub-block of 16: codes round_even(iscale * x) in [-32, 31] for
// iscale = -(32 + 0.1 k) / m (m the signed absmax, k = 0, then -9..9), the scale refitted by least squares with
// weights x^2; a candidate wins when it explains more weighted energy (sumlx^2 / suml2). codes get 32 added.
float search_signed_scale(const float* x, uint8_t* codes) {
  float amax = 0, max = 0;
  for (int i = 0; i < 16; ++i) {
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      max = x[i];
    }
  }
  if (amax < 1e-15f) {
    std::memset(codes, 0, 16);
    return 0;
  }
  float scale = 0, best = 0;
  for (int k = 0; k <= 18; ++k) {
    const int step = k == 0 ? 0 : k - 10 + (k >= 10);  // 0, then -9..-1, 1..9
    const float iscale = k == 0 ? -32.0f / max : -(32 + 0.1f * step) / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < 16; ++i) {
      const int l = std::clamp(nearest_even(iscale * x[i]), -32, 31);
      const float w = x[i] * x[i];
      sumlx += w * x[i] * l;
      suml2 += w * l * l;
    }
    const bool better = k == 0 || (suml2 > 0 && sumlx * sumlx > best * suml2);
    if (!better) continue;
    for (int i = 0; i < 16; ++i) codes[i] = static_cast<uint8_t>(std::clamp(nearest_even(iscale * x[i]), -32, 31) + 32);
    scale = suml2 != 0 ? sumlx / suml2 : 0.0f;
    best = scale * sumlx;
  }
  return scale;
}

}  // namespace

// Q4_K / Q5_K: each sub-block of 32 is d * scale_j * code - dmin * min_j. The sub-block fits are quantized to 6 bits
// against d = max scale / 63 and dmin = max min / 63; the codes are then recomputed against the quantized scale
// and min.
template <int kBits>
void KAffineFormat<kBits>::encode(const float* x, uint8_t* out) {
  uint8_t codes[kSuperBlock];
  SubBlockFit fits[8];
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < 8; ++j) {
    fits[j] = fit_sub_block<kBits>(x + 32 * j, codes + 32 * j);
    if (fits[j].scale > max_scale) max_scale = fits[j].scale;
    if (fits[j].min > max_min) max_min = fits[j].min;
  }
  std::memset(out, 0, kBytes);
  put_f16(out, max_scale / 63.f);
  put_f16(out + 2, max_min / 63.f);
  quantize_scales(fits, max_scale, max_min, out + 4);
  requantize<kBits>(x, out, codes);
  pack_k_codes(codes, out + kQs, kBits == 5 ? out + kQh : nullptr);
}

template <int kBits>
void KAffineFormat<kBits>::decode(const uint8_t* in, float* y) {
  const float d = get_f16(in), dmin = get_f16(in + 2);
  const uint8_t* qs = in + kQs;
  const uint8_t* qh = kBits == 5 ? in + kQh : nullptr;
  for (int j = 0; j < 8; ++j) {
    int scale, min;
    unpack_scale_min(in + 4, j, scale, min);
    const float sub_d = d * scale, sub_m = dmin * min;
    for (int i = 32 * j; i < 32 * j + 32; ++i) y[i] = sub_d * static_cast<float>(unpack_k_code(qs, qh, i)) - sub_m;
  }
}

template struct KAffineFormat<4>;
template struct KAffineFormat<5>;

// Q6_K: each sub-block of 16 is d * scale_j * (code - 32). The sub-block scales are quantized to int8 against
// d = -(signed max scale) / 128; the codes are then recomputed against them.
void Q6KFormat::encode(const float* x, uint8_t* out) {
  uint8_t codes[kSuperBlock];
  float scales[16], max_scale = 0, max_abs_scale = 0;
  for (int j = 0; j < 16; ++j) {
    scales[j] = search_signed_scale(x + 16 * j, codes + 16 * j);
    if (std::fabs(scales[j]) > max_abs_scale) {
      max_abs_scale = std::fabs(scales[j]);
      max_scale = scales[j];
    }
  }
  std::memset(out, 0, kBytes);
  if (max_abs_scale < 1e-15f) return;  // an all-zero super-block: every byte 0
  const float iscale = -128.f / max_scale;
  put_f16(out + 208, 1 / iscale);
  int8_t* int_scales = reinterpret_cast<int8_t*>(out + 192);
  for (int j = 0; j < 16; ++j) int_scales[j] = static_cast<int8_t>(std::min(127, nearest_even(iscale * scales[j])));
  const float d = get_f16(out + 208);
  for (int j = 0; j < 16; ++j) {
    const float sub_d = d * int_scales[j];
    if (sub_d == 0) continue;  // keeps the codes of the search, as llama.cpp does
    for (int i = 16 * j; i < 16 * j + 16; ++i) codes[i] = static_cast<uint8_t>(std::clamp(nearest_even(x[i] / sub_d), -32, 31) + 32);
  }
  pack_q6_codes(codes, out, out + 128);
}

void Q6KFormat::decode(const uint8_t* in, float* y) {
  const float d = get_f16(in + 208);
  const int8_t* int_scales = reinterpret_cast<const int8_t*>(in + 192);
  for (int j = 0; j < 16; ++j) {
    const float sub_d = d * int_scales[j];
    for (int i = 16 * j; i < 16 * j + 16; ++i) y[i] = sub_d * static_cast<float>(unpack_q6_code(in, in + 128, i) - 32);
  }
}

}  // namespace qtune::ggml_detail
