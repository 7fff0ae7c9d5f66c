// qtune's LoRA against HF PEFT on the four tiny models (tests/reference/peft_lora.py, ctest Reference.lora):
// an adapter qtune trained gives in PEFT the logits it gives in qtune; an adapter PEFT initialized gives in qtune
// PEFT's logits, loss and lora_A / lora_B gradients (rsLoRA on and off, all projections and a subset); `qtune merge`
// writes what PEFT's merge_and_unload writes on a 16-bit base, and bitsandbytes' dequantize(W) + PEFT's delta on
// a 4-bit base; on Mixtral and Qwen3-MoE the same for adapters on every expert and the router, and the merged
// folder loads in transformers with PEFT's merged model's logits.
#include <gtest/gtest.h>

#include <algorithm>
#include <iostream>

#include "adapters/lora.h"
#include "adapters/peft_format.h"
#include "adapters/peft_moe.h"
#include "models/model_loader.h"
#include "models/safetensors.h"
#include "tests/reference/reference_files.h"
#include "tests/support/test_support.h"

namespace qtune {
namespace {

// float32 on both sides, the same weights and formulas; what remains is summation order.
constexpr double kTolerance = 1e-5;

// transformers' causal-LM loss: token t predicts token t + 1, mean over every predicted token.
torch::Tensor causal_lm_loss(const torch::Tensor& logits, const torch::Tensor& ids) {
  const int64_t V = logits.size(-1);
  return torch::nll_loss(torch::log_softmax(logits.slice(1, 0, -1).reshape({-1, V}), -1), ids.slice(1, 1).reshape({-1}));
}

double check_logits(CausalLM& model, const std::string& reference_file, const std::string& what) {
  auto ref = SafetensorsFile::open(reference_file);
  torch::NoGradGuard no_grad;
  const double err = test::max_relative_error(model->forward(ref->view("input_ids")), ref->view("logits"));
  EXPECT_LE(err, kTolerance) << what << ": logits, max relative difference " << err;
  return err;
}

// The adapter `qtune train` wrote, in qtune and in PEFT.
void check_qtune_adapter(const std::string& arch) {
  const std::string dir = test::reference_path("lora", arch);
  CausalLM model = load_causal_lm(test::reference_path("models", arch), {at::kFloat, torch::kCPU});
  load_peft_adapter(model, dir + "/qtune/run");
  double largest_b = 0;
  for (const auto& [name, tensor] : lora_state(model))
    if (name.find("lora_B") != std::string::npos) largest_b = std::max(largest_b, tensor.abs().max().item<double>());
  EXPECT_GT(largest_b, 1e-3) << "the trained adapter is still the identity; the logits check would prove nothing";
  const double err = check_logits(model, dir + "/qtune.safetensors", arch + " qtune adapter in PEFT");
  std::cout << arch << " qtune-trained adapter: logits in PEFT vs qtune, max relative difference " << err << "\n";
}

// A PEFT-initialized adapter in qtune: logits, loss, every LoRA gradient.
void check_peft_adapter(const std::string& arch, const std::string& adapter_case) {
  const std::string dir = test::reference_path("lora", arch + "/peft_" + adapter_case);
  CausalLM model = load_causal_lm(test::reference_path("models", arch), {at::kFloat, torch::kCPU});
  load_peft_adapter(model, dir);
  auto ref = SafetensorsFile::open(dir + "/reference.safetensors");
  const torch::Tensor ids = ref->view("input_ids");
  const torch::Tensor logits = model->forward(ids);
  double worst = test::max_relative_error(logits, ref->view("logits"));
  EXPECT_LE(worst, kTolerance) << "logits";
  const torch::Tensor loss = causal_lm_loss(logits, ids);
  const double loss_err = test::max_relative_error(loss.reshape({1}), ref->view("loss"));
  EXPECT_LE(loss_err, kTolerance) << "loss " << loss.item<double>();
  loss.backward();
  int compared = 0;
  for (const auto& [name, param] : lora_state(model)) {
    const TensorInfo* info = ref->find("grad." + name);
    ASSERT_NE(info, nullptr) << "PEFT has no gradient for " << name;
    const double err = test::max_relative_error(param.grad(), ref->view(*info));
    EXPECT_LE(err, kTolerance) << name;
    worst = std::max({worst, loss_err, err});
    ++compared;
  }
  int stored = 0;
  for (const auto& info : ref->tensors()) stored += info.name.rfind("grad.", 0) == 0 ? 1 : 0;
  EXPECT_EQ(compared, stored) << "PEFT adapted modules qtune did not";
  std::cout << arch << " PEFT adapter '" << adapter_case << "': logits, loss and " << compared
            << " LoRA gradients, max relative difference " << worst << "\n";
}

// PEFT's gradients of the adapter in `ref` ("grad.base_model.model.<module>.lora_A.weight", ...), in qtune's per-expert
// layout: a fused expert's gate and up share A_e, so their entries hold PEFT's gradient of that shared A_e.
std::map<std::string, LoraTensors> peft_gradients(SafetensorsFile& ref, const ModelConfig& config, int64_t r) {
  std::map<std::string, LoraTensors> fused, out;
  const std::string prefix = "grad.base_model.model.";
  for (const auto& info : ref.tensors()) {
    if (info.name.rfind(prefix, 0) != 0) continue;
    const std::string rest = info.name.substr(prefix.size());
    const bool is_a = rest.find(".lora_A.weight") != std::string::npos;
    const std::string module = rest.substr(0, rest.find(is_a ? ".lora_A.weight" : ".lora_B.weight"));
    auto& f = is_fused_moe_module(module) && module.find(".experts") != std::string::npos ? fused[module] : out[module];
    (is_a ? f.A : f.B) = ref.view(info);
  }
  for (auto& [module, f] : unfuse_moe_modules(fused, config, r, "reference")) out[module] = f;
  std::map<std::string, LoraTensors> renamed;  // PEFT's router "mlp.gate" is Mixtral's "block_sparse_moe.gate"
  for (auto& [module, f] : out) {
    const auto at = module.find(".mlp.gate");
    const bool router = at != std::string::npos && at + 9 == module.size();
    renamed[router ? module.substr(0, at) + "." + config.moe_block_name() + ".gate" : module] = f;
  }
  return renamed;
}

// An adapter PEFT made on transformers 5's fused experts and router (target_parameters) in qtune: logits, the
// load-balancing loss, the loss with it (transformers' output_router_logits) and the gradients, qtune's gate and up A
// gradients of an expert summed as PEFT's shared A_e's.
void check_peft_expert_adapter(const std::string& arch) {
  const std::string dir = test::reference_path("lora", arch + "/peft_experts");
  CausalLM model = load_causal_lm(test::reference_path("models", arch), {at::kFloat, torch::kCPU});
  const LoraOptions options = load_peft_adapter(model, dir);
  auto ref = SafetensorsFile::open(dir + "/reference.safetensors");
  const torch::Tensor ids = ref->view("input_ids");
  const double coef = model->config().router_aux_loss_coef;
  model->router_balance()->arm(coef);  // its gradient joins the backward below
  const torch::Tensor logits = model->forward(ids);
  double worst = test::max_relative_error(logits, ref->view("logits"));
  EXPECT_LE(worst, kTolerance) << arch << " logits";
  const double aux = model->router_balance()->loss();
  worst = std::max(worst, test::max_relative_error(torch::tensor({aux}, torch::kDouble), ref->view("aux_loss").to(torch::kDouble)));
  const torch::Tensor loss = causal_lm_loss(logits, ids) + coef * aux;
  worst = std::max(worst, test::max_relative_error(loss.reshape({1}), ref->view("loss")));
  EXPECT_LE(worst, kTolerance) << arch << " loss " << loss.item<double>();
  loss.backward();
  std::map<std::string, torch::Tensor> grad;
  for (const auto& [name, param] : lora_state(model)) grad[name] = param.grad();
  const auto expected = peft_gradients(*ref, model->config(), options.r);
  const auto names = model->config().expert_projection_names();  // gate, up, down
  for (const auto& [module, f] : expected) {
    torch::Tensor a = grad.at(peft_tensor_name(module, 'A'));
    for (const auto& [mine, partner] : {std::pair{names[0], names[1]}, std::pair{names[1], names[0]}})
      if (module.size() > mine.size() && module.compare(module.size() - mine.size(), mine.size(), mine) == 0 && module.find(".experts.") != std::string::npos)
        a = a + grad.at(peft_tensor_name(module.substr(0, module.size() - mine.size()) + partner, 'A'));
    for (const auto& [which, got, want] : {std::tuple{'A', a, f.A}, std::tuple{'B', grad.at(peft_tensor_name(module, 'B')), f.B}}) {
      const double err = test::max_relative_error(got, want);
      EXPECT_LE(err, kTolerance) << arch << " " << module << " lora_" << which;
      worst = std::max(worst, err);
    }
  }
  EXPECT_EQ(2 * expected.size(), grad.size()) << "qtune adapted modules PEFT did not, or the reverse";
  std::cout << arch << " PEFT adapter on the fused experts and router: logits, loss and the gradients of " << expected.size()
            << " modules, max relative difference " << worst << "\n";
}

// `qtune merge` of PEFT's adapter onto `base`, compared tensor by tensor with `expected` (every tensor it holds;
// with whole_model, qtune wrote no other).
void check_merge(const std::string& base, const std::string& adapter, SafetensorsFile& expected, const std::string& what,
                 const std::string& dtype = "bf16", bool whole_model = false) {
  const std::string out = test::temp_dir("merged");
  const auto merged = test::run_qtune("merge --base " + base + " --adapter " + adapter + " --out " + out + " --dtype " + dtype + " --force");
  ASSERT_EQ(merged.exit_code, 0) << merged.out;
  auto got = SafetensorsFile::open(out + "/model.safetensors");
  if (whole_model) EXPECT_EQ(got->tensors().size(), expected.tensors().size()) << what << ": tensors written";
  int64_t differing = 0, compared = 0;
  for (const auto& info : expected.tensors()) {
    const TensorInfo* mine = got->find(info.name);
    ASSERT_NE(mine, nullptr) << what << ": qtune merge wrote no " << info.name;
    const torch::Tensor a = got->view(*mine), b = expected.view(info);
    ASSERT_EQ(a.scalar_type(), b.scalar_type()) << info.name;
    differing += a.ne(b).sum().item<int64_t>();
    compared += b.numel();
  }
  EXPECT_EQ(differing, 0) << what << ": " << differing << " of " << compared << " merged values differ";
  std::cout << what << ": " << compared << " values compared, " << differing << " differ\n";
}

void check_architecture(const std::string& arch) {
  QTUNE_REQUIRE_REFERENCE_FILE(test::reference_path("lora", arch + "/merged4bit.safetensors"), "lora");
  check_qtune_adapter(arch);
  for (const std::string adapter_case : {"all", "rslora_subset"}) check_peft_adapter(arch, adapter_case);
  const std::string dir = test::reference_path("lora", arch);
  auto merged16 = SafetensorsFile::open(dir + "/merged16/model.safetensors");
  // The adapter visibly moves the bf16 weights, so equal merges say something.
  auto base16 = SafetensorsFile::open(dir + "/base16/model.safetensors");
  const std::string q_proj = arch == "phi3" ? "model.layers.0.self_attn.qkv_proj.weight" : "model.layers.0.self_attn.q_proj.weight";
  EXPECT_GT(merged16->view(q_proj).ne(base16->view(q_proj)).sum().item<int64_t>(), merged16->view(q_proj).numel() / 2);
  check_merge(dir + "/base16", dir + "/peft_all", *merged16, arch + " merge on a bf16 base vs PEFT merge_and_unload");
  auto merged4 = SafetensorsFile::open(dir + "/merged4bit.safetensors");
  check_merge(dir + "/quantized", dir + "/peft_all", *merged4, arch + " merge on an NF4 base vs bitsandbytes dequantize + PEFT delta");
}

// Names in the per-expert layout of one expert projection and one router that the MoE adapters adapt.
struct MoeWeights {
  std::string arch, expert, router;
};

// The merge moved most values of `name` off the base (so that equal merges say something about the delta too).
void expect_moved(SafetensorsFile& merged, SafetensorsFile& base, const std::string& name) {
  const torch::Tensor a = merged.view(name), b = base.view(name);
  EXPECT_GT(a.ne(b).sum().item<int64_t>(), a.numel() / 2) << name << " barely moved by the merge";
}

// `qtune merge` of a MoE adapter against PEFT's merge_and_unload saved by transformers, every tensor of the model,
// experts and routers included (peft_lora.py): the float32 model into f32, the bf16 base into bf16 (both rounded
// once), the NF4 base as bitsandbytes dequantizes it into bf16; then transformers' logits with qtune's f32 merge
// against PEFT's merged model's. "qtune": the run's adapter in PEFT's per-expert layout (attention, every expert, the
// router), merged as an adapter made elsewhere and, by its training record, into the NF4 weights it trained on
// (quantized at load from the float32 model); "peft_experts": PEFT's on the fused experts and router, onto quantized/.
void check_moe_merges(const MoeWeights& w, const std::string& adapter) {
  const std::string dir = test::reference_path("lora", w.arch), merges = dir + "/merge_" + adapter;
  QTUNE_REQUIRE_REFERENCE_FILE(merges + "/logits.safetensors", "lora");
  const bool run = adapter == "qtune";
  const std::string plain = dir + (run ? "/qtune/peft_files" : "/peft_experts"), model = test::reference_path("models", w.arch);
  const std::string what = w.arch + " " + adapter + " adapter: merge";
  auto f32 = SafetensorsFile::open(merges + "/f32/model.safetensors");
  check_merge(model, plain, *f32, what + " on the f32 model vs PEFT", "f32", true);
  auto bf16 = SafetensorsFile::open(merges + "/bf16/model.safetensors");
  auto base16 = SafetensorsFile::open(dir + "/base16/model.safetensors");
  for (const auto& name : {w.expert, w.router}) expect_moved(*bf16, *base16, name);
  check_merge(dir + "/base16", plain, *bf16, what + " on a bf16 base vs PEFT (rounded once)", "bf16", true);
  auto nf4 = SafetensorsFile::open(merges + "/nf4/model.safetensors");
  check_merge(run ? model : dir + "/quantized", run ? dir + "/qtune/run" : plain, *nf4,
              what + " on an NF4 base vs bitsandbytes dequantize + PEFT", "bf16", true);
  auto logits = SafetensorsFile::open(merges + "/logits.safetensors");
  const double err = test::max_relative_error(logits->view("qtune"), logits->view("peft"));
  EXPECT_LE(err, kTolerance) << what << ": logits in transformers";
  std::cout << what << ": transformers' logits with qtune's f32 merge vs PEFT's merged model, max relative difference " << err << "\n";
}

const MoeWeights kMixtral{"mixtral", "model.layers.0.block_sparse_moe.experts.3.w1.weight", "model.layers.0.block_sparse_moe.gate.weight"};
const MoeWeights kQwen3Moe{"qwen3_moe", "model.layers.1.mlp.experts.7.down_proj.weight", "model.layers.1.mlp.gate.weight"};

TEST(PeftLora, MixtralMergeOfExpertsAndRouter) {
  check_moe_merges(kMixtral, "qtune");
  check_moe_merges(kMixtral, "peft_experts");
}

TEST(PeftLora, Qwen3MoeMergeOfExpertsAndRouter) {
  check_moe_merges(kQwen3Moe, "qtune");
  check_moe_merges(kQwen3Moe, "peft_experts");
}

TEST(PeftLora, MixtralExpertsBothWays) {
  QTUNE_REQUIRE_REFERENCE_FILE(test::reference_path("lora", "mixtral/peft_experts/reference.safetensors"), "lora");
  check_qtune_adapter("mixtral");
  check_peft_expert_adapter("mixtral");
}

TEST(PeftLora, Qwen3MoeExpertsBothWays) {
  QTUNE_REQUIRE_REFERENCE_FILE(test::reference_path("lora", "qwen3_moe/peft_experts/reference.safetensors"), "lora");
  check_qtune_adapter("qwen3_moe");
  check_peft_expert_adapter("qwen3_moe");
}

TEST(PeftLora, Llama) { check_architecture("llama"); }
TEST(PeftLora, Mistral) { check_architecture("mistral"); }
TEST(PeftLora, Qwen2) { check_architecture("qwen2"); }
TEST(PeftLora, Qwen3) { check_architecture("qwen3"); }
TEST(PeftLora, Gemma2) { check_architecture("gemma2"); }
TEST(PeftLora, Gemma3) { check_architecture("gemma3"); }
TEST(PeftLora, Phi3FusedProjections) { check_architecture("phi3"); }

}  // namespace
}  // namespace qtune
