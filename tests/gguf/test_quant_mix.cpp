// The per-tensor types of each export type, against lists written out here from llama.cpp's rules
// (convert_hf_to_gguf.py, src/llama-quant.cpp): use_more_bits picks layers 0-3, 28-31 and 6, 9, ..., 27 of 32.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "core/error.h"
#include "gguf/quant_mix.h"

namespace qtune {
namespace {

const std::set<int> kMoreBits32 = {0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31};

// A Llama-3-8B-shaped tensor set (ggml ne order: ne[0] is the row length).
std::vector<int64_t> shape_of(const std::string& name) {
  if (name == "token_embd.weight" || name == "output.weight") return {4096, 128256};
  if (name.find("norm") != std::string::npos) return {4096};
  if (name.find("attn_k.") != std::string::npos || name.find("attn_v.") != std::string::npos) return {4096, 1024};
  if (name.find("ffn_down") != std::string::npos) return {14336, 4096};
  if (name.find("ffn_") != std::string::npos) return {4096, 14336};
  return {4096, 4096};
}

std::string blk(int layer, const char* tensor) { return "blk." + std::to_string(layer) + "." + tensor + ".weight"; }

TEST(QuantMix, NamesAndFileTypes) {
  const std::pair<const char*, uint32_t> expected[] = {{"f32", 0},  {"f16", 1},     {"bf16", 32},    {"q8_0", 7},
                                                      {"q4_0", 2}, {"q4_k_m", 15}, {"q5_k_m", 17}, {"q6_k", 18}};
  for (const auto& [name, file_type] : expected) {
    const ExportType type = parse_export_type(name, "--type");
    EXPECT_EQ(export_type_name(type), name);
    EXPECT_EQ(llama_file_type(type), file_type) << name;
  }
  EXPECT_EQ(parse_export_type("Q4_K_M", "--type"), ExportType::kQ4_K_M) << "llama.cpp's spelling";
  try {
    parse_export_type("q3_k_s", "--type");
    ADD_FAILURE() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("--type"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("q4_k_m"), std::string::npos) << "lists the types: " << e.what();
  }
}

// The converter types: 1-D tensors and norms F32, every matrix the type.
TEST(QuantMix, ConverterTypes) {
  const MixContext ctx{32, true};
  const std::pair<ExportType, GgmlType> types[] = {{ExportType::kF32, GgmlType::kF32}, {ExportType::kF16, GgmlType::kF16},
                                                  {ExportType::kBF16, GgmlType::kBF16}, {ExportType::kQ8_0, GgmlType::kQ8_0}};
  for (const auto& [type, ggml] : types) {
    for (const std::string name : {"token_embd.weight", "output.weight", "blk.7.attn_v.weight", "blk.0.ffn_down.weight"})
      EXPECT_EQ(tensor_type_for(type, name, shape_of(name), ctx), ggml) << name;
    EXPECT_EQ(tensor_type_for(type, "blk.0.attn_norm.weight", {4096}, ctx), GgmlType::kF32);
    EXPECT_EQ(tensor_type_for(type, "output_norm.weight", {4096}, ctx), GgmlType::kF32);
    EXPECT_EQ(tensor_type_for(type, "rope_freqs.weight", {64}, ctx), GgmlType::kF32);
    EXPECT_EQ(tensor_type_for(type, "blk.0.attn_q.bias", {4096}, ctx), GgmlType::kF32);
  }
  EXPECT_EQ(tensor_type_for(ExportType::kQ8_0, "blk.0.attn_q.weight", {48, 64}, ctx), GgmlType::kF16) << "gguf.quants refuses 48";
  EXPECT_EQ(tensor_type_for(ExportType::kQ8_0, "blk.0.attn_q.weight", {96, 64}, ctx), GgmlType::kQ8_0);
}

// Q4_K_M / Q5_K_M on 32 layers: attn_v and ffn_down get Q6_K in the use_more_bits layers, output Q6_K, the rest the
// mix's type (token_embd included when there is an output matrix).
TEST(QuantMix, KMixes32Layers) {
  const MixContext ctx{32, true};
  for (auto [type, base] : {std::pair{ExportType::kQ4_K_M, GgmlType::kQ4_K}, std::pair{ExportType::kQ5_K_M, GgmlType::kQ5_K}}) {
    SCOPED_TRACE(export_type_name(type));
    EXPECT_EQ(tensor_type_for(type, "output.weight", shape_of("output.weight"), ctx), GgmlType::kQ6_K);
    EXPECT_EQ(tensor_type_for(type, "token_embd.weight", shape_of("token_embd.weight"), ctx), base);
    EXPECT_EQ(tensor_type_for(type, "output_norm.weight", {4096}, ctx), GgmlType::kF32);
    for (int layer = 0; layer < 32; ++layer) {
      const GgmlType more = kMoreBits32.count(layer) ? GgmlType::kQ6_K : base;
      for (const char* t : {"attn_v", "ffn_down"}) EXPECT_EQ(tensor_type_for(type, blk(layer, t), shape_of(blk(layer, t)), ctx), more) << blk(layer, t);
      for (const char* t : {"attn_q", "attn_k", "attn_output", "ffn_gate", "ffn_up"})
        EXPECT_EQ(tensor_type_for(type, blk(layer, t), shape_of(blk(layer, t)), ctx), base) << blk(layer, t);
      EXPECT_EQ(tensor_type_for(type, blk(layer, "attn_norm"), {4096}, ctx), GgmlType::kF32);
    }
  }
}

TEST(QuantMix, Q6_KAndQ4_0) {
  const MixContext ctx{32, true};
  for (int layer : {0, 5, 31}) {
    for (const char* t : {"attn_v", "ffn_down", "attn_q"}) {
      EXPECT_EQ(tensor_type_for(ExportType::kQ6_K, blk(layer, t), shape_of(blk(layer, t)), ctx), GgmlType::kQ6_K);
      EXPECT_EQ(tensor_type_for(ExportType::kQ4_0, blk(layer, t), shape_of(blk(layer, t)), ctx), GgmlType::kQ4_0) << "no more bits in q4_0";
    }
  }
  EXPECT_EQ(tensor_type_for(ExportType::kQ4_0, "output.weight", shape_of("output.weight"), ctx), GgmlType::kQ6_K);
  EXPECT_EQ(tensor_type_for(ExportType::kQ4_0, "token_embd.weight", shape_of("token_embd.weight"), ctx), GgmlType::kQ4_0);
  EXPECT_EQ(tensor_type_for(ExportType::kQ6_K, "output.weight", shape_of("output.weight"), ctx), GgmlType::kQ6_K);
}

// Phi-3's fused attn_qkv (rows 3072 + 2·3072 for Phi-3-mini): llama.cpp's quantizer has its own rule for it, one
// step up in every layer under the K mixes (not use_more_bits' layers as attn_v), nothing in q4_0 / q6_k.
TEST(QuantMix, FusedQkvGetsOneStepMoreInEveryLayer) {
  const MixContext ctx{32, true};
  for (int layer : {0, 5, 16, 31}) {
    const std::string name = blk(layer, "attn_qkv");
    EXPECT_EQ(tensor_type_for(ExportType::kQ4_K_M, name, {3072, 9216}, ctx), GgmlType::kQ5_K) << name;
    EXPECT_EQ(tensor_type_for(ExportType::kQ5_K_M, name, {3072, 9216}, ctx), GgmlType::kQ6_K) << name;
    EXPECT_EQ(tensor_type_for(ExportType::kQ4_0, name, {3072, 9216}, ctx), GgmlType::kQ4_0) << name;
    EXPECT_EQ(tensor_type_for(ExportType::kQ6_K, name, {3072, 9216}, ctx), GgmlType::kQ6_K) << name;
  }
  EXPECT_EQ(tensor_type_for(ExportType::kQ4_K_M, "blk.0.attn_qkv.weight", {64, 128}, ctx), GgmlType::kQ5_1) << "Q5_K's fallback for 64-long rows";
}

// Tied embeddings: token_embd is the output matrix.
TEST(QuantMix, TiedEmbeddingsCountAsOutput) {
  const MixContext tied{28, false};
  EXPECT_EQ(tensor_type_for(ExportType::kQ4_K_M, "token_embd.weight", {3584, 152064}, tied), GgmlType::kQ6_K);
  EXPECT_EQ(tensor_type_for(ExportType::kQ4_0, "token_embd.weight", {3584, 152064}, tied), GgmlType::kQ6_K);
  EXPECT_EQ(tensor_type_for(ExportType::kQ8_0, "token_embd.weight", {3584, 152064}, tied), GgmlType::kQ8_0) << "the converter";
}

// The tiny test model (2 layers, hidden 64, intermediate 128): 64 and 128 are not multiples of 256, so Q4_K falls
// back to Q5_0, Q5_K to Q5_1, Q6_K to Q8_0; use_more_bits(i, 2) picks layer 1 (i >= 7 * 2 / 8) only; the output's
// row of 64 is not a multiple of Q4_K's block, so it is Q8_0 directly.
TEST(QuantMix, TinyModelFallsBack) {
  const MixContext ctx{2, true};
  const auto type = [&](ExportType t, const std::string& name, std::vector<int64_t> ne) { return tensor_type_for(t, name, ne, ctx); };
  EXPECT_EQ(type(ExportType::kQ4_K_M, "blk.0.attn_v.weight", {64, 32}), GgmlType::kQ5_0);
  EXPECT_EQ(type(ExportType::kQ4_K_M, "blk.1.attn_v.weight", {64, 32}), GgmlType::kQ8_0);
  EXPECT_EQ(type(ExportType::kQ4_K_M, "blk.0.ffn_down.weight", {128, 64}), GgmlType::kQ5_0);
  EXPECT_EQ(type(ExportType::kQ4_K_M, "blk.1.ffn_down.weight", {128, 64}), GgmlType::kQ8_0);
  EXPECT_EQ(type(ExportType::kQ5_K_M, "blk.0.attn_q.weight", {64, 64}), GgmlType::kQ5_1);
  EXPECT_EQ(type(ExportType::kQ6_K, "blk.0.attn_q.weight", {64, 64}), GgmlType::kQ8_0);
  EXPECT_EQ(type(ExportType::kQ4_K_M, "output.weight", {64, 300}), GgmlType::kQ8_0);
  EXPECT_EQ(type(ExportType::kQ4_0, "output.weight", {64, 300}), GgmlType::kQ8_0) << "Q6_K, then Q8_0 for 64";
  EXPECT_EQ(type(ExportType::kQ4_0, "blk.0.attn_q.weight", {64, 64}), GgmlType::kQ4_0);
  EXPECT_EQ(type(ExportType::kQ4_K_M, "token_embd.weight", {64, 300}), GgmlType::kQ5_0);
}

// Row lengths of 96 (a multiple of 32 only) and 48 (not even that: F16).
TEST(QuantMix, FallbackRowLengths) {
  const MixContext ctx{32, true};
  EXPECT_EQ(tensor_type_for(ExportType::kQ4_K_M, "blk.4.attn_q.weight", {96, 64}, ctx), GgmlType::kQ5_0);
  EXPECT_EQ(tensor_type_for(ExportType::kQ5_K_M, "blk.4.attn_q.weight", {96, 64}, ctx), GgmlType::kQ5_1);
  EXPECT_EQ(tensor_type_for(ExportType::kQ6_K, "blk.4.attn_q.weight", {96, 64}, ctx), GgmlType::kQ8_0);
  EXPECT_EQ(tensor_type_for(ExportType::kQ4_K_M, "blk.0.attn_v.weight", {96, 64}, ctx), GgmlType::kQ8_0) << "Q6_K -> Q8_0";
  for (ExportType t : {ExportType::kQ4_0, ExportType::kQ4_K_M, ExportType::kQ5_K_M, ExportType::kQ6_K})
    EXPECT_EQ(tensor_type_for(t, "blk.4.attn_q.weight", {48, 64}, ctx), GgmlType::kF16) << export_type_name(t);
  EXPECT_EQ(tensor_type_for(ExportType::kQ4_K_M, "output.weight", {48, 300}, ctx), GgmlType::kF16) << "Q8_0, then F16";
  EXPECT_EQ(tensor_type_for(ExportType::kQ4_K_M, "blk.4.attn_q.weight", {4096, 1}, ctx), GgmlType::kF16)
      << "ggml counts 1 dimension: the quantizer leaves the f16 file's type";
}

// llama.cpp's 70B type (80 layers, GQA): attn_v of the other layers gets Q5_K instead of Q4_K.
TEST(QuantMix, Llama70BAttnV) {
  EXPECT_TRUE(llama_cpp_type_is_70b("llama", 80, 64, 8));
  EXPECT_FALSE(llama_cpp_type_is_70b("llama", 80, 64, 64)) << "LLaMA-1 65B";
  EXPECT_TRUE(llama_cpp_type_is_70b("qwen2", 80, 64, 8));
  EXPECT_FALSE(llama_cpp_type_is_70b("qwen3", 80, 64, 8));
  EXPECT_FALSE(llama_cpp_type_is_70b("llama", 32, 32, 8));
  MixContext ctx{80, true, true};
  // use_more_bits(i, 80): i < 10, i >= 70, (i - 10) % 3 == 2.
  EXPECT_EQ(tensor_type_for(ExportType::kQ4_K_M, "blk.12.attn_v.weight", {8192, 1024}, ctx), GgmlType::kQ6_K);
  EXPECT_EQ(tensor_type_for(ExportType::kQ4_K_M, "blk.13.attn_v.weight", {8192, 1024}, ctx), GgmlType::kQ5_K);
  EXPECT_EQ(tensor_type_for(ExportType::kQ4_K_M, "blk.13.ffn_down.weight", {28672, 8192}, ctx), GgmlType::kQ4_K);
  EXPECT_EQ(tensor_type_for(ExportType::kQ5_K_M, "blk.13.attn_v.weight", {8192, 1024}, ctx), GgmlType::kQ5_K);
  EXPECT_EQ(tensor_type_for(ExportType::kQ4_0, "blk.13.attn_v.weight", {8192, 1024}, ctx), GgmlType::kQ4_0);
  ctx.llama_type_70b = false;
  EXPECT_EQ(tensor_type_for(ExportType::kQ4_K_M, "blk.13.attn_v.weight", {8192, 1024}, ctx), GgmlType::kQ4_K);
}

// Mixtral 8x7B (32 layers, 8 experts, ggml ne of the stacked experts [in, out, E]): the converter keeps the routers
// F32 in every type and types the stacked experts as matrices; the quantizer leaves the routers alone, types the
// experts by name (ffn_down_exps in the use_more_bits layers Q6_K under the K mixes, the layer read from "blk.N."), and
// for 8 experts puts attn_v and attn_k at Q8_0 in every mix and attn_output at Q5_K in q4_k_m.
TEST(QuantMix, MixtureOfExperts) {
  const MixContext ctx{32, true, false, 8};
  const std::vector<int64_t> router = {4096, 8}, gate = {4096, 14336, 8}, down = {14336, 4096, 8};
  for (ExportType t : {ExportType::kF32, ExportType::kF16, ExportType::kBF16, ExportType::kQ8_0, ExportType::kQ4_0, ExportType::kQ4_K_M,
                       ExportType::kQ5_K_M, ExportType::kQ6_K})
    EXPECT_EQ(tensor_type_for(t, "blk.3.ffn_gate_inp.weight", router, ctx), GgmlType::kF32) << export_type_name(t);
  EXPECT_EQ(tensor_type_for(ExportType::kF16, "blk.3.ffn_gate_exps.weight", gate, ctx), GgmlType::kF16);
  EXPECT_EQ(tensor_type_for(ExportType::kQ8_0, "blk.3.ffn_down_exps.weight", down, ctx), GgmlType::kQ8_0);
  EXPECT_EQ(tensor_type_for(ExportType::kQ8_0, "blk.3.ffn_down_exps.weight", {48, 64, 8}, ctx), GgmlType::kF16) << "rows of 48";
  for (int layer = 0; layer < 32; ++layer) {
    SCOPED_TRACE(layer);
    const GgmlType more = kMoreBits32.count(layer) ? GgmlType::kQ6_K : GgmlType::kQ4_K;
    EXPECT_EQ(tensor_type_for(ExportType::kQ4_K_M, blk(layer, "ffn_down_exps"), down, ctx), more);
    for (const char* t : {"ffn_gate_exps", "ffn_up_exps"}) EXPECT_EQ(tensor_type_for(ExportType::kQ4_K_M, blk(layer, t), gate, ctx), GgmlType::kQ4_K);
    for (ExportType t : {ExportType::kQ4_0, ExportType::kQ4_K_M, ExportType::kQ5_K_M, ExportType::kQ6_K})
      for (const char* v : {"attn_v", "attn_k"}) EXPECT_EQ(tensor_type_for(t, blk(layer, v), {4096, 1024}, ctx), GgmlType::kQ8_0) << v;
    EXPECT_EQ(tensor_type_for(ExportType::kQ4_K_M, blk(layer, "attn_output"), {4096, 4096}, ctx), GgmlType::kQ5_K);
    EXPECT_EQ(tensor_type_for(ExportType::kQ5_K_M, blk(layer, "attn_output"), {4096, 4096}, ctx), GgmlType::kQ5_K);
    EXPECT_EQ(tensor_type_for(ExportType::kQ4_0, blk(layer, "attn_output"), {4096, 4096}, ctx), GgmlType::kQ4_0);
    EXPECT_EQ(tensor_type_for(ExportType::kQ4_K_M, blk(layer, "attn_q"), {4096, 4096}, ctx), GgmlType::kQ4_K);
  }
  // Another expert count (Qwen3-30B-A3B's 128, 48 layers): the dense rules.
  const MixContext qwen{48, true, false, 128};
  // use_more_bits(i, 48): i < 6, i >= 42, (i - 6) % 3 == 2: layer 20 yes, 21 no.
  EXPECT_EQ(tensor_type_for(ExportType::kQ4_K_M, "blk.21.attn_v.weight", {2048, 512}, qwen), GgmlType::kQ4_K);
  EXPECT_EQ(tensor_type_for(ExportType::kQ4_K_M, "blk.21.attn_k.weight", {2048, 512}, qwen), GgmlType::kQ4_K);
  EXPECT_EQ(tensor_type_for(ExportType::kQ4_K_M, "blk.20.attn_v.weight", {2048, 512}, qwen), GgmlType::kQ6_K);
  EXPECT_EQ(tensor_type_for(ExportType::kQ4_K_M, "blk.20.ffn_down_exps.weight", {768, 2048, 128}, qwen), GgmlType::kQ6_K);
  EXPECT_EQ(tensor_type_for(ExportType::kQ4_K_M, "blk.21.ffn_down_exps.weight", {768, 2048, 128}, qwen), GgmlType::kQ4_K);
  EXPECT_EQ(tensor_type_for(ExportType::kQ4_K_M, "blk.20.ffn_down_exps.weight", {96, 64, 8}, qwen), GgmlType::kQ8_0) << "Q6_K's fallback";
  EXPECT_FALSE(llama_cpp_type_is_70b("llama", 80, 64, 8, 8)) << "llama.cpp types 8-expert llamas as 8x7B / 8x22B";
}

}  // namespace
}  // namespace qtune
