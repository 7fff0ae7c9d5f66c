// Gradient checkpointing gives exactly the gradients of the plain backward, with dropout in the adapters
// (the recomputation replays the same random masks).
#include <gtest/gtest.h>

#include "models/model_loader.h"
#include "tests/support/test_support.h"

namespace qtune {
namespace {

// A small trainable adapter with dropout, standing in for LoRA: y + dropout(x)·Wᵀ.
class NoisyAdapter : public LinearAdapter {
 public:
  NoisyAdapter(int64_t in, int64_t out, uint64_t seed) {
    auto g = at::make_generator<at::CPUGeneratorImpl>(seed);
    weight_ = register_parameter("weight", at::randn({out, in}, g) * 0.05);
  }
  torch::Tensor add_to(const FrozenLinearImpl&, torch::Tensor y, const torch::Tensor& x) override {
    return y + torch::matmul(torch::dropout(x, 0.3, is_training()), weight_.t());
  }
  torch::Tensor weight_;
};

std::vector<torch::Tensor> gradients(bool checkpointing, const std::string& model_dir, bool offload_inputs = false) {
  CausalLM model = load_causal_lm(model_dir);
  uint64_t seed = 1;
  for (auto& [name, linear] : model->projections())
    linear->set_adapter(std::make_shared<NoisyAdapter>(linear->weight().in_features(), linear->weight().out_features(), seed++));
  model->train();
  model->set_gradient_checkpointing(checkpointing);
  model->set_activation_offloading(offload_inputs);
  torch::manual_seed(123);
  torch::Tensor ids = torch::randint(0, 300, {2, 10});
  torch::Tensor probe = torch::randn({2, 10, 300});
  (model->forward(ids) * probe).sum().backward();
  std::vector<torch::Tensor> grads;
  for (const auto& p : model->parameters()) grads.push_back(p.grad().clone());
  return grads;
}

TEST(LayerCheckpoint, GradientsEqualThePlainBackward) {
  const std::string model = test::make_tiny_model("mistral", "--sliding-window 4");
  auto plain = gradients(false, model), checkpointed = gradients(true, model);
  ASSERT_EQ(plain.size(), checkpointed.size());
  ASSERT_FALSE(plain.empty());
  for (std::size_t i = 0; i < plain.size(); ++i) EXPECT_TRUE(plain[i].equal(checkpointed[i])) << i;
}

// The newer families' per-forward state survives the recompute: Gemma 2's eager soft-capped attention, Gemma 3's
// second rope table (local layers), Phi-3's long-factor rope on 3/4 of each head (positions pass its original 8).
TEST(LayerCheckpoint, GemmaAndPhiGradientsEqualThePlainBackward) {
  for (const auto& [arch, flags] : {std::pair{"gemma2", "--sliding-window 4"}, {"gemma3", "--sliding-window 4 --sliding-window-pattern 2"},
                                    {"phi3", "--partial-rotary-factor 0.75 --original-max-positions 8"}}) {
    SCOPED_TRACE(arch);
    const std::string model = test::make_tiny_model(arch, flags);
    auto plain = gradients(false, model), checkpointed = gradients(true, model);
    ASSERT_EQ(plain.size(), checkpointed.size());
    ASSERT_FALSE(plain.empty());
    for (std::size_t i = 0; i < plain.size(); ++i) EXPECT_TRUE(plain[i].equal(checkpointed[i])) << i;
  }
}

// Offloaded inputs (on the CPU copied to a second tensor, the bookkeeping as on CUDA) come back to their own
// layers: each recompute gets its input, prefetched by the recompute of the layer after it.
TEST(LayerCheckpoint, OffloadedInputsComeBackToTheirOwnLayers) {
  const std::string model = test::make_tiny_model("llama", "--layers 4");
  auto plain = gradients(false, model), offloaded = gradients(true, model, true);
  ASSERT_EQ(plain.size(), offloaded.size());
  for (std::size_t i = 0; i < plain.size(); ++i) EXPECT_TRUE(plain[i].equal(offloaded[i])) << i;
}

}  // namespace
}  // namespace qtune
