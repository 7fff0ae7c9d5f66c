// Streaming the 4-bit layers from host memory (offload_base) changes where the weights wait, not what the
// model computes: losses, logits and LoRA gradients equal the resident model's to the bit on the CPU,
// over several steps and with a no-gradient pass in between (a stale slot or a wrong prefetch would show).
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include "adapters/lora.h"
#include "models/chunked_log_probs.h"
#include "models/model_loader.h"
#include "tests/support/test_support.h"

namespace qtune {
namespace {

// LoRA on every linear, or (attention_only) on the attention projections: an MoE's experts then run grouped
// (models/expert_bank.h), its autograd node keeping the streamed layer's weights for the backward.
CausalLM lora_model(const std::string& dir, bool streamed, bool attention_only = false) {
  LoadOptions options;
  options.quantize = QuantizeOptions{};
  options.layers_on_host = streamed;
  CausalLM model = load_causal_lm(dir, options);
  LoraOptions lora;
  lora.r = 4;
  lora.dropout = 0.1;  // replayed by the recompute: streaming must not disturb the random stream either
  lora.target_linear = !attention_only;
  if (attention_only) lora.target_modules = {"q_proj", "k_proj", "v_proj", "o_proj"};
  inject_lora(model, lora, 3);
  auto generator = at::make_generator<at::CPUGeneratorImpl>(17);
  for (auto& [name, p] : lora_state(model)) {
    torch::NoGradGuard no_grad;
    p.copy_(at::normal(0.0, 0.05, p.sizes(), generator));  // B ≠ 0, so the adapters matter
  }
  model->set_gradient_checkpointing(true);
  if (streamed) model->stream_layers_from_host();
  model->train();
  return model;
}

struct Step {
  double loss = 0;
  torch::Tensor eval_logits;
  std::vector<torch::Tensor> gradients;
};

// Three training micro-steps (gradients accumulate), each followed by a no-gradient pass.
std::vector<Step> run(CausalLM& model) {
  torch::manual_seed(5);
  std::vector<Step> steps;
  for (int s = 0; s < 3; ++s) {
    const torch::Tensor ids = torch::randint(3, 300, {2, 9}), targets = torch::randint(3, 300, {2, 9});
    const torch::Tensor loss = -target_scores(model, ids, SequenceLayout::dense(2, 9), targets).log_probs.sum(torch::kDouble);
    loss.backward();
    Step step{loss.item<double>(), {}, {}};
    {
      torch::NoGradGuard no_grad;
      step.eval_logits = model->forward(ids);
    }
    for (auto& [name, p] : lora_state(model))  // (an MoE expert no token reached has none)
      step.gradients.push_back(p.grad().defined() ? p.grad().clone() : torch::zeros_like(p));
    steps.push_back(std::move(step));
  }
  return steps;
}

TEST(LayerStream, StreamedModelComputesExactlyWhatTheResidentOneDoes) {
  struct Case {
    std::string arch, extra;
    bool attention_only;
  };
  const std::string moe = "--layers 3 --experts 4 --experts-per-token 2 --moe-intermediate 32";
  for (const auto& [arch, extra, attention_only] :
       std::vector<Case>{{"llama", "--layers 5", false}, {"qwen2", "--layers 4", false}, {"qwen3_moe", moe, false}, {"qwen3_moe", moe, true}}) {
    SCOPED_TRACE(arch + (attention_only ? " (LoRA on attention)" : ""));
    const std::string dir = test::make_tiny_model(arch, extra);
    CausalLM resident = lora_model(dir, false, attention_only), streamed = lora_model(dir, true, attention_only);
    ASSERT_EQ(resident->layer_stream(), nullptr);
    ASSERT_NE(streamed->layer_stream(), nullptr);
    const std::vector<Step> expected = run(resident), got = run(streamed);
    for (std::size_t s = 0; s < expected.size(); ++s) {
      EXPECT_EQ(got[s].loss, expected[s].loss) << s;
      EXPECT_TRUE(got[s].eval_logits.equal(expected[s].eval_logits)) << s;
      ASSERT_EQ(got[s].gradients.size(), expected[s].gradients.size());
      for (std::size_t i = 0; i < expected[s].gradients.size(); ++i) EXPECT_TRUE(got[s].gradients[i].equal(expected[s].gradients[i])) << s << " " << i;
    }
  }
}

TEST(LayerStream, CopiesEachLayerOncePerPassExceptTheTwoLeftInTheSlots) {
  const std::string dir = test::make_tiny_model("llama", "--layers 5");
  CausalLM model = lora_model(dir, true);
  LayerStream& stream = *model->layer_stream();
  const int64_t L = 5;
  const torch::Tensor ids = torch::randint(3, 300, {1, 6}), targets = torch::randint(3, 300, {1, 6});
  auto step = [&] { (-target_scores(model, ids, SequenceLayout::dense(1, 6), targets).log_probs.sum()).backward(); };
  step();  // forward: all L; backward: the last two are still in the slots
  LayerStreamStats first = stream.take_stats();
  EXPECT_EQ(first.copies, L + (L - 2));
  step();  // forward starts on layers 0 and 1, left by the backward
  LayerStreamStats second = stream.take_stats();
  EXPECT_EQ(second.copies, 2 * (L - 2));
  EXPECT_EQ(second.bytes, second.copies * stream.host_bytes() / L);  // every layer has the same size
  EXPECT_EQ(stream.slot_bytes(), stream.host_bytes() / L);
  EXPECT_GT(second.copy_seconds, 0);
  EXPECT_EQ(second.hidden_fraction(), 0);  // nothing overlaps a CPU copy
  EXPECT_EQ(stream.take_stats().copies, 0);
  {  // DPO: the reference forward (no gradients) before the policy's leaves layers L-2 and L-1 in the slots
    torch::NoGradGuard no_grad;
    model->forward(ids);
  }
  step();
  EXPECT_EQ(stream.take_stats().copies, (L - 2) + L + (L - 2));  // what the memory plan counts for DPO
}

TEST(LayerStream, HostCopyHoldsTheCodesTheLoaderMade) {
  const std::string dir = test::make_tiny_model("llama", "--layers 3");
  CausalLM resident = lora_model(dir, false), streamed = lora_model(dir, true);
  auto a = resident->projections(), b = streamed->projections();
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    auto& qa = dynamic_cast<const QuantizedWeight&>(a[i].second->weight()).quantized();
    auto& qb = dynamic_cast<const QuantizedWeight&>(b[i].second->weight()).quantized();
    EXPECT_TRUE(qa.packed.equal(qb.packed)) << a[i].first;
    EXPECT_TRUE(dequantize_absmax(qa.scales).equal(dequantize_absmax(qb.scales))) << a[i].first;
  }
}

TEST(LayerStream, AWeightUsedOutsideItsLayersTurnThrows) {
  const std::string dir = test::make_tiny_model("llama", "--layers 2");
  CausalLM model = lora_model(dir, true);
  FrozenLinear q_proj = model->projections().front().second;
  try {
    torch::NoGradGuard no_grad;
    q_proj->forward(torch::randn({1, 64}));
    FAIL() << "expected an error";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("outside its layer's turn"), std::string::npos) << e.what();
  }
}

TEST(LayerStream, TrainingWithoutCheckpointingIsRefused) {
  const std::string dir = test::make_tiny_model("llama", "--layers 2");
  CausalLM model = lora_model(dir, true);
  model->set_gradient_checkpointing(false);
  EXPECT_THROW(model->forward(torch::randint(3, 300, {1, 4})), c10::Error);
  torch::NoGradGuard no_grad;
  EXPECT_NO_THROW(model->forward(torch::randint(3, 300, {1, 4})));  // evaluation needs no checkpointing
}

}  // namespace
}  // namespace qtune
