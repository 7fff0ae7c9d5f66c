// LoRA adapters: gradients against central finite differences (float64), the B = 0 identity at init,
// the ReferenceModel guard (base alone, or base + a frozen reference copy), float64 gradient sums (equal to
// autograd's gradients, and to the bit the same however the batch is split), PEFT's init, rsLoRA scale, target selection and its errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "adapters/lora.h"
#include "core/error.h"
#include "models/model_loader.h"
#include "tests/support/test_support.h"
#include "trainer/gradient_reducer.h"

namespace qtune {
namespace {

// A float64 model computes in float64 throughout (RmsNorm and the attention softmax keep float64), so
// finite differences of the whole model's loss match the LoRA gradients to 1e-6.
constexpr double kModelFdTolerance = 1e-6;

LoraOptions all_linear(int64_t r, at::ScalarType dtype = at::kFloat) {
  LoraOptions o;
  o.r = r;
  o.alpha = 2.0 * static_cast<double>(r);
  o.dropout = 0.0;
  o.target_linear = true;
  o.dtype = dtype;
  return o;
}

// Gives every B (and A) of the model random values, so that every LoRA gradient is nonzero.
void randomize_adapters(CausalLM& model, double scale, uint64_t seed) {
  torch::manual_seed(seed);
  torch::NoGradGuard no_grad;
  for (auto& [name, t] : lora_state(model)) t.copy_(torch::randn(t.sizes(), torch::kDouble) * scale);
}

// Each LoRA parameter with the gradient sum the reducer keeps for it, in lora_state() order.
std::vector<std::pair<torch::Tensor, torch::Tensor>> gradient_sums(CausalLM& model, const GradientReducer& reducer) {
  std::vector<std::pair<torch::Tensor, torch::Tensor>> sums;
  const auto adapters = lora_adapters(model);
  for (std::size_t i = 0; i < adapters.size(); ++i) {
    sums.emplace_back(adapters[i]->lora_A, reducer.sums(i).A);
    sums.emplace_back(adapters[i]->lora_B, reducer.sums(i).B);
  }
  return sums;
}

torch::Tensor token_batch() {
  torch::manual_seed(7);
  return torch::randint(3, 300, {2, 9}, torch::kLong);  // [B, T]
}

TEST(LoraAdapter, DeltaGradientsMatchFiniteDifferences) {
  // One adapter alone, all in float64: autograd vs central differences of sum(delta(x) * probe).
  LoraOptions o = all_linear(3, at::kDouble);
  o.alpha = 5;
  LoraAdapterImpl lora(12, 10, o, 1, "m");
  {
    torch::NoGradGuard no_grad;
    lora.lora_B.normal_(0, 0.5);
  }
  torch::manual_seed(3);
  torch::Tensor x = torch::randn({4, 12}, torch::kDouble);     // [N, in]
  torch::Tensor probe = torch::randn({4, 10}, torch::kDouble);  // [N, out]
  auto loss = [&] { return (lora.delta(x) * probe).sum(); };
  loss().backward();
  const double h = 1e-5;
  for (torch::Tensor* p : {&lora.lora_A, &lora.lora_B}) {
    torch::Tensor flat = p->detach().view(-1), grad = p->grad().view(-1);
    std::vector<double> numeric, analytic;
    for (int64_t i = 0; i < flat.numel(); i += 3) {
      const double v = flat[i].item<double>();
      torch::NoGradGuard no_grad;
      flat[i] = v + h;
      const double plus = loss().item<double>();
      flat[i] = v - h;
      const double minus = loss().item<double>();
      flat[i] = v;
      numeric.push_back((plus - minus) / (2 * h));
      analytic.push_back(grad[i].item<double>());
    }
    const double err = test::max_relative_error(torch::tensor(analytic), torch::tensor(numeric));
    EXPECT_LE(err, 1e-6) << "max relative difference " << err;
  }
}

TEST(LoraAdapter, ModelGradientsMatchFiniteDifferences) {
  // The whole tiny model in float64 with adapters on every projection; loss = sum(logits * probe).
  const std::string dir = test::make_tiny_model("llama");
  LoadOptions f64;
  f64.dtype = at::kDouble;  // the loader converts every tensor to the compute dtype, float64 included
  CausalLM model = load_causal_lm(dir, f64);
  inject_lora(model, all_linear(4, at::kDouble), 11);
  randomize_adapters(model, 0.1, 5);
  const torch::Tensor ids = token_batch();
  torch::manual_seed(9);
  const torch::Tensor probe = torch::randn({2, 9, 300}, torch::kDouble);  // [B, T, V]
  auto loss = [&] { return (model->forward(ids) * probe).sum(); };
  loss().backward();

  auto state = lora_state(model);
  // Fourth-order central differences at h = 1e-2 (see kModelFdTolerance for why not a tiny h).
  const double h = 1e-2;
  std::vector<double> numeric, analytic;
  for (const char* name : {"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight",
                           "base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight",
                           "base_model.model.model.layers.0.mlp.gate_proj.lora_A.weight",
                           "base_model.model.model.layers.1.self_attn.o_proj.lora_B.weight",
                           "base_model.model.model.layers.1.mlp.down_proj.lora_A.weight",
                           "base_model.model.model.layers.1.mlp.up_proj.lora_B.weight"}) {
    auto it = std::find_if(state.begin(), state.end(), [&](const auto& s) { return s.first == name; });
    ASSERT_NE(it, state.end()) << name;
    torch::Tensor flat = it->second.detach().view(-1), grad = it->second.grad().view(-1);
    for (int64_t i : {int64_t{0}, flat.numel() / 3, flat.numel() - 1}) {
      const double v = flat[i].item<double>();
      torch::NoGradGuard no_grad;
      auto at = [&](double d) {
        flat[i] = v + d;
        return loss().item<double>();
      };
      numeric.push_back((8 * (at(h) - at(-h)) - (at(2 * h) - at(-2 * h))) / (12 * h));
      flat[i] = v;
      analytic.push_back(grad[i].item<double>());
    }
  }
  const double err = test::max_relative_error(torch::tensor(analytic), torch::tensor(numeric));
  EXPECT_LE(err, kModelFdTolerance) << "max relative difference " << err;
}

TEST(LoraAdapter, Float64GradientSumsEqualAutogradGradients) {
  // Float64 model: the sums and autograd's .grad are the same sums of the same float64 products.
  LoadOptions f64;
  f64.dtype = at::kDouble;
  CausalLM model = load_causal_lm(test::make_tiny_model("llama"), f64);
  inject_lora(model, all_linear(4, at::kDouble), 11);
  randomize_adapters(model, 0.1, 5);
  const torch::Tensor ids = token_batch();
  torch::manual_seed(9);
  const torch::Tensor probe = torch::randn({2, 9, 300}, torch::kDouble);
  (model->forward(ids) * probe).sum().backward();
  std::vector<torch::Tensor> autograd;
  for (auto& [name, p] : lora_state(model)) autograd.push_back(p.grad().clone());
  GradientReducer reducer(lora_adapters(model), at::kDouble, nullptr, 1);  // the backwards now add into its float64 sums
  const auto sums = gradient_sums(model, reducer);
  (model->forward(ids) * probe).sum().backward();  // into the sums: .grad stays as it was
  ASSERT_EQ(sums.size(), autograd.size());
  for (std::size_t i = 0; i < sums.size(); ++i) {
    EXPECT_LE(test::max_relative_error(sums[i].second, autograd[i]), 1e-12) << i;
    EXPECT_TRUE(torch::equal(sums[i].first.grad(), autograd[i])) << i;
  }
}

TEST(LoraAdapter, Float64GradientSumsDoNotDependOnHowTheBatchIsSplit) {
  // A 4-bit float32 model, padded rows: one batch of 4 sequences against two batches of 2. Per-sequence
  // GEMMs and float64 sums make every float32-rounded gradient equal to the bit.
  LoadOptions nf4;
  nf4.quantize = QuantizeOptions{};
  CausalLM model = load_causal_lm(test::make_tiny_model("llama"), nf4);
  inject_lora(model, all_linear(4), 11);
  randomize_adapters(model, 0.1, 5);
  GradientReducer reducer(lora_adapters(model), at::kDouble, nullptr, 1);  // the backwards now add into its float64 sums
  const auto sums = gradient_sums(model, reducer);
  torch::manual_seed(3);
  const int64_t T = 40;
  torch::Tensor ids = torch::randint(3, 300, {4, T}, torch::kLong);
  torch::Tensor segments = torch::ones({4, T}, torch::kLong);
  for (int64_t row = 0; row < 4; ++row) segments[row].slice(0, 20 + 5 * row) = 0;  // padding
  const torch::Tensor positions = torch::arange(T).expand({4, T}).contiguous();
  const torch::Tensor probe = torch::randn({4, T, 300});
  auto backward = [&](int64_t begin, int64_t end) {
    const SequenceLayout layout{segments.slice(0, begin, end), positions.slice(0, begin, end)};
    (model->forward(ids.slice(0, begin, end), layout) * probe.slice(0, begin, end)).sum().backward();
  };
  backward(0, 4);
  std::vector<torch::Tensor> whole;
  for (const auto& [p, sum] : sums) whole.push_back(sum.clone()), sum.zero_();
  backward(0, 2);
  backward(2, 4);
  for (std::size_t i = 0; i < sums.size(); ++i) {
    EXPECT_LE(test::max_relative_error(sums[i].second, whole[i]), 1e-13) << i;
    EXPECT_TRUE(torch::equal(sums[i].second.to(torch::kFloat), whole[i].to(torch::kFloat))) << i;
  }
}

TEST(LoraAdapter, ZeroBLeavesTheModelUnchangedAndTheReferenceGuardDropsAdapters) {
  const std::string dir = test::make_tiny_model("llama");
  CausalLM model = load_causal_lm(dir);
  const torch::Tensor ids = token_batch();
  torch::NoGradGuard no_grad;
  const torch::Tensor base = model->forward(ids);
  EXPECT_TRUE(model->parameters().empty());  // base weights are buffers
  const auto adapted = inject_lora(model, all_linear(8), 3);
  EXPECT_EQ(adapted.size(), 14u);
  EXPECT_TRUE(model->forward(ids).equal(base));  // B = 0 at init: exactly the base model
  randomize_adapters(model, 0.05, 1);
  const torch::Tensor adapted_logits = model->forward(ids);
  EXPECT_GT((adapted_logits - base).abs().max().item<double>(), 1e-3);
  {
    ReferenceModel reference;  // no reference copies: the base alone
    EXPECT_TRUE(model->forward(ids).equal(base));
  }
  EXPECT_TRUE(model->forward(ids).equal(adapted_logits));

  // With frozen copies the reference is base + the adapters as they were, whatever training does next.
  keep_reference_copies(model);
  randomize_adapters(model, 0.05, 2);
  const torch::Tensor moved = model->forward(ids);
  EXPECT_GT((moved - adapted_logits).abs().max().item<double>(), 1e-3);
  {
    ReferenceModel reference;
    EXPECT_LT((model->forward(ids) - adapted_logits).abs().max().item<double>(), 1e-5);
  }
  EXPECT_TRUE(model->forward(ids).equal(moved));
  remove_lora(model);
  EXPECT_TRUE(model->parameters().empty());
  EXPECT_TRUE(model->forward(ids).equal(base));
}

TEST(LoraAdapter, ParametersAreExactlyTheLoraFactors) {
  CausalLM model = load_causal_lm(test::make_tiny_model("qwen2"));  // qkv biases must stay frozen too
  LoraOptions o = all_linear(4);
  o.target_linear = false;
  o.target_modules = {"v_proj", "q_proj"};
  inject_lora(model, o, 0);
  const auto params = model->named_parameters();
  EXPECT_EQ(params.size(), 2u * 2u * 2u);  // 2 layers x {q, v} x {A, B}
  for (const auto& p : params) {
    EXPECT_TRUE(p.value().requires_grad()) << p.key();
    EXPECT_TRUE(p.key().find(".adapter.lora_") != std::string::npos) << p.key();
    EXPECT_EQ(p.value().scalar_type(), at::kFloat);
  }
  EXPECT_EQ(lora_state(model).size(), params.size());
}

TEST(LoraAdapter, InitFollowsPeft) {
  LoraOptions o = all_linear(16);
  LoraAdapterImpl a(256, 64, o, 42, "model.layers.0.self_attn.q_proj");
  // kaiming_uniform_(a = sqrt(5)) on [R, in]: U(-1/sqrt(in), 1/sqrt(in)); B = 0.
  const double bound = 1.0 / std::sqrt(256.0);
  EXPECT_LE(a.lora_A.abs().max().item<double>(), bound);
  EXPECT_GT(a.lora_A.abs().max().item<double>(), 0.95 * bound);
  EXPECT_NEAR(a.lora_A.std().item<double>(), bound / std::sqrt(3.0), 0.05 * bound);
  EXPECT_EQ(a.lora_B.abs().max().item<double>(), 0.0);
  EXPECT_EQ(a.lora_A.sizes(), (std::vector<int64_t>{16, 256}));
  EXPECT_EQ(a.lora_B.sizes(), (std::vector<int64_t>{64, 16}));
  // Deterministic per (seed, module name).
  LoraAdapterImpl same(256, 64, o, 42, "model.layers.0.self_attn.q_proj");
  LoraAdapterImpl other(256, 64, o, 42, "model.layers.0.self_attn.k_proj");
  LoraAdapterImpl reseeded(256, 64, o, 43, "model.layers.0.self_attn.q_proj");
  EXPECT_TRUE(same.lora_A.equal(a.lora_A));
  EXPECT_FALSE(other.lora_A.equal(a.lora_A));
  EXPECT_FALSE(reseeded.lora_A.equal(a.lora_A));
  // "gaussian": N(0, (1/R)^2) as PEFT's normal_(std = 1/r).
  o.init = "gaussian";
  LoraAdapterImpl g(512, 8, o, 1, "m");
  EXPECT_NEAR(g.lora_A.std().item<double>(), 1.0 / 16, 0.1 / 16);
  EXPECT_EQ(g.lora_B.abs().max().item<double>(), 0.0);
}

TEST(LoraAdapter, ScaleAndRsLora) {
  LoraOptions o;
  o.r = 16;
  o.alpha = 32;
  EXPECT_DOUBLE_EQ(lora_scale(o), 2.0);
  o.rslora = true;
  EXPECT_DOUBLE_EQ(lora_scale(o), 8.0);
  o.target_linear = true;
  o.dropout = 0;
  LoraAdapterImpl lora(8, 5, o, 0, "m");
  {
    torch::NoGradGuard no_grad;
    lora.lora_B.normal_();
  }
  torch::Tensor x = torch::randn({3, 8});
  torch::Tensor expected = torch::matmul(torch::matmul(x, lora.lora_A.t()), lora.lora_B.t()) * 8.0;
  EXPECT_LE(test::max_relative_error(lora.delta(x), expected), 1e-6);
  EXPECT_LE(test::max_relative_error(lora.merged_weight(torch::zeros({5, 8})), torch::matmul(lora.lora_B, lora.lora_A) * 8.0), 1e-6);
}

TEST(LoraAdapter, Bf16InputUsesFp32MastersCastDown) {
  LoraOptions o = all_linear(4);
  LoraAdapterImpl lora(16, 8, o, 0, "m");
  {
    torch::NoGradGuard no_grad;
    lora.lora_B.normal_();
  }
  torch::Tensor x = torch::randn({2, 16}).to(at::kBFloat16);
  torch::Tensor y = lora.delta(x);
  EXPECT_EQ(y.scalar_type(), at::kBFloat16);
  y.sum().backward();
  EXPECT_EQ(lora.lora_A.grad().scalar_type(), at::kFloat);  // gradients land on the fp32 masters
  EXPECT_EQ(lora.lora_B.grad().scalar_type(), at::kFloat);
}

TEST(LoraAdapter, DropoutOnlyInTraining) {
  LoraOptions o = all_linear(4);
  o.dropout = 0.5;
  LoraAdapterImpl lora(32, 8, o, 0, "m");
  {
    torch::NoGradGuard no_grad;
    lora.lora_B.normal_();
  }
  torch::Tensor x = torch::randn({4, 32});
  lora.eval();
  EXPECT_TRUE(lora.delta(x).equal(lora.delta(x)));
  lora.train();
  EXPECT_FALSE(lora.delta(x).equal(lora.delta(x)));
}

TEST(LoraInject, TargetSelection) {
  CausalLM model = load_causal_lm(test::make_tiny_model("llama"));
  LoraOptions o = all_linear(2);
  o.target_linear = false;
  o.target_modules = {"v_proj", "q_proj", "down_proj", "q_proj"};
  const auto adapted = inject_lora(model, o, 0);
  const std::vector<std::string> expected = {"model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.v_proj", "model.layers.0.mlp.down_proj",
                                             "model.layers.1.self_attn.q_proj", "model.layers.1.self_attn.v_proj", "model.layers.1.mlp.down_proj"};
  EXPECT_EQ(adapted, expected);
  EXPECT_EQ(lora_target_modules(model->config(), o), expected);
  EXPECT_EQ(lora_target_names(o), (std::vector<std::string>{"down_proj", "q_proj", "v_proj"}));
  // A model loaded in eval mode gets adapters in eval mode.
  for (auto& [name, linear] : model->projections())
    if (lora_of(linear)) {
      EXPECT_FALSE(lora_of(linear)->is_training()) << name;
    }

  CausalLM all = load_causal_lm(test::make_tiny_model("llama"));
  EXPECT_EQ(inject_lora(all, all_linear(2), 0).size(), 14u);
  LoraOptions named = all_linear(2);
  named.target_linear = false;
  named.target_modules = {"all-linear"};
  EXPECT_EQ(lora_target_names(named), lora_target_names(all_linear(2)));
  EXPECT_EQ(lora_target_names(named).size(), 12u) << "the 7 separate, the 2 fused (Phi-3) and Mixtral's 3 expert names; not the router";
  const auto names = lora_target_names(named);
  EXPECT_EQ(std::count(names.begin(), names.end(), "gate"), 0) << "all-linear leaves an MoE router alone";
  named.target_modules = {"all-linear", "gate"};
  EXPECT_EQ(lora_target_names(named).size(), 13u) << "the router when listed";
}

TEST(LoraInject, BadOptionsAreInputErrors) {
  CausalLM model = load_causal_lm(test::make_tiny_model("llama"));
  LoraOptions o = all_linear(2);
  o.target_linear = false;
  o.target_modules = {"qkv_proj"};  // Phi-3's fused projection, which Llama lacks
  try {
    inject_lora(model, o, 0);
    FAIL() << "no error for a target the family lacks";
  } catch (const InputError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("LlamaForCausalLM has none of qkv_proj"), std::string::npos) << message;
    EXPECT_NE(message.find("q_proj k_proj v_proj o_proj gate_proj up_proj down_proj"), std::string::npos) << message;
  }

  EXPECT_TRUE(model->parameters().empty());  // nothing was attached
  o.target_modules = {};
  EXPECT_THROW(inject_lora(model, o, 0), InputError);
  o = all_linear(0);
  EXPECT_THROW(inject_lora(model, o, 0), InputError);
  o = all_linear(2);
  o.dropout = 1.0;
  EXPECT_THROW(inject_lora(model, o, 0), InputError);
  o = all_linear(2);
  o.init = "svd";
  EXPECT_THROW(inject_lora(model, o, 0), InputError);
  inject_lora(model, all_linear(2), 0);
  EXPECT_THROW(inject_lora(model, all_linear(2), 0), c10::Error);  // already adapted
  remove_lora(model);
  o = all_linear(2);
  o.target_linear = false;
  o.target_modules = {"q_proj", "qkv_proj"};  // as PEFT: the name Llama lacks is skipped
  EXPECT_EQ(inject_lora(model, o, 0).size(), 2u);
}

}  // namespace
}  // namespace qtune
