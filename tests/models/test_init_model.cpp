// Tests for init-model: exact HF layout, determinism per seed, sharding, and that every architecture
// loads back with the statistics of the requested initialization.
#include <gtest/gtest.h>

#include <filesystem>

#include "models/model_loader.h"
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

}  // namespace
}  // namespace qtune
