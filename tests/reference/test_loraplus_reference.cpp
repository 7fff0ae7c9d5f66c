// qtune's LoRA+ learning rate and weight decay of every trained tensor against PEFT's create_loraplus_optimizer
// (tests/reference/peft_loraplus.py, ctest Reference.loraplus) for the same tiny model and LoRA settings: qtune's
// own adapter tensors (plain LoRA and DoRA), and the grouping rule alone on PEFT's names and shapes.
#include <gtest/gtest.h>

#include <map>

#include <nlohmann/json.hpp>

#include "models/model_loader.h"
#include "tests/reference/reference_files.h"
#include "tests/support/test_support.h"
#include "trainer/trainer.h"

namespace qtune {
namespace {

TrainConfig loraplus_config(const nlohmann::json& c) {
  TrainConfig config;
  config.learning_rate = c.at("lr").get<double>();
  config.loraplus_lr_ratio = c.at("ratio").get<double>();
  config.weight_decay = c.at("weight_decay").get<double>();
  const nlohmann::json& lora = c.at("lora");
  config.lora_r = lora.at("r").get<int64_t>();
  config.lora_alpha = lora.at("lora_alpha").get<double>();
  config.lora_target_modules = lora.at("target_modules").get<std::vector<std::string>>();
  config.peft_use_dora = lora.value("use_dora", false);
  config.lora_dropout = 0;
  return config;
}

// Each parameter's rate and decay equal PEFT's for the tensor of the same name; every PEFT tensor is matched.
void expect_peft_groups(const std::vector<AdamWParameter>& parameters, const TrainConfig& config, const nlohmann::json& peft, const std::string& what) {
  EXPECT_EQ(parameters.size(), peft.size()) << what;
  for (const AdamWParameter& p : parameters) {
    ASSERT_TRUE(peft.contains(p.name)) << what << ": PEFT has no tensor " << p.name;
    const nlohmann::json& expected = peft[p.name];
    EXPECT_DOUBLE_EQ(config.learning_rate * p.lr_factor, expected.at("lr").get<double>()) << what << ": " << p.name;
    EXPECT_DOUBLE_EQ(p.weight_decay, expected.at("weight_decay").get<double>()) << what << ": " << p.name;
  }
}

TEST(LoraPlusReference, MatchesPeftsParameterGroups) {
  const std::string groups_file = test::reference_path("loraplus", "groups.json");
  QTUNE_REQUIRE_REFERENCE_FILE(groups_file, "loraplus");
  const auto cases = nlohmann::json::parse(test::read_file(groups_file));
  ASSERT_FALSE(cases.empty());
  for (const auto& [name, c] : cases.items()) {
    const TrainConfig config = loraplus_config(c);
    const nlohmann::json& peft = c.at("tensors");
    // qtune's adapter for these settings.
    CausalLM model = load_causal_lm(test::reference_path("loraplus", "model"), {at::kFloat, torch::kCPU});
    inject_lora(model, config.lora_options(), 0);
    expect_peft_groups(optimizer_parameters(lora_state(model), config), config, peft, name + ", qtune's tensors");
    // The rule alone, on PEFT's names and shapes.
    std::vector<std::pair<std::string, torch::Tensor>> peft_tensors;
    for (const auto& [tensor, entry] : peft.items()) peft_tensors.emplace_back(tensor, torch::zeros(entry.at("shape").get<std::vector<int64_t>>()));
    expect_peft_groups(optimizer_parameters(peft_tensors, config), config, peft, name + ", PEFT's tensors");
    std::cout << name << ": the LoRA+ rate and weight decay of " << peft.size() << " tensors equal PEFT's\n";
  }
}

}  // namespace
}  // namespace qtune
