// AVX-512 block dequantization (see dequant4_simd.h). Compiled for the target per function, so the binary
// still runs on CPUs without AVX-512 (cpu_has_avx512_dequant() says which path to take).
#include "kernels/dequant4_simd.h"

#include <cstring>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define QTUNE_X86_SIMD 1
#define QTUNE_AVX512 __attribute__((target("avx2,avx512f,avx512bw")))
#endif

namespace qtune {

#ifdef QTUNE_X86_SIMD
namespace {

// 16 packed bytes -> their 32 codes in element order, one per 16-bit lane: byte b gives lanes (b >> 4, b & 15).
QTUNE_AVX512 __m512i codes_of_16_bytes(const uint8_t* bytes) {
  const __m256i b = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(bytes)));
  const __m256i pairs = _mm256_or_si256(_mm256_srli_epi16(b, 4), _mm256_slli_epi16(_mm256_and_si256(b, _mm256_set1_epi16(15)), 8));
  return _mm512_cvtepu8_epi16(pairs);
}

// The 16 outputs values[c] * absmax as bfloat16 bits, rounded as c10::BFloat16 rounds (nearest even; NaN 0x7FC0).
QTUNE_AVX512 __m512i bf16_table(const float* values, float absmax) {
  const __m512 v = _mm512_mul_ps(_mm512_loadu_ps(values), _mm512_set1_ps(absmax));
  const __m512i u = _mm512_castps_si512(v);
  const __m512i bias = _mm512_add_epi32(_mm512_set1_epi32(0x7FFF), _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1)));
  __m512i rounded = _mm512_srli_epi32(_mm512_add_epi32(u, bias), 16);
  rounded = _mm512_mask_mov_epi32(rounded, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), _mm512_set1_epi32(0x7FC0));
  return _mm512_zextsi256_si512(_mm512_cvtepi32_epi16(rounded));  // words 0..15 hold the table
}

}  // namespace

bool cpu_has_avx512_dequant() {
  static const bool has = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx2");
  return has;
}

QTUNE_AVX512 void dequantize_block_avx512(const uint8_t* bytes, int64_t count, const float* values, float absmax, c10::BFloat16* out) {
  const __m512i table = bf16_table(values, absmax);
  for (int64_t i = 0; i < count; i += 32)
    _mm512_storeu_si512(reinterpret_cast<void*>(out + i), _mm512_permutexvar_epi16(codes_of_16_bytes(bytes + i / 2), table));
}

QTUNE_AVX512 void dequantize_block_avx512(const uint8_t* bytes, int64_t count, const float* values, float absmax, float* out) {
  const __m512 table = _mm512_mul_ps(_mm512_loadu_ps(values), _mm512_set1_ps(absmax));
  for (int64_t i = 0; i < count; i += 32) {
    const __m512i codes = codes_of_16_bytes(bytes + i / 2);  // 32 codes as words: two halves of 16
    const __m512i low = _mm512_cvtepu16_epi32(_mm512_castsi512_si256(codes));
    const __m512i high = _mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(codes, 1));
    _mm512_storeu_ps(out + i, _mm512_permutexvar_ps(low, table));
    _mm512_storeu_ps(out + i + 16, _mm512_permutexvar_ps(high, table));
  }
}

#else

bool cpu_has_avx512_dequant() { return false; }
void dequantize_block_avx512(const uint8_t*, int64_t, const float*, float, c10::BFloat16*) {}
void dequantize_block_avx512(const uint8_t*, int64_t, const float*, float, float*) {}

#endif

}  // namespace qtune
