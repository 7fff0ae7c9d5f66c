// LoRA+ (loraplus_lr_ratio): which tensors learn faster (PEFT's create_loraplus_optimizer rule), AdamW's
// per-tensor rates, and a run whose step moves lora_B ratio× as far as lora_A. PEFT's own groups are compared
// in test_loraplus_reference.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "models/safetensors.h"
#include "tests/support/test_support.h"
#include "trainer/trainer.h"

namespace qtune {
namespace {

namespace fs = std::filesystem;

TEST(LoraPlus, GroupsTensorsAsPeft) {
  TrainConfig config;
  config.weight_decay = 0.01;
  config.loraplus_lr_ratio = 16;
  const std::string module = "base_model.model.model.layers.0.self_attn.q_proj";
  const std::vector<std::pair<std::string, torch::Tensor>> trained = {
      {module + ".lora_A.weight", torch::zeros({4, 64})},
      {module + ".lora_B.weight", torch::zeros({64, 4})},
      {module + ".lora_magnitude_vector", torch::zeros({64})},  // DoRA's m: 1-D, so with B
      {module + ".bias", torch::zeros({64})},                   // a 1-D bias (qtune trains none): with B, no decay
  };
  const std::vector<AdamWParameter> plus = optimizer_parameters(trained, config);
  ASSERT_EQ(plus.size(), 4u);
  const double factors[] = {1, 16, 16, 16}, decays[] = {0.01, 0.01, 0.01, 0};
  for (std::size_t i = 0; i < plus.size(); ++i) {
    EXPECT_EQ(plus[i].name, trained[i].first);
    EXPECT_TRUE(plus[i].tensor.is_same(trained[i].second));
    EXPECT_EQ(plus[i].lr_factor, factors[i]) << plus[i].name;
    EXPECT_EQ(plus[i].weight_decay, decays[i]) << plus[i].name;
  }
  config.loraplus_lr_ratio = 0;  // off: one rate and decay for all, as before LoRA+
  for (const AdamWParameter& p : optimizer_parameters(trained, config)) {
    EXPECT_EQ(p.lr_factor, 1.0) << p.name;
    EXPECT_EQ(p.weight_decay, 0.01) << p.name;
  }
}

// Adam's first step moves each element by lr·g/(|g| + eps) ≈ lr: a tensor with lr_factor 16 moves 16× as far.
TEST(LoraPlus, AdamWStepsEachTensorAtItsOwnRate) {
  torch::manual_seed(3);
  const torch::Tensor g = torch::randn({5, 3});
  torch::Tensor a = torch::randn({5, 3}).set_requires_grad(true), b = a.detach().clone().set_requires_grad(true);
  const torch::Tensor a0 = a.detach().clone();
  AdamW optimizer({{"a", a, 1.0, 0.0}, {"b", b, 16.0, 0.0}}, {0.9, 0.999, 1e-8});
  a.mutable_grad() = g.clone();
  b.mutable_grad() = g.clone();
  optimizer.step(1e-3);
  const torch::Tensor moved_a = a.detach() - a0, moved_b = b.detach() - a0;
  EXPECT_TRUE(torch::allclose(moved_a.abs(), torch::full({5, 3}, 1e-3), 1e-3, 0)) << moved_a;
  EXPECT_TRUE(torch::allclose(moved_b, 16 * moved_a, 1e-3, 0)) << moved_b;
}

std::string chat_run(const std::string& dir, const std::string& extra) {
  if (!fs::exists(dir + "/model")) test::make_byte_model(dir + "/model");
  std::ofstream data(dir + "/train.jsonl");
  for (const char* w : {"cat", "dog", "sun", "sky", "red", "sea", "owl", "fig"})
    data << nlohmann::json({{"messages", {{{"role", "user"}, {"content", std::string("say ") + w}}, {{"role", "assistant"}, {"content", w}}}}}).dump()
         << "\n";
  test::write_file(dir + "/config.yaml", "base_model: model\ndatasets:\n  - path: train.jsonl\n    type: chat_template\nchat_template: chatml\n"
                                         "sequence_len: 64\nmicro_batch_size: 4\nlora_r: 4\nlora_alpha: 8\nload_in_4bit: true\ndevice: cpu\nseed: 5\n" +
                                             extra);
  return dir + "/config.yaml";
}

std::map<std::string, torch::Tensor> adapter_tensors(const std::string& dir) {
  auto file = SafetensorsFile::open(dir + "/adapter_model.safetensors");
  std::map<std::string, torch::Tensor> tensors;
  for (const auto& info : file->tensors()) tensors[info.name] = file->view(info).clone();
  return tensors;
}

// Median over every element of every tensor whose name has `part`: |after - before| / step.
double median_step(const std::map<std::string, torch::Tensor>& before, const std::map<std::string, torch::Tensor>& after, const std::string& part,
                   double step) {
  std::vector<torch::Tensor> moves;
  for (const auto& [name, tensor] : before)
    if (name.find(part) != std::string::npos) moves.push_back((after.at(name) - tensor).abs().flatten() / step);
  return torch::cat(moves).median().item<double>();
}

// One optimizer step with loraplus_lr_ratio 16 from an adapter whose A and B are both non-zero (B starts at
// zero in a new adapter, which gives A no gradient in the first step): Adam moves each element of A by about
// learning_rate and each element of B by about 16 × learning_rate.
TEST(LoraPlus, AStepMovesBRatioTimesAsFarAsA) {
  const std::string dir = test::temp_dir("loraplus_run");
  ASSERT_EQ(test::run_qtune("train " + chat_run(dir, "max_steps: 2\nlearning_rate: 0.01\noutput_dir: start\n")).exit_code, 0);
  const double lr = 1e-3;
  auto r = test::run_qtune("train " + chat_run(dir, "max_steps: 1\nlearning_rate: 0.001\nlr_scheduler: constant\nweight_decay: 0\n"
                                                    "lora_model_dir: start\nloraplus_lr_ratio: 16\noutput_dir: plus\n"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto before = adapter_tensors(dir + "/start"), after = adapter_tensors(dir + "/plus");
  const double a = median_step(before, after, "lora_A", lr), b = median_step(before, after, "lora_B", lr);
  std::cout << "median |ΔA| = " << a << " × lr, median |ΔB| = " << b << " × lr\n";
  EXPECT_NEAR(a, 1.0, 0.01);
  EXPECT_NEAR(b, 16.0, 0.16);
}

}  // namespace
}  // namespace qtune
