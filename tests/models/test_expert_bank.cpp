// The grouped expert function (models/expert_bank.h) against the per-expert Mlp path it replaces, which the
// reference suites check against transformers: the same outputs and input gradients to the bit, for a 4-bit and a
// dense expert bank in bfloat16 and float32, with experts that get no rows; and the per-expert path whenever an
// expert projection carries an adapter.
#include <gtest/gtest.h>

#include "adapters/lora.h"
#include "models/expert_bank.h"
#include "models/model_loader.h"
#include "models/moe.h"
#include "models/transformer.h"
#include "tests/support/test_support.h"

namespace qtune {
namespace {

CausalLM moe_model(bool four_bit, at::ScalarType dtype) {
  static const std::string dir = test::make_tiny_model("qwen3_moe", "--experts 6 --experts-per-token 2 --moe-intermediate 96 --layers 1");
  LoadOptions options;
  options.dtype = dtype;
  if (four_bit) options.quantize = QuantizeOptions{};
  return load_causal_lm(dir, options);
}

const torch::nn::ModuleList& experts_of(CausalLM& model) { return model->layers[0]->as<DecoderLayer>()->moe->experts; }

struct Result {
  torch::Tensor out, grad;
};

// rows -> f(rows) and d(Σ f(rows) ⊙ probe)/d rows.
Result run(const torch::Tensor& input, const torch::Tensor& probe, const std::function<torch::Tensor(const torch::Tensor&)>& f) {
  const torch::Tensor rows = input.detach().clone().requires_grad_(true);
  const torch::Tensor out = f(rows);
  (out.to(torch::kFloat) * probe).sum().backward();
  return {out.detach(), rows.grad()};
}

TEST(ExpertBank, GroupedExpertsComputeWhatEachExpertComputesToTheBit) {
  const std::vector<int64_t> sizes = {5, 0, 9, 1, 0, 7};  // experts 1 and 4 get no rows
  for (bool four_bit : {true, false}) {
    for (at::ScalarType dtype : {at::kBFloat16, at::kFloat}) {
      CausalLM model = moe_model(four_bit, dtype);
      torch::nn::ModuleList experts = experts_of(model);  // (a handle: its operator[] is not const)
      ASSERT_TRUE(can_group_experts(experts));
      torch::manual_seed(3);
      const torch::Tensor input = torch::randn({22, 64}).to(dtype), probe = torch::randn({22, 64});
      const Result grouped = run(input, probe, [&](const torch::Tensor& rows) { return grouped_experts(rows, sizes, experts); });
      const Result each = run(input, probe, [&](const torch::Tensor& rows) {
        return run_each_expert(rows, sizes, [&](int64_t e, const torch::Tensor& mine) { return experts[static_cast<std::size_t>(e)]->as<Mlp>()->forward(mine); });
      });
      const std::string what = std::string(four_bit ? "nf4 " : "dense ") + c10::toString(dtype);
      EXPECT_TRUE(grouped.out.equal(each.out)) << what;
      EXPECT_TRUE(grouped.grad.equal(each.grad)) << what;
      EXPECT_GT(grouped.grad.abs().sum().item<double>(), 0) << what;
    }
  }
}

TEST(ExpertBank, AnAdapterOnAnyExpertKeepsThePerExpertPath) {
  CausalLM model = moe_model(true, at::kFloat);
  EXPECT_TRUE(can_group_experts(experts_of(model)));
  LoraOptions lora;
  lora.r = 2;
  lora.target_modules = {"w2", "down_proj"};
  inject_lora(model, lora, 1);
  EXPECT_FALSE(can_group_experts(experts_of(model)));
}

}  // namespace
}  // namespace qtune
