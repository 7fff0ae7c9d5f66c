// qtune's 4-bit format against bitsandbytes on the CPU (tests/reference/bnb_4bit.py, ctest Reference.bnb):
// quantize_4bit gives bitsandbytes.functional.quantize_4bit's codes, absmax and nested statistics byte for byte;
// the checkpoint transformers + bitsandbytes save loads in qtune and holds exactly what qtune would write; qtune's
// `quantize` output loads in transformers + bitsandbytes; the two sides' logits on each checkpoint agree.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "kernels/blockwise_quant.h"
#include "models/bnb_format.h"
#include "models/model_loader.h"
#include "models/safetensors.h"
#include "tests/reference/reference_files.h"
#include "tests/support/test_support.h"

namespace qtune {
namespace {

const char* kArea = "bnb";

// Both sides hold bit-identical float32 weights (checked below for the transformers-saved checkpoint), dequantize
// them with the same float32 product code[q] * absmax, and run the model in float32 (bitsandbytes is kept off its
// AVX512-BF16 path by bnb_4bit.py). What is left is summation order in GEMMs, softmax and RMSNorm: ~1e-7 relative
// per operation over 2 layers, the bound tests/reference/test_transformers_models.cpp uses for the unquantized model.
constexpr double kLogitTolerance = 1e-5;

// The same bits (floats compared as integers: -0.0 differs from 0.0, and NaN equals itself).
torch::Tensor as_bits(const torch::Tensor& t) {
  const torch::Tensor c = t.contiguous();
  switch (c.element_size()) {
    case 4: return c.view(torch::kInt32);
    case 2: return c.view(torch::kInt16);
    default: return c.view(torch::kUInt8);
  }
}

// Where bitsandbytes 0.50.2's CPU path (what runs here) and qtune, which follows bitsandbytes' CUDA kernels (what
// made the checkpoints users download), legitimately disagree. Each difference the test finds must be one of these:
struct KnownDifferences {
  // FP4 near zero: |x| < 0.0026 (x = w / absmax) is code 0 or 8 (+0 or -0; both decode to 0). CUDA and qtune set the
  // sign bit for x < 0; the CPU path bucketizes x against its sorted map, in which +0 (code 0) sorts before the second
  // 0 (code 8: Python's -0 is 0), so it gives code 0 for (-0.0026, 0] and 8 for (0, 0.0026].
  int64_t fp4_zero_sign = 0;
  // An all-zero block (absmax 0): the CPU path clamps absmax to 1e-38 and codes 0 as NF4 code 7 (0.0); CUDA and qtune
  // multiply by 1/0, and NaN is code 0 (-1.0). Both decode to zero (-1.0 * 0 is -0.0).
  int64_t zero_block = 0;
  // x within 1e-6 of the midpoint between two neighbouring code values: the CPU path compares with float32 midpoints
  // of its map (and divides rather than multiplies by 1/absmax in a last partial block), CUDA and qtune with the
  // decimal thresholds written in bitsandbytes' kernels.cu (e.g. FP4's 0.583333f against 0.58333337f).
  int64_t boundary = 0;
  // Double quantization: the CPU path finds the 8-bit code of (absmax - offset) / nested_absmax in a 65,536-entry
  // table over [-1, 1] (csrc/cpu_ops.cpp, build_quantize_lut), so its code may be up to 2/65535 further from the value
  // than the nearest map value, which CUDA and qtune (tests/kernels/test_blockwise_quant.cpp) take.
  int64_t nested_table = 0;
  // The double-quantization offset, mean(absmax): bitsandbytes takes torch's float32 `absmax.mean()`, whose rounding
  // depends on ATen's summation order (vector width, and the thread count above 32,768 blocks); qtune sums in double
  // and rounds once, so its offset does not depend on the machine. Both are within 2 float32 ulps of the true mean;
  // the nested statistics are then compared as qtune computes them around bitsandbytes' offset.
  int64_t offset_rounding = 0;
  int64_t unexplained = 0;
};

struct Tally {
  int64_t compared = 0, different = 0;
  KnownDifferences known;
  double worst_weight = 0;  // largest |qtune's dequantized weight - bitsandbytes'|

  // Bit-for-bit equality: no difference is expected.
  void exact(const std::string& what, const torch::Tensor& got, const torch::Tensor& want) {
    ASSERT_EQ(got.scalar_type(), want.scalar_type()) << what;
    ASSERT_EQ(got.numel(), want.numel()) << what << ": " << got.sizes() << " vs " << want.sizes();
    const int64_t diff = as_bits(got).reshape({-1}).ne(as_bits(want).reshape({-1})).sum().item<int64_t>();
    EXPECT_EQ(diff, 0) << what << ": " << diff << " of " << want.numel() << " elements differ";
    compared += want.numel();
    different += diff;
  }
};

// The 4-bit codes of n elements, first element in the high nibble.
torch::Tensor unpack(const torch::Tensor& packed, int64_t n) {
  const torch::Tensor p = packed.reshape({-1}).to(torch::kInt32);
  return torch::stack({p.bitwise_right_shift(4), p.bitwise_and(15)}, 1).reshape({-1}).slice(0, 0, n);
}

bool neighbours(const std::array<float, 16>& values, int a, int b) {
  const float lo = std::min(values[a], values[b]), hi = std::max(values[a], values[b]);
  return std::none_of(values.begin(), values.end(), [&](float v) { return v > lo && v < hi; });
}

// Classifies the codes where qtune's q and bitsandbytes' `bnb_codes` (packed) differ.
void compare_codes(const std::string& what, const torch::Tensor& weight, const Quantized4bit& q, const torch::Tensor& bnb_codes,
                   Tally& tally) {
  const int64_t n = q.numel();
  ASSERT_EQ(bnb_codes.numel(), (n + 1) / 2) << what;
  const torch::Tensor ours = unpack(q.packed, n), theirs = unpack(bnb_codes, n);
  const torch::Tensor absmax = dequantize_absmax(q.scales);  // exact here: only used on plain (undoubled) q
  const torch::Tensor w = weight.reshape({-1}).to(torch::kFloat);
  const torch::Tensor differing = ours.ne(theirs).nonzero().reshape({-1});
  const auto& values = code_values(q.type);
  tally.compared += n;
  tally.different += differing.numel();
  for (int64_t k = 0; k < differing.numel(); ++k) {
    const int64_t i = differing[k].item<int64_t>();
    const int a = ours[i].item<int>(), b = theirs[i].item<int>();
    const float block_max = absmax[i / q.blocksize].item<float>();
    const float x = w[i].item<float>() * (1.0f / block_max);
    if (q.type == QuantType::FP4 && std::min(a, b) == 0 && std::max(a, b) == 8) {
      ++tally.known.fp4_zero_sign;
    } else if (block_max == 0.0f && q.type == QuantType::NF4 && a == 0 && b == 7) {
      ++tally.known.zero_block;
    } else if (neighbours(values, a, b) && std::fabs(x - (values[a] + values[b]) / 2) <= 1e-6f) {
      ++tally.known.boundary;
    } else if (++tally.known.unexplained <= 5) {
      ADD_FAILURE() << what << " element " << i << ": x = w / absmax = " << x << ", qtune code " << a << ", bitsandbytes code " << b;
    }
  }
}

// Classifies the 8-bit absmax codes where qtune and bitsandbytes differ (same offset and nested absmax: checked).
void compare_nested_codes(const std::string& what, const Quantized4bit& q, const torch::Tensor& plain_absmax, const torch::Tensor& bnb_codes,
                          Tally& tally) {
  const torch::Tensor ours = q.scales.absmax.to(torch::kInt32), theirs = bnb_codes.reshape({-1}).to(torch::kInt32);
  ASSERT_EQ(ours.numel(), theirs.numel()) << what;
  const torch::Tensor differing = ours.ne(theirs).nonzero().reshape({-1});
  const float* map = q.scales.nested_map.data_ptr<float>();
  tally.compared += ours.numel();
  tally.different += differing.numel();
  for (int64_t k = 0; k < differing.numel(); ++k) {
    const int64_t j = differing[k].item<int64_t>();
    const int a = ours[j].item<int>(), b = theirs[j].item<int>();
    const float scale = q.scales.nested_absmax[j / q.scales.nested_blocksize].item<float>();
    const float v = (plain_absmax[j].item<float>() - q.scales.offset) * (1.0f / scale);
    const float excess = std::fabs(map[b] - v) - std::fabs(map[a] - v);
    if (excess >= 0 && excess <= 2.0f / 65535 + 1e-7f) {
      ++tally.known.nested_table;
    } else if (++tally.known.unexplained <= 5) {
      ADD_FAILURE() << what << " absmax " << j << ": (absmax - offset) / nested_absmax = " << v << ", qtune code " << a << " ("
                    << map[a] << "), bitsandbytes code " << b << " (" << map[b] << ")";
    }
  }
}

// Equal offsets, or within 2 ulps (the rounding of bitsandbytes' float32 mean against qtune's).
void compare_offset(const std::string& what, float ours, float theirs, Tally& tally) {
  ++tally.compared;
  if (std::memcmp(&ours, &theirs, sizeof(float)) == 0) return;
  ++tally.different;
  const float ulp = std::nextafter(std::fabs(theirs), INFINITY) - std::fabs(theirs);
  if (std::fabs(ours - theirs) <= 2 * ulp) {
    ++tally.known.offset_rounding;
  } else {
    ++tally.known.unexplained;
    ADD_FAILURE() << what << ": qtune " << ours << ", bitsandbytes " << theirs << " (more than 2 ulps apart)";
  }
}

// bitsandbytes' quantization of one weight, as saved by bnb_4bit.py or in a checkpoint.
struct BnbQuantized {
  torch::Tensor packed, absmax, quant_map, nested_absmax, nested_quant_map;
  float offset = 0;
};

// qtune's quantize_4bit of `weight` against bitsandbytes': everything equal to the bit except the known differences.
void compare_quantized(const std::string& what, const torch::Tensor& weight, const Quantized4bit& q, const BnbQuantized& bnb, Tally& tally) {
  tally.exact(what + " quant_map", q.code_map, bnb.quant_map);
  const Quantized4bit plain = q.scales.nested ? quantize_4bit(weight, q.type, q.blocksize, false, what) : q;
  compare_codes(what + " codes", weight, plain, bnb.packed, tally);
  if (q.scales.nested) {
    compare_offset(what + " offset", q.scales.offset, bnb.offset, tally);
    Quantized4bit around_theirs = q;  // qtune's 8-bit quantization of the absmax around bitsandbytes' offset
    around_theirs.scales.offset = bnb.offset;
    quantize_blockwise_8bit(plain.scales.absmax - bnb.offset, dynamic_map_signed(), q.scales.nested_blocksize, around_theirs.scales.absmax,
                            around_theirs.scales.nested_absmax);
    tally.exact(what + " nested_absmax", around_theirs.scales.nested_absmax, bnb.nested_absmax);
    tally.exact(what + " nested_quant_map", q.scales.nested_map, bnb.nested_quant_map);
    compare_nested_codes(what + " absmax codes", around_theirs, plain.scales.absmax, bnb.absmax, tally);
  } else {
    tally.exact(what + " absmax", q.scales.absmax, bnb.absmax);
  }
  // What the differences amount to: the weights both sides dequantize.
  Quantized4bit theirs = q;
  theirs.packed = bnb.packed.reshape({-1});
  theirs.code_map = bnb.quant_map;
  theirs.scales.absmax = bnb.absmax.reshape({-1});
  if (q.scales.nested) {
    theirs.scales.nested_absmax = bnb.nested_absmax;
    theirs.scales.nested_map = bnb.nested_quant_map;
    theirs.scales.offset = bnb.offset;
  }
  const double diff = (dequantize_4bit(q, at::kFloat) - dequantize_4bit(theirs, at::kFloat)).abs().max().item<double>();
  tally.worst_weight = std::max(tally.worst_weight, diff);
}

std::string summary(const Tally& t) {
  return std::to_string(t.compared) + " elements compared, " + std::to_string(t.compared - t.different) +
         " bit for bit equal; known differences: FP4 sign of zero " + std::to_string(t.known.fp4_zero_sign) + ", all-zero block " +
         std::to_string(t.known.zero_block) + ", on a code boundary " + std::to_string(t.known.boundary) + ", nested 8-bit table " +
         std::to_string(t.known.nested_table) + ", offset rounding " + std::to_string(t.known.offset_rounding) + "; unexplained " + std::to_string(t.known.unexplained) +
         "; largest dequantized weight difference " + std::to_string(t.worst_weight);
}

// Every quant_type x blocksize x compress_statistics of every input in quantize.safetensors that starts with `prefix`.
void check_quantize(const std::string& prefix) {
  const std::string path = test::reference_path(kArea, "quantize.safetensors");
  QTUNE_REQUIRE_REFERENCE_FILE(path, kArea);
  auto ref = SafetensorsFile::open(path);
  Tally tally;
  int cases = 0;
  for (const TensorInfo& info : ref->tensors()) {
    if (info.name.rfind("input." + prefix, 0) != 0) continue;
    const std::string input = info.name.substr(6);
    const torch::Tensor weight = ref->view(info);
    for (QuantType type : {QuantType::NF4, QuantType::FP4}) {
      for (int64_t blocksize : {64, 128, 256, 4096}) {
        for (bool nested : {false, true}) {
          const std::string key = input + "." + quant_type_name(type) + ".b" + std::to_string(blocksize) + (nested ? ".nested" : ".plain");
          SCOPED_TRACE(key);
          ASSERT_NE(ref->find(key + ".packed"), nullptr) << "bnb_4bit.py saved no " << key;
          BnbQuantized bnb{ref->view(key + ".packed"), ref->view(key + ".absmax"), ref->view(key + ".quant_map")};
          if (nested) {
            bnb.nested_absmax = ref->view(key + ".nested_absmax");
            bnb.nested_quant_map = ref->view(key + ".nested_quant_map");
            bnb.offset = ref->view(key + ".offset").item<float>();
          }
          compare_quantized(key, weight, quantize_4bit(weight, type, blocksize, nested, key), bnb, tally);
          ++cases;
        }
      }
    }
  }
  EXPECT_GT(cases, 0) << "quantize.safetensors has no input named " << prefix << "*";
  std::cout << prefix << "*: " << cases << " quantize_4bit cases; " << summary(tally) << "\n";
}

// Random weights (fp32, bf16, fp16; whole and partial last blocks, an odd size, absmax over three decades).
TEST(Bnb4bitReference, QuantizeRandomWeights) {
  for (const char* input : {"square.", "odd.", "big."}) check_quantize(input);
}
TEST(Bnb4bitReference, QuantizeAllZeroBlock) { check_quantize("zero_block."); }
TEST(Bnb4bitReference, QuantizeValuesOnCodeBoundaries) { check_quantize("boundaries_"); }

// qtune's logits on `dir` (loaded in float32 on the CPU) against those in <dir>/logits.safetensors.
double compare_logits(const std::string& dir) {
  const std::string path = dir + "/logits.safetensors";
  auto ref = SafetensorsFile::open(path);
  CausalLM model = load_causal_lm(dir, {at::kFloat, torch::kCPU});
  torch::NoGradGuard no_grad;
  const double err = test::max_relative_error(model->forward(ref->view("input_ids")), ref->view("logits"));
  EXPECT_LE(err, kLogitTolerance) << dir << ": logits differ from transformers + bitsandbytes'";
  return err;
}

// The transformers + bitsandbytes checkpoint of `arch`: every 4-bit weight holds exactly the tensors qtune writes for
// the same original weight (transformers loaded it as float32 before quantizing, hence the cast), and qtune's logits
// on it are transformers + bitsandbytes'.
void check_transformers_checkpoint(const std::string& arch) {
  const std::string dir = test::reference_path(kArea, arch + "/bnb");
  QTUNE_REQUIRE_REFERENCE_FILE(dir + "/logits.safetensors", kArea);
  const Checkpoint original = Checkpoint::open(test::reference_path(kArea, arch));
  const Checkpoint saved = Checkpoint::open(dir);
  Tally tally;
  int weights = 0;
  for (const std::string& name : saved.names()) {
    const std::string state = name + ".quant_state.bitsandbytes__nf4";
    if (!saved.contains(state)) continue;
    const torch::Tensor weight = original.view(name).to(at::kFloat);
    const Quantized4bit q = quantize_4bit(weight, QuantType::NF4, 64, /*double_quant=*/true, name);
    BnbQuantized bnb{saved.view(name), saved.view(name + ".absmax"), saved.view(name + ".quant_map"), saved.view(name + ".nested_absmax"),
                     saved.view(name + ".nested_quant_map")};
    bnb.offset = read_bnb_weight(saved, name, q.shape).scales.offset;
    compare_quantized(name, weight, q, bnb, tally);
    Quantized4bit with_their_offset = q;  // the JSON byte for byte (its nested_offset as compared above)
    with_their_offset.scales.offset = bnb.offset;
    for (const auto& [tensor_name, tensor] : bnb_tensors(name, with_their_offset))
      if (tensor_name == state) tally.exact(state, tensor, saved.view(state));
    ++weights;
  }
  EXPECT_EQ(weights, arch == "phi3" ? 8 : 14) << "7 projections (Phi-3: 4 fused) in each of 2 layers";
  const double err = compare_logits(dir);
  std::cout << arch << ": transformers-saved 4-bit checkpoint, " << weights << " weights; " << summary(tally)
            << "; logits max relative difference " << err << "\n";
}

// `qtune quantize` of `arch`, loaded by transformers + bitsandbytes: qtune's logits on it are theirs.
void check_qtune_checkpoint(const std::string& arch) {
  const std::string dir = test::reference_path(kArea, arch + "/qtune");
  QTUNE_REQUIRE_REFERENCE_FILE(dir + "/logits.safetensors", kArea);
  const double err = compare_logits(dir);
  std::cout << arch << ": qtune-quantized checkpoint in transformers + bitsandbytes, logits max relative difference " << err << "\n";
}

TEST(Bnb4bitReference, LlamaTransformersCheckpointLoads) { check_transformers_checkpoint("llama"); }
TEST(Bnb4bitReference, MistralTransformersCheckpointLoads) { check_transformers_checkpoint("mistral"); }
TEST(Bnb4bitReference, Qwen2Bf16TransformersCheckpointLoads) { check_transformers_checkpoint("qwen2"); }
TEST(Bnb4bitReference, Qwen3TransformersCheckpointLoads) { check_transformers_checkpoint("qwen3"); }
TEST(Bnb4bitReference, Gemma2TransformersCheckpointLoads) { check_transformers_checkpoint("gemma2"); }
TEST(Bnb4bitReference, Gemma3Bf16TransformersCheckpointLoads) { check_transformers_checkpoint("gemma3"); }
TEST(Bnb4bitReference, Phi3FusedTransformersCheckpointLoads) { check_transformers_checkpoint("phi3"); }

TEST(Bnb4bitReference, LlamaFp4QtuneCheckpointLoadsInTransformers) { check_qtune_checkpoint("llama"); }
TEST(Bnb4bitReference, MistralQtuneCheckpointLoadsInTransformers) { check_qtune_checkpoint("mistral"); }
TEST(Bnb4bitReference, Qwen2Bf16QtuneCheckpointLoadsInTransformers) { check_qtune_checkpoint("qwen2"); }
TEST(Bnb4bitReference, Qwen3QtuneCheckpointLoadsInTransformers) { check_qtune_checkpoint("qwen3"); }
TEST(Bnb4bitReference, Gemma2QtuneCheckpointLoadsInTransformers) { check_qtune_checkpoint("gemma2"); }
TEST(Bnb4bitReference, Gemma3Bf16QtuneCheckpointLoadsInTransformers) { check_qtune_checkpoint("gemma3"); }
TEST(Bnb4bitReference, Phi3FusedQtuneCheckpointLoadsInTransformers) { check_qtune_checkpoint("phi3"); }

}  // namespace
}  // namespace qtune
