// Parity with Hugging Face PEFT: adapters saved by PEFT load into qtune, and the causal-LM loss and every
// LoRA gradient equal what transformers + PEFT computed (made at test time by scripts/make_peft_fixtures.py,
// ctest Reference.PeftGradients).
// Depends on: adapters/peft_format.h, models/model_loader.h, tests/support/test_support.h.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <iostream>

#include "adapters/peft_format.h"
#include "models/model_loader.h"
#include "models/safetensors.h"
#include "tests/support/test_support.h"

namespace qtune {
namespace {

TEST(PeftParity, LossAndGradientsMatchPeft) {
  const std::string root = std::string(QTUNE_REFERENCE_DIR) + "/peft";
  const std::string base = std::string(QTUNE_FIXTURES_DIR) + "/numpy/llama";  // the model the fixtures were made on
  if (!std::filesystem::exists(root + "/lora/expected.safetensors")) {
    const char* why = "no PEFT reference in " QTUNE_REFERENCE_DIR "/peft (ctest -R Reference.PeftGradients makes it)";
    if (test::reference_required()) FAIL() << why;
    GTEST_SKIP() << why;
  }
  for (const char* name : {"lora", "rslora"}) {
    SCOPED_TRACE(name);
    const std::string dir = root + "/" + name;
    CausalLM model = load_causal_lm(base);
    load_peft_adapter(model, dir);
    auto expected = SafetensorsFile::open(dir + "/expected.safetensors");
    const torch::Tensor ids = expected->view("input_ids");  // [B, T]
    const torch::Tensor logits = model->forward(ids);        // [B, T, V]
    const int64_t V = logits.size(-1);
    // transformers' causal-LM loss: token t predicts t + 1, mean over all predicted tokens.
    const torch::Tensor shifted = logits.slice(1, 0, -1).reshape({-1, V});
    const torch::Tensor targets = ids.slice(1, 1).reshape({-1});
    const torch::Tensor loss = torch::nll_loss(torch::log_softmax(shifted, -1), targets);
    const double loss_err = test::max_relative_error(loss.reshape({1}), expected->view("loss"));
    EXPECT_LE(loss_err, 1e-4) << "loss " << loss.item<double>() << " vs " << expected->view("loss").item<double>();
    loss.backward();
    int compared = 0;
    double worst = loss_err;
    for (const auto& [tensor_name, param] : lora_state(model)) {
      const TensorInfo* info = expected->find("grad." + tensor_name);
      ASSERT_NE(info, nullptr) << "fixture has no gradient for " << tensor_name;
      const double err = test::max_relative_error(param.grad(), expected->view(*info));
      EXPECT_LE(err, 1e-4) << tensor_name << ": max relative difference " << err;
      worst = std::max(worst, err);
      ++compared;
    }
    int stored = 0;
    for (const auto& info : expected->tensors()) stored += info.name.rfind("grad.", 0) == 0 ? 1 : 0;
    EXPECT_GT(compared, 0);
    EXPECT_EQ(compared, stored) << "PEFT trained modules that qtune did not adapt";
    std::cout << name << ": loss and " << compared << " LoRA gradients, largest relative difference " << worst << "\n";
  }
}

}  // namespace
}  // namespace qtune
