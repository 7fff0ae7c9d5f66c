// AVX-512 dequantization of one 4-bit block, for dequantize_4bit's CPU loop (kernels/blockwise_quant.cpp) and
// bit-identical to its portable code: the block's 16 possible outputs values[c] * absmax are rounded once to
// the output type (bfloat16: round to nearest even, NaN to 0x7FC0, as c10::BFloat16), then every code is a
// register table lookup (vpermw / vpermps), 32 or 16 elements per instruction instead of one.
// Element 2j is byte j's high nibble, 2j+1 its low one (bitsandbytes' packing).
#pragma once

#include <cstdint>

#include <c10/util/BFloat16.h>

namespace qtune {

// Whether this CPU runs the functions below (x86-64 with AVX-512 F and BW); otherwise use the portable loop.
bool cpu_has_avx512_dequant();

// `count` elements from `bytes` (count a multiple of 32) into out[0, count).
void dequantize_block_avx512(const uint8_t* bytes, int64_t count, const float* values, float absmax, c10::BFloat16* out);
void dequantize_block_avx512(const uint8_t* bytes, int64_t count, const float* values, float absmax, float* out);

}  // namespace qtune
