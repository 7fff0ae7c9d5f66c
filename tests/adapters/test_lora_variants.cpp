// LoRA variants without a reference library: DoRA's gradients (the trainer's float64 sums against autograd,
// and the magnitude's against finite differences, with and without biases and dropout), PiSSA / OLoRA starts
// (the layer starts as the base: residual + s·B·A = W; the randomized SVD approaches the full one), the
// adapter saved for the original base giving the trained model's logits there, and the refused combinations.
#include <gtest/gtest.h>

#include "adapters/lora.h"
#include "adapters/lora_init.h"
#include "adapters/peft_format.h"
#include "core/error.h"
#include "models/model_loader.h"
#include "tests/support/test_support.h"
#include "trainer/gradient_reducer.h"

namespace qtune {
namespace {

LoraOptions options(const std::string& init, bool dora, at::ScalarType dtype = at::kFloat) {
  LoraOptions o;
  o.r = 3, o.alpha = 6, o.dropout = 0, o.target_linear = true, o.init = init, o.use_dora = dora, o.dtype = dtype;
  return o;
}

CausalLM float64_model(const std::string& arch) {
  LoadOptions f64;
  f64.dtype = at::kDouble;
  return load_causal_lm(test::make_tiny_model(arch), f64);
}

// B random and m off its start, so that every DoRA term matters.
void move_off_start(CausalLM& model) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(5);
  for (LoraAdapterImpl* a : lora_adapters(model)) {
    a->lora_B.normal_(0, 0.1);
    a->magnitude.mul_(1 + 0.2 * torch::randn(a->magnitude.sizes(), a->magnitude.options()));
  }
}

// sum(logits · probe) for a fixed batch and probe; dropout masks from `dropout_seed`.
torch::Tensor probe_loss(CausalLM& model, uint64_t dropout_seed) {
  torch::manual_seed(9);
  const torch::Tensor ids = torch::randint(3, 300, {2, 9}, torch::kLong);
  const torch::Tensor probe = torch::randn({2, 9, 300}, torch::kDouble);
  torch::manual_seed(dropout_seed);
  return (model->forward(ids) * probe).sum();
}

void check_dora_sums_equal_autograd(const std::string& arch, double dropout) {
  CausalLM model = float64_model(arch);
  LoraOptions o = options("kaiming", true, at::kDouble);
  o.dropout = dropout;
  inject_lora(model, o, 1);
  model->train();
  move_off_start(model);
  probe_loss(model, 77).backward();
  std::vector<torch::Tensor> autograd;
  for (auto& [name, p] : lora_state(model)) autograd.push_back(p.grad().clone()), p.mutable_grad() = torch::Tensor();
  GradientReducer reducer(lora_adapters(model), at::kDouble, nullptr, 1);
  probe_loss(model, 77).backward();  // the same dropout masks, into the sums
  reducer.finish();
  std::size_t i = 0;
  for (auto& [name, p] : lora_state(model)) EXPECT_LE(test::max_relative_error(p.grad(), autograd[i++]), 1e-12) << arch << " " << name;
  EXPECT_EQ(i, 3 * lora_adapters(model).size());
}

TEST(Dora, TrainerSumsEqualAutogradGradients) {
  check_dora_sums_equal_autograd("llama", 0);
  check_dora_sums_equal_autograd("qwen2", 0);    // q/k/v biases: x·Wᵀ is y − b
  check_dora_sums_equal_autograd("llama", 0.3);  // dropout: x·Wᵀ of the dropped x
}

TEST(Dora, MagnitudeGradientMatchesFiniteDifferences) {
  CausalLM model = float64_model("qwen2");
  inject_lora(model, options("kaiming", true, at::kDouble), 1);
  move_off_start(model);
  probe_loss(model, 1).backward();
  LoraAdapterImpl* a = lora_adapters(model)[2];  // v_proj of layer 0
  const double h = 1e-5;
  for (int64_t i : {int64_t{0}, a->magnitude.numel() - 1}) {
    torch::NoGradGuard no_grad;
    const double v = a->magnitude[i].item<double>();
    a->magnitude[i] = v + h;
    const double plus = probe_loss(model, 1).item<double>();
    a->magnitude[i] = v - h;
    const double minus = probe_loss(model, 1).item<double>();
    a->magnitude[i] = v;
    EXPECT_NEAR(a->magnitude.grad()[i].item<double>(), (plus - minus) / (2 * h), 1e-6 * std::abs((plus - minus) / (2 * h)) + 1e-9);
  }
}

TEST(Dora, StartsAsTheBaseAndMergesAsItComputes) {
  CausalLM base = load_causal_lm(test::make_tiny_model("llama"));
  CausalLM model = load_causal_lm(test::make_tiny_model("llama"));
  inject_lora(model, options("kaiming", true), 1);
  const torch::Tensor ids = torch::randint(3, 300, {1, 7}, torch::kLong);
  torch::NoGradGuard no_grad;
  EXPECT_LE(test::max_relative_error(model->forward(ids), base->forward(ids)), 1e-6) << "B = 0 and m = ‖W‖: the base";
  move_off_start(model);
  FrozenLinear q = model->projections()[0].second;
  const torch::Tensor x = torch::randn({4, q->weight().in_features()});
  const torch::Tensor merged = lora_of(q)->merged_weight(q->weight().dequantize());
  EXPECT_LE(test::max_relative_error(q->forward(x), torch::matmul(x, merged.t())), 1e-5);
}

TEST(PissaOlora, TheLayerStartsAsTheBase) {
  for (const std::string init : {"pissa", "pissa_niter_2", "olora"}) {
    CausalLM base = load_causal_lm(test::make_tiny_model("qwen2"));
    CausalLM model = load_causal_lm(test::make_tiny_model("qwen2"));
    inject_lora(model, options(init, false), 1);
    torch::NoGradGuard no_grad;
    const auto projections = model->projections();
    for (std::size_t i = 0; i < projections.size(); ++i) {
      const FrozenLinear& linear = projections[i].second;
      const LoraAdapterImpl* a = lora_of(linear);
      EXPECT_GT(a->lora_B.abs().max().item<double>(), 0) << init << ": B comes from W";
      EXPECT_LE(test::max_relative_error(a->merged_weight(linear->weight().dequantize()), base->projections()[i].second->weight().dequantize()), 1e-5)
          << init << " " << projections[i].first;
    }
    const torch::Tensor ids = torch::randint(3, 300, {1, 7}, torch::kLong);
    EXPECT_LE(test::max_relative_error(model->forward(ids), base->forward(ids)), 1e-4) << init;
  }
}

TEST(PissaOlora, RandomizedSvdApproachesTheFullOne) {
  // A weight with a decaying spectrum, as trained weights have (a random one's is flat, where no R directions lead).
  torch::manual_seed(3);
  const torch::Tensor u = std::get<0>(torch::linalg_qr(torch::randn({48, 32}))), v = std::get<0>(torch::linalg_qr(torch::randn({32, 32})));
  const torch::Tensor w = torch::matmul(u * torch::pow(0.7, torch::arange(32)).unsqueeze(0), v.t());  // [48, 32]
  // Subspace iteration converges as (s₅/s₄)^(2N+1) = 0.7^33 ≈ 1e-5 for N = 16.
  const LoraStart full = lora_start_from_base("pissa", w, 4, 2.0, 1), fast = lora_start_from_base("pissa_niter_16", w, 4, 2.0, 1);
  EXPECT_LE(test::max_relative_error(torch::matmul(fast.B, fast.A), torch::matmul(full.B, full.A)), 1e-4);
  EXPECT_LE(test::max_relative_error(fast.residual + torch::matmul(fast.B, fast.A) * 2.0, w), 1e-6);
  const LoraStart wide = lora_start_from_base("pissa_niter_16", w.t(), 4, 2.0, 1);  // wide: factored through its transpose
  EXPECT_LE(test::max_relative_error(torch::matmul(wide.B, wide.A), torch::matmul(full.B, full.A).t()), 1e-4);
}

TEST(PissaOlora, TheSavedAdapterGivesTheTrainedModelOnTheOriginalBase) {
  const std::string dir = test::make_tiny_model("llama");
  for (const std::string init : {"pissa", "olora"}) {
    CausalLM trained = load_causal_lm(dir);
    const LoraOptions o = options(init, false);
    inject_lora(trained, o, 1);
    {
      torch::NoGradGuard no_grad;
      torch::manual_seed(2);
      for (auto& [name, p] : lora_state(trained)) p.add_(torch::randn(p.sizes()) * 0.05);  // "training"
    }
    const std::string out = test::temp_dir("pissa-out"), checkpoint = test::temp_dir("pissa-checkpoint");
    save_peft_adapter(trained, o, out, dir);
    save_peft_adapter(trained, o, checkpoint, dir, PeftSave::kAsTrained);
    EXPECT_EQ(read_peft_adapter(out).options.r, 2 * o.r) << "[A; A0], [B, -B0]";
    CausalLM original = load_causal_lm(dir), resumed = load_causal_lm(dir);
    load_peft_adapter(original, out);
    load_peft_adapter(resumed, checkpoint);  // rebuilds the residual base
    torch::NoGradGuard no_grad;
    const torch::Tensor ids = torch::randint(3, 300, {2, 9}, torch::kLong), expected = trained->forward(ids);
    EXPECT_LE(test::max_relative_error(original->forward(ids), expected), 1e-4) << init;
    EXPECT_LE(test::max_relative_error(resumed->forward(ids), expected), 1e-6) << init;
  }
}

TEST(LoraVariants, RefusedCombinations) {
  CausalLM model = load_causal_lm(test::make_tiny_model("llama"));
  EXPECT_THROW(inject_lora(model, options("pissa", true), 1), InputError);  // DoRA cannot be converted back
  EXPECT_THROW(inject_lora(model, options("pissa_niter_x", false), 1), InputError);
  LoraOptions too_big = options("olora", false);
  too_big.r = 4096;
  EXPECT_THROW(inject_lora(model, too_big, 1), InputError);
}

}  // namespace
}  // namespace qtune
