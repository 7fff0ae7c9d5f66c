// Tests for init-model: exact HF layout, determinism per seed, sharding, and that every architecture
// loads back with the statistics of the requested initialization.
#include <gtest/gtest.h>

#include <filesystem>

#include "models/model_loader.h"
#include "models/transformer.h"
#include "tests/support/test_support.h"

namespace qtune {
namespace {

TEST(InitModel, WritesHfLayoutForEveryArchitecture) {
  for (const char* arch : {"llama", "mistral", "qwen2", "qwen3"}) {
    const std::string dir = test::make_tiny_model(arch);
    for (const char* file : {"config.json", "generation_config.json", "model.safetensors"})
      EXPECT_TRUE(std::filesystem::exists(dir + "/" + file)) << arch << " " << file;
    CheckedCheckpoint checked = check_checkpoint(dir);
    EXPECT_TRUE(checked.unused.empty()) << arch;
    EXPECT_EQ(checked.config.model_type(), arch);
    auto metadata = checked.checkpoint.files()[0]->metadata();
    EXPECT_EQ(metadata["format"], "pt") << "transformers refuses safetensors without format=pt";
    // Initialization statistics: N(0, 0.2) for matrices, ones for norms, zeros for biases.
    torch::Tensor q = checked.checkpoint.view("model.layers.0.self_attn.q_proj.weight");
    EXPECT_NEAR(q.std().item<double>(), 0.2, 0.02) << arch;
    EXPECT_NEAR(q.mean().item<double>(), 0.0, 0.02) << arch;
    EXPECT_TRUE(torch::equal(checked.checkpoint.view("model.norm.weight"), torch::ones({64}))) << arch;
    if (checked.config.qkv_bias)
      EXPECT_TRUE(torch::equal(checked.checkpoint.view("model.layers.1.self_attn.k_proj.bias"), torch::zeros({32}))) << arch;
  }
}

TEST(InitModel, SameSeedSameBytesOtherSeedOtherWeights) {
  const std::string a = test::temp_dir("a"), b = test::temp_dir("b"), c = test::temp_dir("c");
  const std::string sizes = " --hidden 32 --layers 1 --heads 2 --vocab 50";
  ASSERT_EQ(test::run_qtune("init-model --arch qwen3 --seed 7 --out " + a + sizes).exit_code, 0);
  ASSERT_EQ(test::run_qtune("init-model --arch qwen3 --seed 7 --out " + b + sizes).exit_code, 0);
  ASSERT_EQ(test::run_qtune("init-model --arch qwen3 --seed 8 --out " + c + sizes).exit_code, 0);
  EXPECT_EQ(test::read_file(a + "/model.safetensors"), test::read_file(b + "/model.safetensors"));
  EXPECT_EQ(test::read_file(a + "/config.json"), test::read_file(b + "/config.json"));
  EXPECT_NE(test::read_file(a + "/model.safetensors"), test::read_file(c + "/model.safetensors"));
}

TEST(InitModel, ShardsLargeModelsAndLoadsThemBack) {
  const std::string dir = test::temp_dir("sharded");
  auto r = test::run_qtune("init-model --arch llama --out " + dir +
                           " --hidden 64 --layers 3 --heads 4 --vocab 300 --dtype f32 --max-shard-gb 0.0001");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_TRUE(std::filesystem::exists(dir + "/model.safetensors.index.json"));
  EXPECT_FALSE(std::filesystem::exists(dir + "/model.safetensors"));
  CausalLM model = load_causal_lm(dir);
  torch::NoGradGuard no_grad;
  EXPECT_EQ(model->forward(torch::randint(0, 300, {1, 4})).sizes(), (std::vector<int64_t>{1, 4, 300}));
}

TEST(InitModel, FourBitOutputEqualsQuantizingTheSixteenBitModel) {
  // init-model --quantize must write, byte for byte, what `qtune quantize` makes of the 16-bit model of the
  // same seed (the bitsandbytes tensors, their order, the shards and the quantization_config).
  const std::string plain = test::temp_dir("plain16"), quantized = test::temp_dir("quantized"), direct = test::temp_dir("direct4");
  const std::string sizes = " --arch llama --seed 3 --hidden 64 --layers 2 --heads 4 --vocab 300";
  ASSERT_EQ(test::run_qtune("init-model --out " + plain + sizes).exit_code, 0);
  auto r = test::run_qtune("quantize --model " + plain + " --out " + quantized + " --type nf4 --double-quant --blocksize 64");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  r = test::run_qtune("init-model --out " + direct + sizes + " --quantize nf4 --double-quant --blocksize 64");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(test::read_file(direct + "/model.safetensors"), test::read_file(quantized + "/model.safetensors"));
  EXPECT_EQ(nlohmann::json::parse(test::read_file(direct + "/config.json")), nlohmann::json::parse(test::read_file(quantized + "/config.json")));
  CausalLM model = load_causal_lm(direct);  // and it loads as a 4-bit model
  EXPECT_EQ(model->projections()[0].second->weight().format(), "nf4-dq");

  r = test::run_qtune("init-model --out " + test::temp_dir("bad") + sizes + " --double-quant");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("--double-quant needs --quantize"), std::string::npos) << r.out;
}

// The experts of every sparse layer, as the loaded model holds them, and each projection's storage format.
// The router is never quantized: it has the format of lm_head (the compute dtype).
void expect_moe_model(const std::string& dir, const std::string& arch, int64_t experts, const std::string& expert_format) {
  CausalLM model = load_causal_lm(dir);
  ASSERT_EQ(model->config().model_type(), arch);
  for (const auto& layer : *model->layers) {
    auto* decoder = layer->as<DecoderLayerImpl>();
    ASSERT_FALSE(decoder->moe.is_empty()) << arch;
    EXPECT_EQ(decoder->moe->num_experts(), experts) << arch;
  }
  const std::string router_format = model->lm_head->weight().format();
  int64_t expert_projections = 0;
  for (const auto& [name, linear] : model->projections()) {
    if (name.find(".experts.") != std::string::npos) {
      ++expert_projections;
      EXPECT_EQ(linear->weight().format(), expert_format) << name;
    } else if (name.size() > 5 && name.compare(name.size() - 5, 5, ".gate") == 0) {
      EXPECT_EQ(linear->weight().format(), router_format) << name;
      EXPECT_EQ(linear->weight().out_features(), experts) << name;
    }
  }
  EXPECT_EQ(expert_projections, model->config().num_layers * experts * 3) << arch;
  torch::NoGradGuard no_grad;
  const torch::Tensor logits = model->forward(torch::randint(0, 300, {1, 5}));
  EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{1, 5, 300}));
  EXPECT_TRUE(torch::isfinite(logits).all().item<bool>());
}

TEST(InitModel, MixtureOfExpertsModelsLoadBackInEveryFormat) {
  const std::string sizes = " --hidden 64 --layers 2 --heads 4 --vocab 300 --experts 4 --experts-per-token 2";
  for (const char* arch : {"mixtral", "qwen3_moe"}) {
    const std::string dense = test::temp_dir(std::string(arch) + "_f32"), four_bit = test::temp_dir(std::string(arch) + "_nf4");
    auto r = test::run_qtune(std::string("init-model --arch ") + arch + " --out " + dense + sizes + " --dtype f32");
    ASSERT_EQ(r.exit_code, 0) << r.out;
    CheckedCheckpoint checked = check_checkpoint(dense);
    EXPECT_TRUE(checked.unused.empty()) << arch;
    const std::string block = std::string(arch) == "mixtral" ? "block_sparse_moe" : "mlp";
    const std::string down = std::string(arch) == "mixtral" ? "w2" : "down_proj";
    // Qwen3-MoE's experts follow --intermediate (default 176 for hidden 64): an eighth, 22; Mixtral's are as wide.
    const int64_t expert_width = std::string(arch) == "mixtral" ? 176 : 22;
    EXPECT_EQ(checked.checkpoint.info("model.layers.1." + block + ".experts.3." + down + ".weight").shape,
              (std::vector<int64_t>{64, expert_width}));
    EXPECT_EQ(checked.checkpoint.info("model.layers.0." + block + ".gate.weight").shape, (std::vector<int64_t>{4, 64}));
    expect_moe_model(dense, arch, 4, "f32");

    r = test::run_qtune(std::string("init-model --arch ") + arch + " --out " + four_bit + sizes + " --quantize nf4 --double-quant");
    ASSERT_EQ(r.exit_code, 0) << r.out;
    expect_moe_model(four_bit, arch, 4, "nf4-dq");
  }
}

TEST(InitModel, QwenMoeExpertWidthFollowsTheSizesUnlessGiven) {
  const std::string a = test::temp_dir("qmoe_a"), b = test::temp_dir("qmoe_b");
  auto r = test::run_qtune("init-model --arch qwen3_moe --out " + a + " --hidden 64 --heads 4 --layers 1 --vocab 300 --experts 2 --intermediate 96");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(check_checkpoint(a).config.moe_intermediate_size, 12);  // 96 / 8, not the preset's 688 / 8
  EXPECT_EQ(check_checkpoint(a).config.num_experts_per_tok, 2);     // the preset's top 8, capped at --experts
  r = test::run_qtune("init-model --arch qwen3_moe --out " + b + " --hidden 64 --heads 4 --layers 1 --vocab 300 --experts 2 --moe-intermediate 40");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(check_checkpoint(b).config.moe_intermediate_size, 40);
  for (const std::string bad : {"--arch llama --experts 4", "--arch mixtral --moe-intermediate 8", "--arch mixtral --experts 2 --experts-per-token 3"}) {
    r = test::run_qtune("init-model --out " + test::temp_dir("bad_moe") + " " + bad);
    EXPECT_EQ(r.exit_code, 2) << bad;
    EXPECT_NE(r.out.find("--"), std::string::npos) << r.out;
  }
}

TEST(InitModel, FourBitWithoutDoubleQuantEqualsQuantizingTooForExperts) {
  // The 4-bit tensors are declared from the shapes alone before they are made: the same bytes as `qtune quantize`.
  const std::string plain = test::temp_dir("moe16"), quantized = test::temp_dir("moe_q"), direct = test::temp_dir("moe_direct");
  const std::string sizes = " --arch qwen3_moe --seed 5 --hidden 64 --layers 2 --heads 4 --vocab 300 --experts 3";
  ASSERT_EQ(test::run_qtune("init-model --out " + plain + sizes).exit_code, 0);
  auto r = test::run_qtune("quantize --model " + plain + " --out " + quantized + " --type fp4 --blocksize 128");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  r = test::run_qtune("init-model --out " + direct + sizes + " --quantize fp4 --blocksize 128");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(test::read_file(direct + "/model.safetensors"), test::read_file(quantized + "/model.safetensors"));
}

TEST(InitModel, RefusesToOverwriteAModelWithoutForce) {
  const std::string dir = test::make_tiny_model("llama");
  auto r = test::run_qtune("init-model --arch llama --out " + dir);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("--force"), std::string::npos) << r.out;
}

TEST(Inspect, ReportsCountsDtypesAndFourBitEstimate) {
  const std::string dir = test::make_tiny_model("qwen2");
  auto r = test::run_qtune("inspect --json " + dir);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["architecture"], "Qwen2ForCausalLM");
  // Independent count from the sizes: hidden 64, ffn 176, 4 heads x 16, 2 kv heads, vocab 300, tied.
  const int64_t D = 64, F = 176, KV = 32, V = 300;
  const int64_t per_layer = D * D + D + 2 * (D * KV + KV) + D * D + 3 * D * F + 2 * D;
  EXPECT_EQ(j["parameters"]["total"], V * D + 2 * per_layer + D);
  EXPECT_EQ(j["dtypes"]["f32"], j["parameters"]["total"]);
  // 4-bit estimate: projections at 0.5 B + 1 B per 64 (+4 B per 256 blocks), the rest bf16.
  const double q = 2.0 * (2 * D * D + 2 * D * KV + 3 * D * F);
  const double rest = static_cast<double>(j["parameters"]["total"].get<int64_t>()) - q;
  EXPECT_NEAR(j["bytes_nf4_double_quant"].get<double>(), q * 0.5 + q / 64 + q / 64 / 256 * 4 + rest * 2, 1e-6);
  auto text = test::run_qtune("inspect " + dir);
  EXPECT_NE(text.out.find("Qwen2ForCausalLM"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("4-bit"), std::string::npos) << text.out;
}

TEST(Inspect, ReportsExpertsAndTheParametersOneTokenUses) {
  const std::string config = std::string(QTUNE_SOURCE_DIR) + "/tests/fixtures/model_configs/qwen3_30b_a3b.json";
  auto r = test::run_qtune("inspect --json " + config);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["experts"]["experts"], 128);
  EXPECT_EQ(j["experts"]["experts_per_token"], 8);
  EXPECT_EQ(j["experts"]["expert_intermediate_size"], 768);
  EXPECT_EQ(j["experts"]["sparse_layers"], 48);
  EXPECT_EQ(j["parameters"]["total"], 30532122624);  // transformers' count (test_model_config.cpp)
  // Per layer: attention 2·2048·4096 + 2·2048·512, norms 2·2048 + 2·128, router 128·2048, 8 experts 8·3·2048·768;
  // then embeddings and lm_head 2·151936·2048 and the final norm.
  EXPECT_EQ(j["parameters"]["active"], int64_t{48} * (18874368 + 4352 + 262144 + 37748736) + 622329856 + 2048);
  EXPECT_EQ(j["parameters"]["routers"], 48 * 128 * 2048);
  auto text = test::run_qtune("inspect " + config);
  EXPECT_NE(text.out.find("experts     128 per layer on 48 of 48 layers, top 8 per token, each ffn 768"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("3,353,032,704 active per token"), std::string::npos) << text.out;
  // A dense model says nothing of experts.
  EXPECT_EQ(test::run_qtune("inspect " + test::make_tiny_model("llama")).out.find("experts"), std::string::npos);
}

}  // namespace
}  // namespace qtune
