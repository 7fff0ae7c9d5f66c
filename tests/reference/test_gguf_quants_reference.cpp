// qtune's ggml codecs against the gguf Python package (tests/reference/gguf_quants.py, ctest Reference.gguf_quants):
// F16/BF16/Q8_0/Q4_0/Q4_1/Q5_0/Q5_1 codes are gguf.quants.quantize's byte for byte; qtune decodes gguf's codes, and
// random valid blocks of every type (K-quants included), to exactly gguf.quants.dequantize's floats; with
// --ggml-lib, the K-quant codes are llama.cpp's ggml_quantize_chunk's byte for byte. Also reports each type's RMS
// error on gaussian weights and checks the K-quant errors against the bound the format gives.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "gguf/ggml_quants.h"
#include "models/safetensors.h"
#include "tests/reference/reference_files.h"
#include "tests/support/test_support.h"

namespace qtune {
namespace {

const char* kArea = "gguf_quants";
const char* kInputs[] = {"gaussian", "outliers", "zeros", "negative_max", "tiny", "offset", "boundaries", "row96"};
const GgmlType kGgufQuantized[] = {GgmlType::kF16, GgmlType::kBF16, GgmlType::kQ8_0, GgmlType::kQ4_0,
                                   GgmlType::kQ4_1, GgmlType::kQ5_0, GgmlType::kQ5_1};
const GgmlType kBlockTypes[] = {GgmlType::kQ8_0, GgmlType::kQ4_0, GgmlType::kQ4_1, GgmlType::kQ5_0,
                                GgmlType::kQ5_1, GgmlType::kQ4_K, GgmlType::kQ5_K, GgmlType::kQ6_K};

std::shared_ptr<SafetensorsFile> open_reference(const std::string& file) { return SafetensorsFile::open(test::reference_path(kArea, file)); }

// qtune's encoding of a float32 matrix.
torch::Tensor quantize(GgmlType type, const torch::Tensor& x) {
  const torch::Tensor input = x.contiguous();
  const int64_t rows = input.size(0), row_length = input.size(1);
  torch::Tensor out = torch::empty({rows, static_cast<int64_t>(ggml_row_bytes(type, row_length))}, torch::kUInt8);
  ggml_quantize(type, input.data_ptr<float>(), rows, row_length, out.data_ptr<uint8_t>());
  return out;
}

torch::Tensor dequantize(GgmlType type, const torch::Tensor& codes, int64_t rows, int64_t row_length) {
  torch::Tensor out = torch::empty({rows, row_length}, torch::kFloat);
  ggml_dequantize(type, codes.contiguous().data_ptr<uint8_t>(), rows, row_length, out.data_ptr<float>());
  return out;
}

// Bytes where two encodings differ, reporting the first.
int64_t differing_bytes(const std::string& what, const torch::Tensor& ours, const torch::Tensor& theirs) {
  EXPECT_EQ(ours.sizes(), theirs.sizes()) << what;
  if (ours.sizes() != theirs.sizes()) return -1;
  const torch::Tensor differ = ours.reshape({-1}).ne(theirs.reshape({-1}));
  const int64_t count = differ.sum().item<int64_t>();
  if (count > 0) {
    const int64_t first = differ.nonzero()[0][0].item<int64_t>();
    ADD_FAILURE() << what << ": " << count << " of " << ours.numel() << " bytes differ; first at byte " << first << " (qtune "
                  << ours.reshape({-1})[first].item<int>() << ", reference " << theirs.reshape({-1})[first].item<int>() << ")";
  }
  return count;
}

// Floats compared as bits: the same products must give the same float, signed zeros included.
void expect_same_floats(const std::string& what, const torch::Tensor& ours, const torch::Tensor& theirs) {
  ASSERT_EQ(ours.sizes(), theirs.sizes()) << what;
  const torch::Tensor differ = ours.contiguous().view(torch::kInt32).ne(theirs.contiguous().view(torch::kInt32));
  const int64_t count = differ.sum().item<int64_t>();
  if (count > 0) {
    const int64_t first = differ.reshape({-1}).nonzero()[0][0].item<int64_t>();
    ADD_FAILURE() << what << ": " << count << " of " << ours.numel() << " values differ; first at " << first << " (qtune "
                  << ours.reshape({-1})[first].item<float>() << ", gguf " << theirs.reshape({-1})[first].item<float>() << ")";
  }
}

TEST(GgufQuantsReference, CodesEqualGgufQuantize) {
  QTUNE_REQUIRE_REFERENCE_FILE(test::reference_path(kArea, "quants.safetensors"), kArea);
  auto ref = open_reference("quants.safetensors");
  int64_t compared = 0;
  for (const char* input : kInputs) {
    const torch::Tensor x = ref->view(std::string("input.") + input);
    for (GgmlType type : kGgufQuantized) {
      const std::string key = std::string(input) + "." + ggml_traits(type).name;
      EXPECT_EQ(differing_bytes(key, quantize(type, x), ref->view("codes." + key)), 0);
      compared += ref->view("codes." + key).numel();
    }
  }
  std::cout << "gguf.quants.quantize: " << compared << " bytes compared over " << std::size(kInputs) << " inputs x "
            << std::size(kGgufQuantized) << " types\n";
}

TEST(GgufQuantsReference, DequantizeEqualsGgufOnItsCodes) {
  QTUNE_REQUIRE_REFERENCE_FILE(test::reference_path(kArea, "quants.safetensors"), kArea);
  auto ref = open_reference("quants.safetensors");
  for (const char* input : kInputs) {
    const torch::Tensor x = ref->view(std::string("input.") + input);
    for (GgmlType type : kGgufQuantized) {
      const std::string key = std::string(input) + "." + ggml_traits(type).name;
      expect_same_floats(key, dequantize(type, ref->view("codes." + key), x.size(0), x.size(1)), ref->view("dequant." + key));
    }
  }
}

// Random bytes with finite fp16 scales are valid blocks of every type: each scale, min, code and high bit lands
// where gguf's decoder reads it only if qtune's layout is the same.
TEST(GgufQuantsReference, DequantizeEqualsGgufOnRandomBlocks) {
  QTUNE_REQUIRE_REFERENCE_FILE(test::reference_path(kArea, "quants.safetensors"), kArea);
  auto ref = open_reference("quants.safetensors");
  for (GgmlType type : kBlockTypes) {
    const std::string key = std::string("blocks.") + ggml_traits(type).name;
    const torch::Tensor blocks = ref->view(key), want = ref->view(key + ".dequant");
    const int64_t count = blocks.numel() / ggml_traits(type).type_size;
    expect_same_floats(key, dequantize(type, blocks, 1, count * ggml_traits(type).block_size), want.reshape({1, -1}));
  }
}

// The K-quant bound, from the format: sub-block j of a super-block decodes to the grid step_j * q - offset_j,
// q in 0..qmax (Q4_K: step d * sc_j, offset dmin * m_j, qmax 15; Q5_K: qmax 31; Q6_K: step d * sc_j, offset
// 32 * step_j, qmax 63). The quantizer's last pass gives each weight the nearest grid point, so inside the grid's
// range [-offset, qmax * step - offset] the error is at most step / 2 (checked exactly, up to float32 rounding).
// Outside it the weight gets the end of the range. How far outside a weight can be: the sub-block's scale search
// may clip its extreme weights by up to about one step to get a finer step (kSearchClipSteps; the worst measured
// here is 0.64 steps, printed), and rounding the sub-block's scale and min to integers against the super-block's fp16 d and dmin
// moves each end by at most qmax * (|d| / 2 + 63.5 e(d)) + |dmin| / 2 + 63.5 e(dmin), e(v) being binary16's
// rounding error at v (2^-11 |v|, or 2^-25 among subnormals, where d of weights ~1e-6 underflows to 0); Q6_K: the
// int8 scales (up to 128) over 32 steps, 32 * (|d| / 2 + 128.5 e(d)).
constexpr double kSearchClipSteps = 1.0;

struct Grid {
  float step = 0, offset = 0;
  int qmax = 0;
  double rounding = 0;  // how far rounding the sub-block scale and min can move the range's ends
};

double f16_rounding(float v) { return std::max(std::fabs(v) * std::ldexp(1.0, -11), std::ldexp(1.0, -25)); }

float half_at(const uint8_t* p) {
  uint16_t bits;
  std::memcpy(&bits, p, 2);
  return static_cast<float>(c10::Half(bits, c10::Half::from_bits()));
}

// Sub-block `sub`'s grid, read with the 6-bit packing gguf-py's Q4_K.get_scale_min documents.
Grid k_grid(GgmlType type, const uint8_t* block, int sub) {
  if (type == GgmlType::kQ6_K) {
    const float d = half_at(block + 208), step = d * static_cast<int8_t>(block[192 + sub]);
    return {step, 32 * step, 63, 32 * (std::fabs(d) / 2 + 128.5 * f16_rounding(d))};
  }
  const uint8_t* s = block + 4;
  const int sc = sub < 4 ? s[sub] & 63 : (s[sub + 4] & 15) | ((s[sub - 4] >> 6) << 4);
  const int m = sub < 4 ? s[sub + 4] & 63 : (s[sub + 4] >> 4) | ((s[sub] >> 6) << 4);
  const int qmax = type == GgmlType::kQ4_K ? 15 : 31;
  const float d = half_at(block), dmin = half_at(block + 2);
  return {d * sc, dmin * m, qmax, qmax * (std::fabs(d) / 2 + 63.5 * f16_rounding(d)) + std::fabs(dmin) / 2 + 63.5 * f16_rounding(dmin)};
}

struct BoundReport {
  double worst_in_range = 0;  // |err| / step for weights inside their grid's range (bound 0.5)
  double worst_clipped = 0;   // (|err| - rounding) / step for clipped weights (bound kSearchClipSteps)
  int64_t clipped = 0, weights = 0;
};

// Checks every weight of x (rows x row_length) against its grid; codes are qtune's, decoded qtune's.
BoundReport check_k_bound(const std::string& what, GgmlType type, const torch::Tensor& x, const torch::Tensor& codes, const torch::Tensor& decoded) {
  BoundReport report;
  const auto& traits = ggml_traits(type);
  const float* xs = x.data_ptr<float>();
  const float* ys = decoded.data_ptr<float>();
  const uint8_t* bytes = codes.data_ptr<uint8_t>();
  const int64_t blocks = x.numel() / traits.block_size;
  int failures = 0;
  for (int64_t b = 0; b < blocks; ++b) {
    const uint8_t* block = bytes + b * traits.type_size;
    const int sub_size = type == GgmlType::kQ6_K ? 16 : 32;
    for (int i = 0; i < traits.block_size; ++i) {
      const Grid g = k_grid(type, block, i / sub_size);
      const double v = xs[b * traits.block_size + i], err = std::fabs(v - ys[b * traits.block_size + i]);
      const double lo = std::min(-g.offset, g.qmax * g.step - g.offset), hi = std::max(-g.offset, g.qmax * g.step - g.offset);
      const double clip = std::max({0.0, lo - v, v - hi});
      const double step = std::fabs(g.step);
      // float32 rounding of step * q - offset: a few ulps of the grid's largest magnitude.
      const double slack = 4e-7 * std::max(std::fabs(lo), std::fabs(hi)) + 1e-30;
      ++report.weights;
      if (clip > 0) ++report.clipped;
      if (step > 0 && clip == 0) report.worst_in_range = std::max(report.worst_in_range, err / step);
      if (step > 0 && clip > 0) report.worst_clipped = std::max(report.worst_clipped, (err - g.rounding) / step);
      const bool nearest = err <= std::max(step / 2, clip) + slack;
      const bool bounded = clip <= kSearchClipSteps * step + g.rounding + slack;
      if (!(nearest && bounded) && ++failures <= 5)
        ADD_FAILURE() << what << " weight " << b * traits.block_size + i << ": x " << v << ", decoded " << ys[b * traits.block_size + i]
                      << ", step " << step << ", range [" << lo << ", " << hi << "], scale rounding " << g.rounding;
    }
  }
  return report;
}

double relative_rms_error(const torch::Tensor& x, const torch::Tensor& decoded) {
  return (decoded - x).pow(2).mean().sqrt().item<double>() / x.pow(2).mean().sqrt().item<double>();
}

// Every type on every input: qtune's codes decoded by qtune; K-quant weights within their grid bound; the RMS error
// on gaussian weights printed for the notes.
TEST(GgufQuantsReference, QuantizationErrorWithinFormatBound) {
  QTUNE_REQUIRE_REFERENCE_FILE(test::reference_path(kArea, "quants.safetensors"), kArea);
  auto ref = open_reference("quants.safetensors");
  for (GgmlType type : kBlockTypes) {
    std::string line = std::string(ggml_traits(type).name) + ":";
    for (const char* input : kInputs) {
      const torch::Tensor x = ref->view(std::string("input.") + input).contiguous();
      if (x.size(1) % ggml_traits(type).block_size != 0) continue;
      const torch::Tensor codes = quantize(type, x), decoded = dequantize(type, codes, x.size(0), x.size(1));
      if (std::string(input) == "gaussian") line += " gaussian RMS error / RMS(x) = " + std::to_string(relative_rms_error(x, decoded));
      if (type != GgmlType::kQ4_K && type != GgmlType::kQ5_K && type != GgmlType::kQ6_K) continue;
      const BoundReport r = check_k_bound(std::string(input) + "." + ggml_traits(type).name, type, x, codes, decoded);
      line += "; " + std::string(input) + ": worst |err|/step " + std::to_string(r.worst_in_range) + " in range, " +
              std::to_string(r.worst_clipped) + " beyond scale rounding when clipped (" + std::to_string(r.clipped) + " of " + std::to_string(r.weights) + ")";
    }
    std::cout << line << "\n";
  }
}

// With --ggml-lib: llama.cpp's own quantizer (ggml_quantize_chunk, no importance matrix) gives the same bytes.
TEST(GgufQuantsReference, CodesEqualLlamaCppQuantizer) {
  const std::string path = test::reference_path(kArea, "llama_cpp.safetensors");
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "no " << path << " (gguf_quants.py --ggml-lib PATH/libggml-base.so writes it)";
  auto ref = open_reference("quants.safetensors");
  auto llama = SafetensorsFile::open(path);
  int64_t compared = 0;
  for (const TensorInfo& info : llama->tensors()) {
    const std::string key = info.name.substr(6);  // codes.<input>.<TYPE>
    const std::string input = key.substr(0, key.rfind('.')), type_name = key.substr(key.rfind('.') + 1);
    std::optional<GgmlType> type;
    for (GgmlType t : kBlockTypes)
      if (type_name == ggml_traits(t).name) type = t;
    ASSERT_TRUE(type.has_value()) << info.name;
    EXPECT_EQ(differing_bytes("llama.cpp " + key, quantize(*type, ref->view("input." + input)), llama->view(info)), 0);
    compared += llama->view(info).numel();
  }
  EXPECT_GT(compared, 0);
  std::cout << "llama.cpp ggml_quantize_chunk: " << compared << " bytes compared in " << llama->tensors().size() << " tensors\n";
}

}  // namespace
}  // namespace qtune
