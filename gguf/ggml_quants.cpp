// ggml's tensor encodings F32/F16/BF16 and the 32-weight blocks, and the row/thread/type-table dispatch to every
// codec (the K-quants are in ggml_kquants.cpp). Written from the format descriptions (GGUF specification,
// ggml-common.h block layouts) and the published quantization procedures. Every block is little-endian; fp16
// scales are IEEE binary16.
//
// Exactness: the quantizers do their arithmetic in float32, in the order ggml's reference quantizer does, with no
// fused multiply-adds (this file must not be built with -ffp-contract=fast on a machine with FMA; x86-64 without
// -march has none), so the codes equal ggml's byte for byte. The decoders compute exactly the float32 products
// and sums gguf-py's dequantize does.
#include "gguf/ggml_quants.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "gguf/ggml_kquants.h"
#include "gguf/ggml_scalars.h"

namespace qtune {
namespace {

using namespace ggml_detail;

// ---- scalars (those the K-quants share are in ggml_scalars.h) ----

// ggml's conversion: round to nearest even on the upper 16 bits; a NaN keeps its upper bits, made quiet.
uint16_t f32_to_bf16(float f) {
  const uint32_t bits = float_bits(f);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 64u);
  return static_cast<uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}

float bf16_to_f32(uint16_t h) { return bits_float(static_cast<uint32_t>(h) << 16); }

// Round half away from zero (C's roundf) without a library call: v - trunc(v) is exact below 2^23.
int round_away(float v) {
  const int i = static_cast<int>(v);
  const float fraction = v - static_cast<float>(i);
  return i + static_cast<int>(fraction >= 0.5f) - static_cast<int>(fraction <= -0.5f);
}

// float -> small code by truncation, as ggml's (int8_t)(v) casts; v is clamped first so that a degenerate block
// (a subnormal scale whose inverse overflows) stays defined. Equal to the cast for every v in [0, limit].
int truncate_code(float v, int limit) {
  return std::min(limit, static_cast<int>(std::fmin(std::fmax(v, 0.0f), static_cast<float>(limit))));
}

// ---- formats with one weight per block ----

struct F32Format {
  static constexpr int kBlock = 1, kBytes = 4;
  static void encode(const float* x, uint8_t* out) { std::memcpy(out, x, 4); }
  static void decode(const uint8_t* in, float* y) { std::memcpy(y, in, 4); }
};

struct F16Format {
  static constexpr int kBlock = 1, kBytes = 2;
  static void encode(const float* x, uint8_t* out) { put_f16(out, *x); }
  static void decode(const uint8_t* in, float* y) { *y = get_f16(in); }
};

struct BF16Format {
  static constexpr int kBlock = 1, kBytes = 2;
  static void encode(const float* x, uint8_t* out) {
    const uint16_t h = f32_to_bf16(*x);
    std::memcpy(out, &h, 2);
  }
  static void decode(const uint8_t* in, float* y) {
    uint16_t h;
    std::memcpy(&h, in, 2);
    *y = bf16_to_f32(h);
  }
};

// ---- 32-weight blocks ----

// The element of largest magnitude, with its sign (the first one on a tie): Q4_0/Q5_0 map it to code 0.
float signed_absmax(const float* x) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < 32; ++j) {
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  return max;
}

void block_min_max(const float* x, float& min, float& max) {
  min = FLT_MAX;
  max = -FLT_MAX;
  for (int j = 0; j < 32; ++j) {
    if (x[j] < min) min = x[j];
    if (x[j] > max) max = x[j];
  }
}

// Codes of 4 bits (and a 5th in qh): nibble j of qs holds element j (low) and j + 16 (high); bit j of qh is
// bit 4 of element j.
void pack_nibbles(const int* codes, uint8_t* qs) {
  for (int j = 0; j < 16; ++j) qs[j] = static_cast<uint8_t>((codes[j] & 0xf) | ((codes[j + 16] & 0xf) << 4));
}

void pack_high_bits(const int* codes, uint8_t* qh) {
  uint32_t bits = 0;
  for (int j = 0; j < 32; ++j) bits |= static_cast<uint32_t>((codes[j] >> 4) & 1) << j;
  std::memcpy(qh, &bits, 4);
}

void unpack_codes(const uint8_t* qs, const uint8_t* qh, int* codes) {
  uint32_t bits = 0;
  if (qh) std::memcpy(&bits, qh, 4);
  for (int j = 0; j < 16; ++j) {
    codes[j] = (qs[j] & 0xf) | static_cast<int>(((bits >> j) & 1u) << 4);
    codes[j + 16] = (qs[j] >> 4) | static_cast<int>(((bits >> (j + 16)) & 1u) << 4);
  }
}

// Q8_0: fp16 d, 32 int8. d = absmax / 127; codes round(x / d) half away from zero, with 1/d from the float32 d.
struct Q8_0Format {
  static constexpr int kBlock = 32, kBytes = 34;
  static void encode(const float* x, uint8_t* out) {
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    put_f16(out, d);
    for (int j = 0; j < 32; ++j) out[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(round_away(x[j] * id)));
  }
  static void decode(const uint8_t* in, float* y) {
    const float d = get_f16(in);
    for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(static_cast<int8_t>(in[2 + j])) * d;
  }
};

// Q4_0 / Q5_0: fp16 d [, qh], qs. d = m / -2^(bits-1) for the signed absmax m, so m itself gets code 0;
// code = trunc(x / d + 2^(bits-1) + 0.5), at most 2^bits - 1; value (code - 2^(bits-1)) * d.
template <int kBits>
struct SymmetricFormat {
  static constexpr int kBlock = 32, kBytes = kBits == 4 ? 18 : 22;
  static constexpr int kOffset = 1 << (kBits - 1), kMaxCode = (1 << kBits) - 1;
  static void encode(const float* x, uint8_t* out) {
    const float d = signed_absmax(x) / static_cast<float>(-kOffset);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    put_f16(out, d);
    int codes[32];
    for (int j = 0; j < 32; ++j) codes[j] = truncate_code(x[j] * id + (static_cast<float>(kOffset) + 0.5f), kMaxCode);
    if (kBits == 5) pack_high_bits(codes, out + 2);
    pack_nibbles(codes, out + kBytes - 16);
  }
  static void decode(const uint8_t* in, float* y) {
    const float d = get_f16(in);
    int codes[32];
    unpack_codes(in + kBytes - 16, kBits == 5 ? in + 2 : nullptr, codes);
    for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(codes[j] - kOffset) * d;
  }
};

// Q4_1 / Q5_1: fp16 d, fp16 m [, qh], qs. d = (max - min) / (2^bits - 1), m = min; code = trunc((x - min) / d + 0.5);
// value code * d + m.
template <int kBits>
struct AffineFormat {
  static constexpr int kBlock = 32, kBytes = kBits == 4 ? 20 : 24;
  static constexpr int kMaxCode = (1 << kBits) - 1;
  static void encode(const float* x, uint8_t* out) {
    float min, max;
    block_min_max(x, min, max);
    const float d = (max - min) / static_cast<float>(kMaxCode);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    put_f16(out, d);
    put_f16(out + 2, min);
    int codes[32];
    for (int j = 0; j < 32; ++j) codes[j] = truncate_code((x[j] - min) * id + 0.5f, kMaxCode);
    if (kBits == 5) pack_high_bits(codes, out + 4);
    pack_nibbles(codes, out + kBytes - 16);
  }
  static void decode(const uint8_t* in, float* y) {
    const float d = get_f16(in), m = get_f16(in + 2);
    int codes[32];
    unpack_codes(in + kBytes - 16, kBits == 5 ? in + 4 : nullptr, codes);
    for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(codes[j]) * d + m;
  }
};

// ---- rows, threads, the type table ----

template <class Format>
void encode_row(const float* x, int64_t n, uint8_t* out) {
  for (int64_t b = 0; b < n / Format::kBlock; ++b) Format::encode(x + b * Format::kBlock, out + b * Format::kBytes);
}

template <class Format>
void decode_row(const uint8_t* in, int64_t n, float* y) {
  for (int64_t b = 0; b < n / Format::kBlock; ++b) Format::decode(in + b * Format::kBytes, y + b * Format::kBlock);
}

struct TypeEntry {
  GgmlType type;
  GgmlTypeTraits traits;
  void (*encode)(const float*, int64_t, uint8_t*);
  void (*decode)(const uint8_t*, int64_t, float*);
};

template <class Format>
TypeEntry entry(GgmlType type, const char* name) {
  return {type, {name, Format::kBlock, Format::kBytes}, encode_row<Format>, decode_row<Format>};
}

const std::vector<TypeEntry>& type_table() {
  static const std::vector<TypeEntry> table = {
      entry<F32Format>(GgmlType::kF32, "F32"),           entry<F16Format>(GgmlType::kF16, "F16"),
      entry<SymmetricFormat<4>>(GgmlType::kQ4_0, "Q4_0"), entry<AffineFormat<4>>(GgmlType::kQ4_1, "Q4_1"),
      entry<SymmetricFormat<5>>(GgmlType::kQ5_0, "Q5_0"), entry<AffineFormat<5>>(GgmlType::kQ5_1, "Q5_1"),
      entry<Q8_0Format>(GgmlType::kQ8_0, "Q8_0"),         entry<KAffineFormat<4>>(GgmlType::kQ4_K, "Q4_K"),
      entry<KAffineFormat<5>>(GgmlType::kQ5_K, "Q5_K"),   entry<Q6KFormat>(GgmlType::kQ6_K, "Q6_K"),
      entry<BF16Format>(GgmlType::kBF16, "BF16"),
  };
  return table;
}

const TypeEntry& entry_for(GgmlType type) {
  for (const TypeEntry& e : type_table())
    if (e.type == type) return e;
  input_error("ggml type id {} is not one qtune supports", static_cast<uint32_t>(type));
}

// Weights per parallel task: enough that thread start-up is small against the work.
int64_t grain_rows(int64_t row_length) { return std::max<int64_t>(1, 32768 / std::max<int64_t>(1, row_length)); }

// No NaN or infinity among n floats (an integer test on the exponent bits, so that it vectorizes).
bool all_finite(const float* x, int64_t n) {
  uint32_t bad = 0;
  for (int64_t i = 0; i < n; ++i) bad |= static_cast<uint32_t>((float_bits(x[i]) & 0x7f800000u) == 0x7f800000u);
  return bad == 0;
}

}  // namespace

std::optional<GgmlType> ggml_type_from_id(uint32_t id) {
  for (const TypeEntry& e : type_table())
    if (static_cast<uint32_t>(e.type) == id) return e.type;
  return std::nullopt;
}

const GgmlTypeTraits& ggml_traits(GgmlType type) { return entry_for(type).traits; }

uint64_t ggml_row_bytes(GgmlType type, int64_t row_length) {
  const GgmlTypeTraits& traits = ggml_traits(type);
  if (row_length < 0 || row_length % traits.block_size != 0)
    input_error("a row of {} weights cannot be stored as {}: its length must be a multiple of {}", row_length, traits.name, traits.block_size);
  return static_cast<uint64_t>(row_length / traits.block_size) * static_cast<uint64_t>(traits.type_size);
}

void ggml_quantize(GgmlType type, const float* x, int64_t rows, int64_t row_length, uint8_t* out) {
  const TypeEntry& e = entry_for(type);
  const uint64_t row_bytes = ggml_row_bytes(type, row_length);
  const bool needs_finite = e.traits.block_size > 1;  // F32/F16/BF16 carry NaN and infinity as ggml does
  std::atomic<int64_t> first_bad{rows};
  at::parallel_for(0, rows, grain_rows(row_length), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* row = x + r * row_length;
      if (needs_finite && !all_finite(row, row_length)) {
        int64_t seen = first_bad.load();
        while (r < seen && !first_bad.compare_exchange_weak(seen, r)) {
        }
        continue;
      }
      e.encode(row, row_length, out + r * row_bytes);
    }
  });
  if (first_bad.load() < rows)
    input_error("cannot quantize to {}: row {} holds NaN or infinity (a block scale would be meaningless)", e.traits.name, first_bad.load());
}

void ggml_dequantize(GgmlType type, const uint8_t* data, int64_t rows, int64_t row_length, float* out) {
  const TypeEntry& e = entry_for(type);
  const uint64_t row_bytes = ggml_row_bytes(type, row_length);
  at::parallel_for(0, rows, grain_rows(row_length), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) e.decode(data + r * row_bytes, row_length, out + r * row_length);
  });
}

}  // namespace qtune
