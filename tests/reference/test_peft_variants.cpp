// qtune's DoRA, PiSSA and OLoRA against HF PEFT (tests/reference/peft_variants.py, ctest Reference.lora_variants):
// a PEFT DoRA adapter gives in qtune PEFT's logits, loss and gradients (A, B and the magnitude) on a float32 and on
// an NF4 base (transformers + bitsandbytes), its start magnitudes ||deq(W) + s·B·A|| are PEFT's, and `qtune merge`
// writes merge_and_unload's weights; a DoRA adapter qtune trained gives in PEFT qtune's logits; PiSSA's and OLoRA's
// starts (A, B and the residual base; OLoRA's re-quantized on an NF4 base) equal PEFT's; a PiSSA run's final adapter, converted for the original base,
// and its checkpoint, as trained, give in PEFT the logits qtune's trained model gives.
#include <gtest/gtest.h>

#include <iostream>

#include "adapters/lora.h"
#include "adapters/peft_format.h"
#include "models/linear4bit.h"
#include "models/model_loader.h"
#include "models/safetensors.h"
#include "tests/reference/reference_files.h"
#include "tests/support/test_support.h"

namespace qtune {
namespace {

// float32 on both sides, the same formulas; what remains is summation order (DoRA adds a norm over each row).
constexpr double kTolerance = 1e-5;
// SVD and QR: the same LAPACK calls on the same float32 matrix (both sides use this torch build), so they agree to
// the bit today; the margin allows another call order's rounding.
constexpr double kFactorTolerance = 1e-6;
// A residual re-quantized to NF4 with double quantization: the nested absmax offset is the mean of the block absmax,
// which bitsandbytes sums in float32 (its rounding depends on the thread count) and qtune in float64 (see
// Bnb4bitReference); a last-bit offset difference shifts every absmax by an ulp and can move one block's 8-bit code a
// step. Measured: 2.2e-4 of the largest value in one block of 14 projections; every other element within 2e-7.
constexpr double kRequantizedTolerance = 1e-3;

std::string float_base(const std::string& arch) { return test::reference_path("models", arch); }
// The NF4 (double-quantized) copy bitsandbytes ran on.
std::string nf4_base(const std::string& arch) { return test::reference_path("lora_variants", arch + "/quantized"); }
CausalLM load_base(const std::string& dir) { return load_causal_lm(dir, {at::kFloat, torch::kCPU}); }
CausalLM base_model(const std::string& arch) { return load_base(float_base(arch)); }

torch::Tensor causal_lm_loss(const torch::Tensor& logits, const torch::Tensor& ids) {
  const int64_t V = logits.size(-1);
  return torch::nll_loss(torch::log_softmax(logits.slice(1, 0, -1).reshape({-1, V}), -1), ids.slice(1, 1).reshape({-1}));
}

// DoRA's start on `model`'s weights: m = ||deq(W) + s·B·A|| for PEFT's A and B, against PEFT's start.
double check_dora_start(CausalLM& model, const std::string& dir) {
  auto start = SafetensorsFile::open(dir + "/start.safetensors");
  double worst = 0;
  for (auto& [name, linear] : model->projections()) {
    const LoraAdapterImpl* lora = lora_of(linear);
    LoraTensors t{start->view(name + ".A"), start->view(name + ".B"), torch::Tensor()};
    lora->variant().init(t, linear->weight().dequantize().to(torch::kFloat), lora->scale());
    worst = std::max(worst, test::max_relative_error(t.magnitude, start->view(name + ".magnitude")));
  }
  EXPECT_LE(worst, kTolerance) << dir << ": DoRA's start magnitudes";
  return worst;
}

void check_dora_adapter(const std::string& arch, const std::string& base_dir, const std::string& adapter_case) {
  const std::string dir = test::reference_path("lora_variants", arch + "/" + adapter_case);
  CausalLM model = load_base(base_dir);
  load_peft_adapter(model, dir);
  auto ref = SafetensorsFile::open(dir + "/reference.safetensors");
  const torch::Tensor ids = ref->view("input_ids");
  const torch::Tensor logits = model->forward(ids);
  double worst = test::max_relative_error(logits, ref->view("logits"));
  EXPECT_LE(worst, kTolerance) << arch << " DoRA logits";
  const torch::Tensor loss = causal_lm_loss(logits, ids);
  EXPECT_LE(test::max_relative_error(loss.reshape({1}), ref->view("loss")), kTolerance) << "loss";
  loss.backward();
  int compared = 0, magnitudes = 0;
  for (const auto& [name, param] : lora_state(model)) {
    const TensorInfo* info = ref->find("grad." + name);
    ASSERT_NE(info, nullptr) << "PEFT has no gradient for " << name;
    const double err = test::max_relative_error(param.grad(), ref->view(*info));
    EXPECT_LE(err, kTolerance) << name;
    worst = std::max(worst, err);
    ++compared;
    magnitudes += name.find("lora_magnitude_vector") != std::string::npos ? 1 : 0;
  }
  EXPECT_EQ(magnitudes * 3, compared) << "every module has A, B and a magnitude";
  const double start = check_dora_start(model, dir);
  std::cout << arch << " PEFT " << adapter_case << " adapter: logits, loss and " << compared << " gradients, max relative difference "
            << worst << "; start magnitudes " << start << "\n";
}

void check_dora_merge(const std::string& arch) {
  const std::string dir = test::reference_path("lora_variants", arch + "/dora");
  const std::string out = test::temp_dir("dora-merged");
  const auto merged = test::run_qtune("merge --base " + test::reference_path("models", arch) + " --adapter " + dir + " --out " + out + " --dtype f32 --force");
  ASSERT_EQ(merged.exit_code, 0) << merged.out;
  auto got = SafetensorsFile::open(out + "/model.safetensors");
  auto expected = SafetensorsFile::open(dir + "/merged.safetensors");
  double worst = 0;
  for (const auto& info : expected->tensors()) worst = std::max(worst, test::max_relative_error(got->view(info.name), expected->view(info)));
  EXPECT_LE(worst, kTolerance) << arch << " DoRA merge vs merge_and_unload";
  std::cout << arch << " DoRA merge vs PEFT merge_and_unload: max relative difference " << worst << "\n";
}

// logits of `model` against the stored ones.
void check_logits(CausalLM& model, SafetensorsFile& ref, const std::string& key, const torch::Tensor& ids, const std::string& what) {
  torch::NoGradGuard no_grad;
  const double err = test::max_relative_error(model->forward(ids), ref.view(key));
  EXPECT_LE(err, kTolerance) << what;
  std::cout << what << ": max relative difference " << err << "\n";
}

void check_trained_dora(const std::string& arch) {
  const std::string dir = test::reference_path("lora_variants", arch + "/dora_qtune");
  CausalLM model = base_model(arch);
  load_peft_adapter(model, dir + "/run");
  double moved = 0;  // training moved m off ||W + s·B·A||, so the magnitudes take part in the comparison
  for (auto& [name, linear] : model->projections()) {
    const LoraAdapterImpl* lora = lora_of(linear);
    LoraTensors start = lora->trained();
    lora->variant().init(start, linear->weight().dequantize(), lora->scale());
    moved = std::max(moved, (lora->magnitude - start.magnitude).abs().max().item<double>());
  }
  EXPECT_GT(moved, 1e-3) << "the trained magnitudes are still at their start";
  auto ref = SafetensorsFile::open(dir + "/logits.safetensors");
  check_logits(model, *ref, "logits", ref->view("input_ids"), arch + " qtune-trained DoRA adapter in PEFT vs qtune");
}

void check_start(const std::string& arch, const std::string& base_dir, const std::string& init, const std::string& reference_case) {
  auto ref = SafetensorsFile::open(test::reference_path("lora_variants", arch + "/" + reference_case + "/init.safetensors"));
  CausalLM model = load_base(base_dir);
  LoraOptions o;
  o.r = 4, o.alpha = 8, o.dropout = 0, o.target_linear = true, o.init = init;
  inject_lora(model, o, 0);
  double worst = 0, worst_residual = 0;
  for (auto& [name, linear] : model->projections()) {
    const LoraAdapterImpl* lora = lora_of(linear);
    ASSERT_NE(lora, nullptr) << name;
    const torch::Tensor A = ref->view(name + ".A"), B = ref->view(name + ".B");
    // Singular vectors are defined up to a sign per pair: compare A and B after matching each row's sign.
    const torch::Tensor sign = (lora->lora_A * A).sum(1).sign().unsqueeze(1);
    worst = std::max({worst, test::max_relative_error(lora->lora_A * sign, A), test::max_relative_error(lora->lora_B * sign.t(), B)});
    worst_residual = std::max(worst_residual, test::max_relative_error(linear->weight().dequantize(), ref->view(name + ".residual")));
  }
  EXPECT_LE(worst, kFactorTolerance) << arch << " " << reference_case << " start: A and B";
  const bool requantized = dynamic_cast<const QuantizedWeight*>(&model->projections()[0].second->weight()) != nullptr;
  EXPECT_LE(worst_residual, requantized ? kRequantizedTolerance : kFactorTolerance) << arch << " " << reference_case << " start: the residual base";
  std::cout << arch << " " << reference_case << " start vs PEFT: A and B, max relative difference " << worst << "; the residual base "
            << worst_residual << "\n";
}

void check_trained_pissa(const std::string& arch) {
  const std::string dir = test::reference_path("lora_variants", arch + "/pissa_qtune");
  auto ref = SafetensorsFile::open(dir + "/logits.safetensors");
  const torch::Tensor ids = ref->view("input_ids");
  CausalLM trained = base_model(arch);
  load_peft_adapter(trained, dir + "/run/checkpoint-3");  // as trained: the residual base rebuilt, rank R
  check_logits(trained, *ref, "checkpoint", ids, arch + " PiSSA checkpoint in PEFT vs qtune");
  check_logits(trained, *ref, "final", ids, arch + " PiSSA final adapter (for the original base) in PEFT vs the trained model in qtune");
}

void check_architecture(const std::string& arch) {
  QTUNE_REQUIRE_REFERENCE_FILE(test::reference_path("lora_variants", arch + "/pissa_qtune/logits.safetensors"), "lora_variants");
  check_dora_adapter(arch, float_base(arch), "dora");
  check_dora_adapter(arch, nf4_base(arch), "dora4bit");
  check_dora_merge(arch);
  check_trained_dora(arch);
  for (const std::string init : {"pissa", "olora"}) check_start(arch, float_base(arch), init, init);
  check_start(arch, nf4_base(arch), "olora", "olora4bit");  // re-quantized residual, dequantized by bitsandbytes
  check_trained_pissa(arch);
}

TEST(PeftVariants, Llama) { check_architecture("llama"); }
TEST(PeftVariants, Qwen2) { check_architecture("qwen2"); }

}  // namespace
}  // namespace qtune
