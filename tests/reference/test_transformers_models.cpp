// qtune's model against HF transformers on the same files: `qtune init-model` folders loaded by transformers'
// from_pretrained (tests/reference/hf_models.py, ctest Reference.models) give the logits qtune computes for a
// plain batch, right-padded rows, packed rows (positions restarting per sequence) and positions beyond 1,000, and
// greedy decoding with the KV cache picks the same 32 tokens. llama_sharded: the Llama model written in shards.
#include <gtest/gtest.h>

#include <algorithm>
#include <iostream>

#include "models/model_loader.h"
#include "models/safetensors.h"
#include "tests/reference/reference_files.h"
#include "tests/support/test_support.h"
#include "trainer/generation.h"

namespace qtune {
namespace {

// float32 on both sides, same weights, same formulas: what is left is summation order (GEMM blocking, SDPA's
// softmax), ~1e-7 relative per op over 2 layers.
constexpr double kTolerance = 1e-5;

std::vector<TokenId> to_ids(const torch::Tensor& row) {
  const torch::Tensor flat = row.reshape({-1}).to(torch::kLong).contiguous();
  return {flat.data_ptr<int64_t>(), flat.data_ptr<int64_t>() + flat.numel()};
}

void check_architecture(const std::string& arch) {
  const std::string dir = test::reference_path("models", arch);
  QTUNE_REQUIRE_REFERENCE_FILE(dir + "/reference.safetensors", "models");
  CausalLM model = load_causal_lm(dir, {at::kFloat, torch::kCPU});
  auto ref = SafetensorsFile::open(dir + "/reference.safetensors");
  torch::NoGradGuard no_grad;
  double worst = 0;
  auto compare = [&](const std::string& name, const torch::Tensor& got, const torch::Tensor& want) {
    const double err = test::max_relative_error(got, want);
    EXPECT_LE(err, kTolerance) << arch << " " << name << ": max relative difference " << err;
    std::cout << arch << " " << name << ": max relative difference " << err << "\n";
    worst = std::max(worst, err);
  };
  compare("plain", model->forward(ref->view("plain.input_ids")), ref->view("plain.logits"));
  {
    const torch::Tensor mask = ref->view("padded.attention_mask");
    const torch::Tensor logits = model->forward(ref->view("padded.input_ids"), SequenceLayout::from_attention_mask(mask));
    const torch::Tensor real = mask.to(torch::kBool);  // what transformers outputs at padding is not defined
    compare("padded", logits.index({real}), ref->view("padded.logits").index({real}));
  }
  for (const std::string name : {"packed", "offset"}) {
    const auto layout = SequenceLayout::from_packed_position_ids(ref->view(name + ".position_ids"));
    compare(name, model->forward(ref->view(name + ".input_ids"), layout), ref->view(name + ".logits"));
  }
  GenerationOptions greedy;
  greedy.max_new_tokens = 32;
  const std::vector<TokenId> tokens = generate(model, to_ids(ref->view("greedy.prompt")), greedy);
  EXPECT_EQ(tokens, to_ids(ref->view("greedy.tokens"))) << arch << ": greedy decoding differs from transformers'";
  std::cout << arch << ": largest relative difference " << worst << "; greedy tokens "
            << (tokens == to_ids(ref->view("greedy.tokens")) ? "equal" : "DIFFERENT") << " for " << tokens.size() << " steps\n";
}

TEST(TransformersModel, LlamaWithLlama3RopeScaling) { check_architecture("llama"); }
TEST(TransformersModel, MistralWithSlidingWindow) { check_architecture("mistral"); }
TEST(TransformersModel, Qwen2WithBiasesAndTiedEmbeddings) { check_architecture("qwen2"); }
TEST(TransformersModel, Qwen3WithQkNorms) { check_architecture("qwen3"); }
TEST(TransformersModel, Gemma2WithSoftCappingAndAlternatingWindows) { check_architecture("gemma2"); }
TEST(TransformersModel, Gemma3WithLocalAndGlobalRope) { check_architecture("gemma3"); }
TEST(TransformersModel, Phi3WithFusedProjectionsPartialRotaryAndLongrope) { check_architecture("phi3"); }
TEST(TransformersModel, LlamaSharded) { check_architecture("llama_sharded"); }

}  // namespace
}  // namespace qtune
