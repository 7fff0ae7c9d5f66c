// Blockwise 4-bit quantization against a scalar reference written here from the format description
// (bitsandbytes / QLoRA): per block absmax, codes by nearest value with the published boundaries, two
// codes per byte high nibble first, 8-bit double quantization of the absmax around its mean.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "core/error.h"
#include "kernels/blockwise_quant.h"
#include "tests/support/test_support.h"

namespace qtune {
namespace {

// ---- the reference ----

// NF4: the 16 values from the QLoRA paper; a value takes the code of the nearest one. bitsandbytes
// publishes the 15 decision boundaries (midpoints of neighbours, as decimals); a value equal to a
// boundary takes the lower code ("x > boundary").
const double kNf4[16] = {-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
                         -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
                         0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
                         0.7229568362236023, 1.0};
const float kNf4Boundaries[15] = {-0.8480964004993439f, -0.6106329262256622f, -0.4599952697753906f, -0.33967943489551544f,
                                  -0.23460740596055984f, -0.13791173323988914f, -0.045525018125772476f, 0.03979014977812767f,
                                  0.1202552504837513f, 0.2035212516784668f, 0.2920137718319893f, 0.3893125355243683f,
                                  0.5016634166240692f, 0.6427869200706482f, 0.8614784181118011f};

int reference_nf4(float x) {
  if (std::isnan(x)) return 0;  // a zero block: x = 0 * (1/0)
  int code = 0;
  while (code < 15 && x > kNf4Boundaries[code]) ++code;
  return code;
}

// FP4 (e2m1, bias 3, sign in bit 3): codes 0..7 stand for 0, 0.0625, 8, 12, 4, 6, 2, 3 (/12). bitsandbytes
// rounds the magnitude at these published decimal boundaries between consecutive magnitudes.
int reference_fp4(float x) {
  if (std::isnan(x)) return 0;
  const float magnitude = std::fabs(x);
  const struct {
    float upper_boundary;
    int code;
  } steps[8] = {{0.00260417f, 0}, {0.0859375f, 1}, {0.20833333f, 6}, {0.29166667f, 7}, {0.4166667f, 4}, {0.583333f, 5}, {0.8333333f, 2}, {INFINITY, 3}};
  int code = 3;
  for (const auto& s : steps)
    if (magnitude <= s.upper_boundary) {
      code = s.code;
      break;
    }
  return code | (x < 0 ? 8 : 0);
}

struct Reference {
  std::vector<uint8_t> packed;
  std::vector<float> absmax;
};

Reference reference_quantize(const std::vector<float>& w, QuantType type, int64_t blocksize) {
  Reference r;
  const int64_t n = static_cast<int64_t>(w.size());
  r.packed.assign((n + 1) / 2, 0);
  for (int64_t begin = 0; begin < n; begin += blocksize) {
    const int64_t end = std::min(n, begin + blocksize);
    float max = 0;
    for (int64_t i = begin; i < end; ++i) max = std::max(max, std::fabs(w[i]));
    r.absmax.push_back(max);
    for (int64_t i = begin; i < begin + ((end - begin + 1) / 2) * 2; ++i) {
      const float v = (i < end ? w[i] : 0.0f) * (1.0f / max);
      const int code = type == QuantType::NF4 ? reference_nf4(v) : reference_fp4(v);
      r.packed[i / 2] |= static_cast<uint8_t>(i % 2 == 0 ? code << 4 : code);
    }
  }
  return r;
}

// ---- data ----

std::vector<float> make_weights(const std::string& kind, int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  std::cauchy_distribution<float> cauchy(0.0f, 0.01f);
  std::vector<float> w(n);
  for (int64_t i = 0; i < n; ++i) {
    if (kind == "normal") w[i] = normal(rng);
    else if (kind == "heavy") w[i] = std::max(-1e4f, std::min(1e4f, cauchy(rng)));
    else if (kind == "tiny") w[i] = normal(rng) * 1e-38f;  // subnormal range
    else if (kind == "extreme") w[i] = (i % 7 == 0 ? 3.0e38f : -1.0e-3f) * (i % 2 ? 1.0f : -1.0f);
    else if (kind == "zero_blocks") w[i] = (i / 64) % 3 == 1 ? 0.0f : normal(rng);
    else w[i] = 0.0f;
  }
  return w;
}

at::Tensor to_tensor(const std::vector<float>& w) { return at::from_blob(const_cast<float*>(w.data()), {static_cast<int64_t>(w.size())}, at::kFloat).clone(); }

TEST(BlockwiseQuant, CodesAndAbsmaxAreBitIdenticalToTheReference) {
  for (const std::string kind : {"normal", "heavy", "tiny", "extreme", "zero_blocks", "all_zero"}) {
    for (QuantType type : {QuantType::NF4, QuantType::FP4}) {
      for (int64_t blocksize : {32, 64, 128, 256, 1024, 4096}) {
        for (int64_t n : {int64_t(8192), int64_t(4099)}) {  // whole blocks, and a partial last block with an odd count
          SCOPED_TRACE(kind + " " + quant_type_name(type) + " block " + std::to_string(blocksize) + " n " + std::to_string(n));
          const auto w = make_weights(kind, n, static_cast<uint32_t>(blocksize + n));
          Quantized4bit q = quantize_4bit(to_tensor(w), type, blocksize, false, "test");
          Reference r = reference_quantize(w, type, blocksize);
          ASSERT_EQ(q.packed.numel(), static_cast<int64_t>(r.packed.size()));
          EXPECT_EQ(std::memcmp(q.packed.data_ptr<uint8_t>(), r.packed.data(), r.packed.size()), 0);
          ASSERT_EQ(q.scales.absmax.numel(), static_cast<int64_t>(r.absmax.size()));
          EXPECT_EQ(std::memcmp(q.scales.absmax.data_ptr<float>(), r.absmax.data(), r.absmax.size() * 4), 0);
        }
      }
    }
  }
}

TEST(BlockwiseQuant, BoundariesSitAtTheMidpoints) {
  for (int i = 0; i < 15; ++i) {
    // The published boundary is the midpoint of its two values (to float precision)...
    const double mid = (kNf4[i] + kNf4[i + 1]) / 2;
    EXPECT_NEAR(kNf4Boundaries[i], mid, 2e-7) << i;
    // ...and the implementation switches code exactly there.
    EXPECT_EQ(quantize_nf4(kNf4Boundaries[i]), i) << i;
    EXPECT_EQ(quantize_nf4(std::nextafter(kNf4Boundaries[i], 2.0f)), i + 1) << i;
  }
  // Each code value maps to itself, for both formats.
  for (int c = 0; c < 16; ++c) {
    EXPECT_EQ(quantize_nf4(nf4_values()[c]), c);
    EXPECT_EQ(static_cast<double>(nf4_values()[c]), static_cast<double>(static_cast<float>(kNf4[c])));
    if (c != 8) EXPECT_EQ(quantize_fp4(fp4_values()[c]), c);  // -0 is 0's code: the sign is of x < 0
  }
}

TEST(BlockwiseQuant, DequantizeIsValueTimesAbsmaxRoundedOnce) {
  const auto w = make_weights("normal", 4096 + 33, 7);
  for (QuantType type : {QuantType::NF4, QuantType::FP4}) {
    Quantized4bit q = quantize_4bit(to_tensor(w), type, 64, false, "test");
    at::Tensor deq = dequantize_4bit(q, at::kFloat);
    const uint8_t* p = q.packed.data_ptr<uint8_t>();
    const float* a = q.scales.absmax.data_ptr<float>();
    for (int64_t i = 0; i < static_cast<int64_t>(w.size()); ++i) {
      const int code = i % 2 == 0 ? p[i / 2] >> 4 : p[i / 2] & 15;
      ASSERT_EQ(deq[i].item<float>(), code_values(type)[code] * a[i / 64]) << i;
    }
    // bf16 output is the float32 product rounded to nearest even, once.
    at::Tensor deq_bf16 = dequantize_4bit(q, at::kBFloat16);
    EXPECT_TRUE(deq_bf16.equal(deq.to(at::kBFloat16)));
  }
}

TEST(BlockwiseQuant, DoubleQuantizedAbsmaxFollowsTheFormat) {
  const auto w = make_weights("heavy", 64 * 1000 + 5, 11);
  Quantized4bit q = quantize_4bit(to_tensor(w), QuantType::NF4, 64, true, "test");
  Reference r = reference_quantize(w, QuantType::NF4, 64);
  ASSERT_TRUE(q.scales.nested);
  // Codes are computed from the exact absmax, as bitsandbytes does.
  EXPECT_EQ(std::memcmp(q.packed.data_ptr<uint8_t>(), r.packed.data(), r.packed.size()), 0);
  // offset = mean(absmax); each block of 256 centred absmax values: its own absmax, codes by nearest map value.
  double sum = 0;
  for (float a : r.absmax) sum += a;
  const float offset = static_cast<float>(sum / r.absmax.size());
  EXPECT_EQ(q.scales.offset, offset);
  const at::Tensor& map = q.scales.nested_map;
  const float* m = map.data_ptr<float>();
  ASSERT_EQ(q.scales.nested_absmax.numel(), (static_cast<int64_t>(r.absmax.size()) + 255) / 256);
  for (std::size_t b = 0; b < r.absmax.size(); ++b) {
    const std::size_t block = b / 256;
    float max = 0;
    for (std::size_t k = block * 256; k < std::min(r.absmax.size(), block * 256 + 256); ++k) max = std::max(max, std::fabs(r.absmax[k] - offset));
    ASSERT_EQ(q.scales.nested_absmax[block].item<float>(), max);
    const float x = (r.absmax[b] - offset) * (1.0f / max);
    int best = 0;
    for (int c = 1; c < 256; ++c)
      if (std::fabs(m[c] - x) < std::fabs(m[best] - x) || (std::fabs(m[c] - x) == std::fabs(m[best] - x) && m[c] > m[best])) best = c;
    ASSERT_EQ(q.scales.absmax[b].item<uint8_t>(), best) << b;
  }
  // The restored absmax is close to the true one (8-bit relative to the block's spread).
  at::Tensor restored = dequantize_absmax(q.scales);
  at::Tensor exact = to_tensor(r.absmax);
  EXPECT_LT(((restored - exact).abs() / exact.abs().max()).max().item<float>(), 0.01f);
}

TEST(BlockwiseQuant, DynamicMapHasTheDocumentedShape) {
  const at::Tensor& map = dynamic_map_signed();
  ASSERT_EQ(map.numel(), 256);
  const float* m = map.data_ptr<float>();
  for (int i = 1; i < 256; ++i) EXPECT_LE(m[i - 1], m[i]);
  EXPECT_EQ(m[255], 1.0f);
  EXPECT_FLOAT_EQ(m[0], -0.99296875f);  // -(mean of the last two of 65 points in [0.1, 1])
  // Exponent 10^(i-6) holds 2^i values per sign: 1 + 2 + ... + 64 = 127 positive values below 1.
  int positive = 0, zero = 0;
  for (int i = 0; i < 256; ++i) positive += m[i] > 0 && m[i] < 1, zero += m[i] == 0;
  EXPECT_EQ(positive, 127);
  EXPECT_EQ(zero, 1);
  EXPECT_FLOAT_EQ(m[128], 0.55e-6f);  // the smallest positive value: the mean of {0.1, 1} times 10^-6
}

TEST(BlockwiseQuant, DtypesAndShapesRoundTrip) {
  const auto w = make_weights("normal", 96 * 130, 3);
  at::Tensor weight = to_tensor(w).view({96, 130});
  for (at::ScalarType dtype : {at::kFloat, at::kBFloat16, at::kHalf}) {
    at::Tensor typed = weight.to(dtype);
    Quantized4bit q = quantize_4bit(typed, QuantType::NF4, 64, true, "test");
    at::Tensor deq = dequantize_4bit(q);
    EXPECT_EQ(deq.scalar_type(), dtype);
    EXPECT_EQ(deq.sizes(), typed.sizes());
    // The same codes as quantizing the float32 view of the same values.
    const at::Tensor as_float = typed.to(at::kFloat).contiguous();
    Reference r = reference_quantize(std::vector<float>(as_float.data_ptr<float>(), as_float.data_ptr<float>() + as_float.numel()), QuantType::NF4, 64);
    EXPECT_EQ(std::memcmp(q.packed.data_ptr<uint8_t>(), r.packed.data(), r.packed.size()), 0);
    const double rel = test::max_relative_error(deq.to(at::kFloat), typed.to(at::kFloat));
    EXPECT_LT(rel, 0.2) << "NF4 error is bounded by half the widest code gap";
  }
}

TEST(BlockwiseQuant, BadInputsAreRejected) {
  at::Tensor w = at::randn({64, 64});
  for (int64_t bad : {0, 16, 48, 100, 8192}) EXPECT_THROW(quantize_4bit(w, QuantType::NF4, bad, false, "layer.weight"), InputError) << bad;
  w[3][5] = std::nanf("");
  try {
    quantize_4bit(w, QuantType::NF4, 64, false, "model.layers.0.mlp.up_proj.weight");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("model.layers.0.mlp.up_proj.weight: holds NaN"), std::string::npos) << e.what();
  }
  EXPECT_THROW(parse_quant_type("int4", "config.json"), InputError);
}

}  // namespace
}  // namespace qtune
