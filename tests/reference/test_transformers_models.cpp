// qtune's model against HF transformers on the same files: `qtune init-model` folders loaded by transformers'
// from_pretrained (tests/reference/hf_models.py, ctest Reference.models) give the logits qtune computes for a
// plain batch, right-padded rows, packed rows (positions restarting per sequence) and positions beyond 1,000, and
// greedy decoding with the KV cache picks the same 32 tokens. llama_sharded: the Llama model written in shards.
// Mixture of experts: also the experts every sparse layer routes each token to (ties included).
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

// Each sparse layer's chosen experts after the last forward equal transformers' for the tokens `real` marks.
void expect_same_experts(CausalLM& model, const SafetensorsFile& ref, const std::string& arch, const std::string& name,
                         const torch::Tensor& real) {
  int64_t sparse = 0;
  for (std::size_t i = 0; i < model->layers->size(); ++i) {
    auto* layer = model->layers[i]->as<DecoderLayer>();
    if (layer->moe.is_empty()) continue;
    ++sparse;
    const std::string key = name + ".experts." + std::to_string(i);
    ASSERT_NE(ref.find(key), nullptr) << arch << ": no " << key << " in the reference";
    const torch::Tensor mine = layer->moe->chosen_experts.index({real.reshape(-1)});
    const torch::Tensor theirs = ref.view(key).index({real.reshape(-1)});
    EXPECT_TRUE(torch::equal(mine, theirs)) << arch << " " << key << ": the routed experts differ from transformers'";
  }
  EXPECT_EQ(sparse > 0, model->config().num_experts > 0) << arch;
  // The routers' load-balancing loss of that forward (counted because check_architecture armed it).
  const double aux = model->router_balance()->loss(), want = ref.view(name + ".aux_loss").item<double>();
  EXPECT_NEAR(aux, want, 1e-5 * std::abs(want)) << arch << " " << name << ": load-balancing loss";
  std::cout << arch << " " << name << ": load-balancing loss " << aux << ", transformers " << want << "\n";
  model->router_balance()->disarm();
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
  const bool moe = model->config().num_experts > 0;
  const torch::Tensor plain_ids = ref->view("plain.input_ids");
  auto arm = [&] { if (moe) model->router_balance()->arm(1.0); };  // count the load-balancing loss of the next forward
  arm();
  compare("plain", model->forward(plain_ids), ref->view("plain.logits"));
  if (moe) expect_same_experts(model, *ref, arch, "plain", torch::ones_like(plain_ids, torch::kBool));
  {
    const torch::Tensor mask = ref->view("padded.attention_mask");
    arm();
    const torch::Tensor logits = model->forward(ref->view("padded.input_ids"), SequenceLayout::from_attention_mask(mask));
    const torch::Tensor real = mask.to(torch::kBool);  // what transformers outputs at padding is not defined
    compare("padded", logits.index({real}), ref->view("padded.logits").index({real}));
    if (moe) expect_same_experts(model, *ref, arch, "padded", real);
  }
  for (const std::string name : {"packed", "offset"}) {
    const auto layout = SequenceLayout::from_packed_position_ids(ref->view(name + ".position_ids"));
    const torch::Tensor ids = ref->view(name + ".input_ids");
    if (name == "packed") arm();
    compare(name, model->forward(ids, layout), ref->view(name + ".logits"));
    if (moe && name == "packed") expect_same_experts(model, *ref, arch, name, torch::ones_like(ids, torch::kBool));
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
TEST(TransformersModel, MixtralExpertsAndRouting) { check_architecture("mixtral"); }
TEST(TransformersModel, MixtralRoutingTiesBrokenAsTorchTopk) { check_architecture("mixtral_ties"); }
TEST(TransformersModel, Qwen3MoeExpertsAndRouting) { check_architecture("qwen3_moe"); }
TEST(TransformersModel, Qwen3MoeDenseLayerAndUnnormalizedRouting) { check_architecture("qwen3_moe_dense_layer"); }

}  // namespace
}  // namespace qtune
