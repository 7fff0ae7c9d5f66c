// ggml codecs: F16/BF16 against torch's IEEE conversions, block sizes from the GGUF specification, hand-built
// blocks decoded by the layout the specification describes, and each block type's round-trip error within the bound
// its format gives. (Byte equality with gguf-py and llama.cpp: tests/reference/test_gguf_quants_reference.cpp.)
#include <gtest/gtest.h>

#include <cmath>
#include <algorithm>
#include <cstring>
#include <iostream>
#include <limits>
#include <random>
#include <vector>

#include "core/error.h"
#include "gguf/ggml_quants.h"
#include "tests/support/test_support.h"

namespace qtune {
namespace {

std::vector<uint8_t> encode(GgmlType type, const std::vector<float>& x, int64_t rows) {
  const int64_t row_length = static_cast<int64_t>(x.size()) / rows;
  std::vector<uint8_t> out(ggml_row_bytes(type, row_length) * rows);
  ggml_quantize(type, x.data(), rows, row_length, out.data());
  return out;
}

std::vector<float> decode(GgmlType type, const std::vector<uint8_t>& bytes, int64_t rows, int64_t row_length) {
  std::vector<float> out(rows * row_length);
  ggml_dequantize(type, bytes.data(), rows, row_length, out.data());
  return out;
}

std::vector<float> gaussian(int64_t n, float std, unsigned seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist(0.0f, std);
  std::vector<float> x(n);
  for (float& v : x) v = dist(gen);
  return x;
}

uint16_t f16_bits(const std::vector<uint8_t>& bytes, size_t at) {
  uint16_t h;
  std::memcpy(&h, bytes.data() + at, 2);
  return h;
}

void put_f16(std::vector<uint8_t>& bytes, size_t at, float v) {
  const uint16_t h = c10::Half(v).x;
  std::memcpy(bytes.data() + at, &h, 2);
}

// The block and byte sizes of ggml-common.h (the GGUF specification's table).
TEST(GgmlQuants, RowBytesTable) {
  struct Row {
    GgmlType type;
    uint32_t id;
    const char* name;
    int64_t block, bytes;
  };
  const Row table[] = {{GgmlType::kF32, 0, "F32", 1, 4},       {GgmlType::kF16, 1, "F16", 1, 2},      {GgmlType::kQ4_0, 2, "Q4_0", 32, 18},
                       {GgmlType::kQ4_1, 3, "Q4_1", 32, 20},   {GgmlType::kQ5_0, 6, "Q5_0", 32, 22},  {GgmlType::kQ5_1, 7, "Q5_1", 32, 24},
                       {GgmlType::kQ8_0, 8, "Q8_0", 32, 34},   {GgmlType::kQ4_K, 12, "Q4_K", 256, 144}, {GgmlType::kQ5_K, 13, "Q5_K", 256, 176},
                       {GgmlType::kQ6_K, 14, "Q6_K", 256, 210}, {GgmlType::kBF16, 30, "BF16", 1, 2}};
  for (const Row& r : table) {
    SCOPED_TRACE(r.name);
    EXPECT_EQ(ggml_type_from_id(r.id), r.type);
    EXPECT_STREQ(ggml_traits(r.type).name, r.name);
    EXPECT_EQ(ggml_traits(r.type).block_size, r.block);
    EXPECT_EQ(ggml_traits(r.type).type_size, r.bytes);
    EXPECT_EQ(ggml_row_bytes(r.type, 4096), static_cast<uint64_t>(4096 / r.block * r.bytes));
  }
  EXPECT_EQ(ggml_row_bytes(GgmlType::kQ4_K, 4096), 2304u);  // 4.5 bits per weight
  EXPECT_EQ(ggml_row_bytes(GgmlType::kQ6_K, 4096), 3360u);  // 6.5625 bits per weight
  for (uint32_t unsupported : {4u, 5u, 9u, 10u, 11u, 15u, 16u, 29u, 31u, 1000u}) EXPECT_FALSE(ggml_type_from_id(unsupported).has_value()) << unsupported;
}

TEST(GgmlQuants, RowLengthMustBeWholeBlocks) {
  EXPECT_THROW(ggml_row_bytes(GgmlType::kQ8_0, 100), InputError);
  EXPECT_THROW(ggml_row_bytes(GgmlType::kQ4_K, 96), InputError);
  std::vector<float> x(96, 1.0f);
  std::vector<uint8_t> out(1000);
  EXPECT_THROW(ggml_quantize(GgmlType::kQ6_K, x.data(), 1, 96, out.data()), InputError);
  EXPECT_NO_THROW(ggml_quantize(GgmlType::kQ5_1, x.data(), 1, 96, out.data()));
}

// Every binary16 value: decoding equals torch's (IEEE) and encoding the decoded float gives the same bits back.
TEST(GgmlQuants, F16AllValuesRoundTrip) {
  std::vector<uint8_t> bytes(2 * 65536);
  for (uint32_t h = 0; h < 65536; ++h) std::memcpy(bytes.data() + 2 * h, &h, 2);
  const std::vector<float> values = decode(GgmlType::kF16, bytes, 1, 65536);
  int nan = 0;
  for (uint32_t h = 0; h < 65536; ++h) {
    const float want = static_cast<float>(c10::Half(static_cast<uint16_t>(h), c10::Half::from_bits()));
    if (std::isnan(want)) {
      EXPECT_TRUE(std::isnan(values[h])) << h;
      ++nan;
      continue;
    }
    ASSERT_EQ(std::memcmp(&values[h], &want, 4), 0) << "binary16 " << h;
  }
  EXPECT_EQ(nan, 2 * 1023);
  const std::vector<uint8_t> again = encode(GgmlType::kF16, values, 1);
  for (uint32_t h = 0; h < 65536; ++h) {
    if (std::isnan(values[h])) EXPECT_EQ(f16_bits(again, 2 * h) & 0x7e00, 0x7e00) << "a NaN stays a quiet NaN: " << h;
    else ASSERT_EQ(f16_bits(again, 2 * h), h);
  }
}

// Rounding of floats between binary16 values (random bit patterns over the whole float range, and the exact
// midpoints between neighbours) is torch's round-to-nearest-even: overflow to infinity, subnormals, ties to even.
TEST(GgmlQuants, F16RoundsLikeTorch) {
  std::mt19937 gen(3);
  std::vector<float> x;
  for (int i = 0; i < 200000; ++i) {
    const uint32_t bits = (gen() & 0x807fffffu) | ((96u + gen() % 64u) << 23);  // exponents 2^-31 .. 2^32
    float f;
    std::memcpy(&f, &bits, 4);
    x.push_back(f);
  }
  for (uint32_t h = 0; h < 0x7bff; ++h) {  // the float halfway between h and h + 1 (exact in float32)
    const float lo = static_cast<float>(c10::Half(static_cast<uint16_t>(h), c10::Half::from_bits()));
    const float hi = static_cast<float>(c10::Half(static_cast<uint16_t>(h + 1), c10::Half::from_bits()));
    x.push_back((lo + hi) / 2);
  }
  x.insert(x.end(), {65504.0f, 65519.99f, 65520.0f, -65520.0f, 1e-8f, 2.98e-8f, 2.99e-8f, -0.0f, std::numeric_limits<float>::infinity()});
  const torch::Tensor want = torch::tensor(x).to(torch::kHalf).view(torch::kInt16).to(torch::kInt32).bitwise_and(0xffff);
  const std::vector<uint8_t> got = encode(GgmlType::kF16, x, 1);
  for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(f16_bits(got, 2 * i), want[i].item<int>()) << "x = " << x[i];
}

// BF16 is float32's upper half rounded to nearest even (torch's conversion); NaN stays a quiet NaN.
TEST(GgmlQuants, Bf16RoundsLikeTorch) {
  std::mt19937 gen(4);
  std::vector<float> x;
  for (int i = 0; i < 100000; ++i) {
    const uint32_t bits = gen() & 0xff7fffffu;  // every finite exponent, no NaN
    float f;
    std::memcpy(&f, &bits, 4);
    x.push_back(f);
  }
  x.insert(x.end(), {3.3895314e38f, 1.0f + 1.0f / 256, 1.0f + 3.0f / 256, std::numeric_limits<float>::denorm_min()});
  const torch::Tensor want = torch::tensor(x).to(torch::kBFloat16).view(torch::kInt16).to(torch::kInt32).bitwise_and(0xffff);
  const std::vector<uint8_t> got = encode(GgmlType::kBF16, x, 1);
  for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(f16_bits(got, 2 * i), want[i].item<int>()) << "x = " << x[i];
  const std::vector<float> back = decode(GgmlType::kBF16, got, 1, static_cast<int64_t>(x.size()));
  EXPECT_EQ(encode(GgmlType::kBF16, back, 1), got) << "bf16 values are representable: encoding them again is exact";
  const std::vector<uint8_t> nan = encode(GgmlType::kBF16, {std::nanf("")}, 1);
  EXPECT_EQ(f16_bits(nan, 0) & 0x7fc0, 0x7fc0);
}

// Layout: Q8_0 is fp16 d then 32 int8; Q4_0's nibble j holds weight j (low) and j + 16 (high), and the weight of
// largest magnitude (its sign kept) gets code 0 with d = -max / 8.
TEST(GgmlQuants, Q8_0AndQ4_0BlockLayout) {
  std::vector<float> x(32);
  for (int j = 0; j < 32; ++j) x[j] = static_cast<float>(j - 12);  // largest magnitude 19 (positive)
  const std::vector<uint8_t> q8 = encode(GgmlType::kQ8_0, x, 1);
  EXPECT_EQ(f16_bits(q8, 0), c10::Half(19.0f / 127).x);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(static_cast<int8_t>(q8[2 + j]), static_cast<int>(std::round((j - 12) * (127.0 / 19)))) << j;
  const std::vector<uint8_t> q4 = encode(GgmlType::kQ4_0, x, 1);
  EXPECT_EQ(f16_bits(q4, 0), c10::Half(-19.0f / 8).x);
  EXPECT_EQ(q4[2 + 15] >> 4, 0) << "weight 31 (= 19, the signed max) has code 0";
  EXPECT_EQ(q4[2 + 12] & 0xf, 8) << "weight 12 (= 0) has code 8";
  EXPECT_EQ(q4[2 + 0] & 0xf, 13) << "weight 0 (= -12): -12 / d + 8.5 = 13.55 -> 13";
}

// Q5_0's fifth bits: bit j of the 32-bit qh (after d) is bit 4 of weight j's code.
TEST(GgmlQuants, Q5_0HighBits) {
  std::vector<float> x(32, 0.0f);
  x[0] = -16.0f;  // d = 1: code = x + 16 (x integral)
  x[5] = 1.0f;    // code 17: high bit set
  x[20] = 3.0f;   // code 19
  x[21] = -3.0f;  // code 13: high bit clear
  const std::vector<uint8_t> q = encode(GgmlType::kQ5_0, x, 1);
  uint32_t qh;
  std::memcpy(&qh, q.data() + 2, 4);
  for (int j = 0; j < 32; ++j) {
    const int code = static_cast<int>(x[j]) + 16;
    EXPECT_EQ((qh >> j) & 1u, static_cast<uint32_t>(code >> 4)) << j;
    EXPECT_EQ(j < 16 ? q[6 + j] & 0xf : q[6 + j - 16] >> 4, code & 0xf) << j;
  }
}

// A hand-built Q4_K super-block decodes by the layout the GGUF specification gives: 6-bit scales/mins (sub-blocks
// 0-3 in bytes 0-7, 4-7 split over nibbles of bytes 8-11 and the top bits of bytes 0-7), qs per 64 weights.
TEST(GgmlQuants, Q4_KHandBuiltBlock) {
  std::vector<uint8_t> block(144, 0);
  put_f16(block, 0, 0.5f);   // d
  put_f16(block, 2, 0.25f);  // dmin
  const int scales[8] = {1, 2, 3, 63, 17, 33, 48, 5}, mins[8] = {0, 4, 63, 7, 40, 1, 16, 62};
  for (int j = 0; j < 4; ++j) {
    block[4 + j] = static_cast<uint8_t>(scales[j] | ((scales[j + 4] >> 4) << 6));
    block[8 + j] = static_cast<uint8_t>(mins[j] | ((mins[j + 4] >> 4) << 6));
    block[12 + j] = static_cast<uint8_t>((scales[j + 4] & 15) | ((mins[j + 4] & 15) << 4));
  }
  for (int e = 0; e < 256; ++e) {  // code of weight e: (e * 7) % 16
    const int code = (e * 7) % 16, byte = 16 + (e / 64) * 32 + e % 32;
    block[byte] |= static_cast<uint8_t>((e % 64) < 32 ? code : code << 4);
  }
  const std::vector<float> y = decode(GgmlType::kQ4_K, block, 1, 256);
  for (int e = 0; e < 256; ++e) EXPECT_EQ(y[e], 0.5f * scales[e / 32] * ((e * 7) % 16) - 0.25f * mins[e / 32]) << e;
}

// Q6_K: ql (128), qh (64), 16 int8 scales, fp16 d; weight e of each 128 has its low nibble in ql and 2 high bits
// in qh at bit 2 * (e / 32).
TEST(GgmlQuants, Q6_KHandBuiltBlock) {
  std::vector<uint8_t> block(210, 0);
  put_f16(block, 208, 0.125f);
  for (int j = 0; j < 16; ++j) block[192 + j] = static_cast<uint8_t>(static_cast<int8_t>(j * 17 - 128));
  for (int e = 0; e < 256; ++e) {
    const int code = (e * 5 + 3) % 64, half = e / 128, quarter = (e % 128) / 32, l = e % 32;
    block[half * 64 + (quarter % 2) * 32 + l] |= static_cast<uint8_t>(quarter < 2 ? code & 15 : (code & 15) << 4);
    block[128 + half * 32 + l] |= static_cast<uint8_t>((code >> 4) << (2 * quarter));
  }
  const std::vector<float> y = decode(GgmlType::kQ6_K, block, 1, 256);
  for (int e = 0; e < 256; ++e) EXPECT_EQ(y[e], 0.125f * static_cast<float>(e / 16 * 17 - 128) * ((e * 5 + 3) % 64 - 32)) << e;
}

// |x - decoded| per block within what the format allows. Q8_0: d / 2 with d = absmax / 127, plus the fp16
// rounding of d over 127 steps (2^-11 relative each). Q4_0/Q5_0: |d| (the far end, where x / d reaches 2^(b-1),
// clamps one step short) plus fp16 rounding of d over 2^(b-1) steps. Q4_1/Q5_1: d / 2 plus fp16 rounding of d over
// 2^b - 1 steps and of the min. K-quants: see tests/reference (grid bound); here one step of the coarsest
// sub-block plus scale rounding is bounded loosely by the format's super-block range / qmax.
double block_bound(GgmlType type, const float* x) {
  float amax = 0, min = x[0], max = x[0];
  for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j])), min = std::min(min, x[j]), max = std::max(max, x[j]);
  const double e = std::ldexp(1.0, -11);
  switch (type) {
    case GgmlType::kQ8_0: return amax / 127.0 * (0.5 + 127 * e);
    case GgmlType::kQ4_0: return amax / 8.0 * (1 + 8 * e);
    case GgmlType::kQ5_0: return amax / 16.0 * (1 + 16 * e);
    case GgmlType::kQ4_1: return (max - min) / 15.0 * (0.5 + 15 * e) + std::fabs(min) * e;
    case GgmlType::kQ5_1: return (max - min) / 31.0 * (0.5 + 31 * e) + std::fabs(min) * e;
    default: return 0;
  }
}

TEST(GgmlQuants, BlockTypesErrorWithinFormatBound) {
  std::vector<float> x = gaussian(64 * 256, 0.02f, 5);
  for (int i = 0; i < 64 * 256; i += 97) x[i] *= 30;  // outliers
  for (GgmlType type : {GgmlType::kQ8_0, GgmlType::kQ4_0, GgmlType::kQ4_1, GgmlType::kQ5_0, GgmlType::kQ5_1}) {
    const std::vector<float> y = decode(type, encode(type, x, 64), 64, 256);
    double worst = 0;  // |err| / bound
    for (size_t b = 0; b < x.size() / 32; ++b) {
      const double bound = block_bound(type, &x[32 * b]) * (1 + 1e-6) + 1e-30;  // 1e-6: float32 rounding of x / d
      for (int j = 0; j < 32; ++j) worst = std::max(worst, std::fabs(x[32 * b + j] - y[32 * b + j]) / bound);
    }
    EXPECT_LE(worst, 1.0) << ggml_traits(type).name;
  }
}

// K-quants: no sub-block needs a coarser step than a grid spanning its super-block: (max - min(min, 0)) / qmax for
// Q4_K/Q5_K (codes 0..qmax above an offset), max|x| / 32 for Q6_K (codes -32..31). The error is half a step, plus
// at most one step the scale search may clip, plus the rounding of the 6-bit / int8 sub-block scales against the
// super-block's d (half a step at each end): |err| <= 2 super-block steps (the measured worst is printed).
TEST(GgmlQuants, KQuantsErrorWithinSuperBlockStep) {
  std::vector<float> x = gaussian(32 * 256, 0.02f, 6);
  for (int i = 0; i < 32 * 256; i += 101) x[i] *= 30;
  for (auto [type, qmax] : {std::pair{GgmlType::kQ4_K, 15}, std::pair{GgmlType::kQ5_K, 31}, std::pair{GgmlType::kQ6_K, 63}}) {
    const std::vector<float> y = decode(type, encode(type, x, 32), 32, 256);
    double worst = 0;
    for (size_t b = 0; b < x.size() / 256; ++b) {
      const auto [lo, hi] = std::minmax_element(x.begin() + 256 * b, x.begin() + 256 * (b + 1));
      const double step = type == GgmlType::kQ6_K ? std::max(-*lo, *hi) / 32.0 : (*hi - std::min(*lo, 0.0f)) / qmax;
      for (int j = 0; j < 256; ++j) worst = std::max(worst, std::fabs(x[256 * b + j] - y[256 * b + j]) / step);
    }
    EXPECT_LE(worst, 2.0) << ggml_traits(type).name;
    std::cout << ggml_traits(type).name << ": worst |err| / super-block step " << worst << "\n";
  }
}

TEST(GgmlQuants, ZeroRowsDecodeToZero) {
  const std::vector<float> zeros(2 * 512, 0.0f);
  for (GgmlType type : {GgmlType::kQ8_0, GgmlType::kQ4_0, GgmlType::kQ4_1, GgmlType::kQ5_0, GgmlType::kQ5_1, GgmlType::kQ4_K,
                        GgmlType::kQ5_K, GgmlType::kQ6_K}) {
    const std::vector<float> y = decode(type, encode(type, zeros, 2), 2, 512);
    for (float v : y) ASSERT_EQ(v, 0.0f) << ggml_traits(type).name;
  }
  const std::vector<uint8_t> q6 = encode(GgmlType::kQ6_K, zeros, 2);
  for (uint8_t b : q6) ASSERT_EQ(b, 0) << "an all-zero Q6_K super-block is all zero bytes";
}

// Rows are independent: a big matrix quantized at once (split over threads) equals its rows quantized one by one.
TEST(GgmlQuants, ThreadedEqualsRowByRow) {
  const int64_t rows = 300, n = 512;
  const std::vector<float> x = gaussian(rows * n, 1.0f, 7);
  for (GgmlType type : {GgmlType::kQ4_K, GgmlType::kQ6_K, GgmlType::kQ4_0, GgmlType::kF16}) {
    const std::vector<uint8_t> all = encode(type, x, rows);
    const uint64_t row_bytes = ggml_row_bytes(type, n);
    for (int64_t r = 0; r < rows; r += 37) {
      const std::vector<float> row(x.begin() + r * n, x.begin() + (r + 1) * n);
      const std::vector<uint8_t> one = encode(type, row, 1);
      ASSERT_TRUE(std::equal(one.begin(), one.end(), all.begin() + r * row_bytes)) << ggml_traits(type).name << " row " << r;
    }
  }
}

// Block types refuse NaN/infinity (the block's scale would be meaningless); F16 carries them as ggml does.
TEST(GgmlQuants, NonFiniteInput) {
  std::vector<float> x(2 * 256, 0.5f);
  x[300] = std::nanf("");
  std::vector<uint8_t> out(2 * 256 * 4);
  for (GgmlType type : {GgmlType::kQ8_0, GgmlType::kQ4_K, GgmlType::kQ6_K}) {
    try {
      ggml_quantize(type, x.data(), 2, 256, out.data());
      ADD_FAILURE() << ggml_traits(type).name << ": no error";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find("row 1"), std::string::npos) << e.what();
    }
  }
  x[300] = std::numeric_limits<float>::infinity();
  const std::vector<float> y = decode(GgmlType::kF16, encode(GgmlType::kF16, x, 2), 2, 256);
  EXPECT_TRUE(std::isinf(y[300]));
}

}  // namespace
}  // namespace qtune
