// qtune export of mixture-of-experts models: Mixtral as llama.cpp's "llama" with experts, Qwen3-MoE as "qwen3moe".
// The layout gguf-py and llama.cpp's loader expect (per sparse layer a router ffn_gate_inp ne [D, E] kept in F32 and
// the experts stacked per projection, ffn_{gate,up,down}_exps ne [in, out, E]; the expert keys), the round trip
// through qtune's own reader (base + adapter with LoRA on every expert and the router: f32 gives the adapted model's
// logits, block types each expert's merged weights within the type's error), the adapter-only file (experts' A and B
// stacked, which applied as llama.cpp applies them give the merged file), and the Qwen3-MoE models llama.cpp's qwen3moe
// would not run as trained, refused.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "adapters/merge.h"
#include "adapters/peft_format.h"
#include "gguf/gguf_export.h"
#include "gguf/gguf_model.h"
#include "gguf/gguf_names.h"
#include "models/architecture.h"
#include "tests/support/test_support.h"

namespace qtune {
namespace {

namespace fs = std::filesystem;

const std::vector<std::string> kMoeArchs = {"mixtral", "qwen3_moe"};
constexpr int64_t kExperts = 4, kTopK = 2, kHidden = 64;

// Hidden 64, 4 experts (top 2) 32 wide for Qwen3-MoE (64 for Mixtral, whose experts are intermediate wide): rows that
// 32-weight blocks divide.
std::string tiny_moe(const std::string& arch) {
  const std::string qwen = arch == "qwen3_moe" ? " --moe-intermediate 32 --head-dim 32" : "";
  return test::make_tiny_model(arch, "--byte-tokenizer --intermediate 64 --experts 4 --experts-per-token 2" + qwen);
}

// LoRA on every projection: attention, each expert's and the routers.
LoraOptions experts_and_router_lora() {
  LoraOptions o = test::all_linear_lora();
  o.target_modules = {"gate"};
  return o;
}

std::string export_file(const std::string& model, const std::string& adapter, ExportType type, bool adapter_only = false) {
  ExportOptions o;
  o.model_dir = model;
  o.adapter_dir = adapter;
  o.out_path = test::temp_dir("moe_export") + "/out.gguf";
  o.type = type;
  o.adapter_only = adapter_only;
  export_gguf(o);
  return o.out_path;
}

torch::Tensor logits(CausalLM& model) {
  torch::NoGradGuard no_grad;
  return model->forward(torch::randint(3, 300, {2, 12}, torch::Generator(at::detail::createCPUGenerator(7))));
}

TEST(GgufMoeExport, RoutersAndStackedExpertsWithTheExpertKeysAsLlamaCppLoadsThem) {
  for (const auto& arch : kMoeArchs) {
    SCOPED_TRACE(arch);
    const std::string dir = tiny_moe(arch);
    const ModelConfig c = ModelConfig::load(dir);
    const int64_t F = c.moe_intermediate_size;
    for (ExportType type : {ExportType::kF32, ExportType::kQ8_0}) {
      const auto file = GgufFile::open(export_file(dir, "", type));
      const GgufMetadata& m = file->metadata();
      const std::string g = arch == "mixtral" ? "llama" : "qwen3moe";
      EXPECT_EQ(m.string("general.architecture", "t"), g);
      EXPECT_EQ(m.integer(g + ".expert_count", "t"), kExperts);
      EXPECT_EQ(m.integer(g + ".expert_used_count", "t"), kTopK);
      EXPECT_EQ(m.integer(g + ".feed_forward_length", "t"), c.intermediate_size);
      // llama.cpp's qwen3moe takes the experts' width from this key (without it: feed_forward_length / k).
      if (arch == "qwen3_moe") EXPECT_EQ(m.integer(g + ".expert_feed_forward_length", "t"), F);
      std::set<std::string> expected;
      for (int64_t layer = 0; layer < c.num_layers; ++layer) {
        const std::string blk = "blk." + std::to_string(layer) + ".";
        const std::map<std::string, std::vector<int64_t>> moe = {{"ffn_gate_inp", {kHidden, kExperts}},
                                                                 {"ffn_gate_exps", {kHidden, F, kExperts}},
                                                                 {"ffn_up_exps", {kHidden, F, kExperts}},
                                                                 {"ffn_down_exps", {F, kHidden, kExperts}}};
        for (const auto& [name, ne] : moe) {
          const GgufTensorInfo* info = file->find(blk + name + ".weight");
          ASSERT_NE(info, nullptr) << blk + name;
          EXPECT_EQ(info->ne, ne) << blk + name;
          const GgmlType stacked = type == ExportType::kF32 ? GgmlType::kF32 : GgmlType::kQ8_0;
          EXPECT_EQ(info->type, name == "ffn_gate_inp" ? GgmlType::kF32 : stacked) << blk + name;  // routers stay F32
        }
        EXPECT_EQ(file->find(blk + "ffn_gate.weight"), nullptr);  // no dense MLP in a sparse layer
      }
      // Every tensor of the checkpoint is in the file once: the 3·E expert tensors of a layer as three stacked ones.
      std::set<std::string> names;
      for (const auto& spec : hf_weight_specs(c)) {
        const auto stacked = stacked_expert_tensor(c, spec.name);
        names.insert(stacked ? stacked->gguf_name : gguf_tensor_name(c.arch, spec.name).value_or("unnamed " + spec.name));
      }
      std::set<std::string> in_file;
      for (const auto& t : file->tensors()) in_file.insert(t.name);
      EXPECT_EQ(in_file, names);
    }
  }
}

TEST(GgufMoeExport, F32FileReadBackIsTheModelAndWithAnAdapterTheAdaptedModel) {
  for (const auto& arch : kMoeArchs) {
    SCOPED_TRACE(arch);
    const std::string dir = tiny_moe(arch);
    CausalLM original = load_causal_lm(dir);
    GgufModel plain = load_gguf_model(export_file(dir, "", ExportType::kF32), LoadOptions{});
    const ModelConfig& a = original->config();
    const ModelConfig& b = plain.model->config();
    EXPECT_EQ(b.arch, a.arch);
    EXPECT_EQ(b.num_experts, a.num_experts);
    EXPECT_EQ(b.num_experts_per_tok, a.num_experts_per_tok);
    EXPECT_EQ(b.moe_intermediate_size, a.moe_intermediate_size);
    EXPECT_EQ(b.intermediate_size, a.intermediate_size);
    EXPECT_EQ(b.norm_topk_prob, a.norm_topk_prob);
    EXPECT_EQ(b.routing_weights_in_compute_dtype, a.routing_weights_in_compute_dtype);
    EXPECT_EQ(b.qk_norm, a.qk_norm);
    EXPECT_TRUE(torch::equal(logits(plain.model), logits(original)));  // Mixtral's q/k rows regrouped and back

    const std::string adapter = test::save_random_adapter(original, experts_and_router_lora(), 4, dir);
    original->eval();
    const torch::Tensor expected = logits(original);
    ExportOptions o;
    o.model_dir = dir;
    o.adapter_dir = adapter;
    o.out_path = test::temp_dir("moe_adapted") + "/m.gguf";
    o.type = ExportType::kF32;
    const ExportReport report = export_gguf(o);
    // 4 attention projections, 3 per expert and the router, in each of the 2 layers
    EXPECT_EQ(report.merged_modules, 2 * (4 + 3 * kExperts + 1));
    GgufModel merged = load_gguf_model(o.out_path, LoadOptions{});
    EXPECT_LE(test::max_relative_error(logits(merged.model), expected), 1e-5);  // float32 W + s·B·A vs the unmerged sum
  }
}

// The largest error a block type allows in a 32-weight block, as a fraction of the block's largest |x|: half a step of
// amax/127 for Q8_0 plus its f16 scale's rounding (127 · 2^-11 steps); one step of amax/8 for Q4_0, whose code 15
// clamps -amax to -7/8 amax. 1% to spare.
double block_error_fraction(GgmlType type) {
  if (type == GgmlType::kQ8_0) return 1.01 * (0.5 + 127.0 / 2048) / 127;
  if (type == GgmlType::kQ4_0) return 1.01 / 8;
  ADD_FAILURE() << "no bound for " << ggml_traits(type).name;
  return 0;
}

// max over blocks of (max |x - y| - fraction · max |x|): <= 0 when every block is within the bound.
double block_bound_violation(const torch::Tensor& x, const torch::Tensor& y, double fraction) {
  const torch::Tensor xb = x.reshape({-1, 32}), yb = y.reshape({-1, 32});
  return ((xb - yb).abs().amax(1) - fraction * xb.abs().amax(1)).max().item<double>();
}

TEST(GgufMoeExport, QuantizedFileReadBackHoldsEachExpertsMergedWeightsWithinTheTypesError) {
  for (const auto& arch : kMoeArchs) {
    const std::string dir = tiny_moe(arch);
    CausalLM model = load_causal_lm(dir);
    const std::string adapter = test::save_random_adapter(model, experts_and_router_lora(), 5, dir);
    MergedTensors merged(dir, adapter, std::nullopt, std::nullopt);
    std::map<std::string, torch::Tensor> expected;  // module -> merged float32 weight
    for (const auto& spec : merged.specs()) expected[spec.name.substr(0, spec.name.size() - 7)] = merged.get(spec).to(torch::kFloat);
    for (ExportType type : {ExportType::kQ8_0, ExportType::kQ4_0}) {
      SCOPED_TRACE(arch + " " + export_type_name(type));
      const std::string path = export_file(dir, adapter, type);
      const auto file = GgufFile::open(path);
      GgufModel back = load_gguf_model(path, LoadOptions{});
      int checked = 0;
      for (auto& [module, linear] : back.model->projections()) {
        const auto stacked = stacked_expert_tensor(back.model->config(), module + ".weight");
        const bool router = module.size() > 5 && module.compare(module.size() - 5, 5, ".gate") == 0;
        if (!stacked && !router) continue;
        const torch::Tensor read = linear->weight().dequantize().to(torch::kFloat);
        const torch::Tensor& x = expected.at(module);
        if (router) {
          EXPECT_TRUE(torch::equal(read, x)) << module;  // F32 in every type
        } else {
          const GgmlType stored = file->find(stacked->gguf_name)->type;
          EXPECT_LE(block_bound_violation(x, read, block_error_fraction(stored)), 0.0) << module;
          EXPECT_GT((x - read).abs().max().item<double>(), 0.0) << module;  // really quantized
        }
        ++checked;
      }
      EXPECT_EQ(checked, 2 * (3 * kExperts + 1));
    }
  }
}

// llama.cpp applies an adapter tensor "<w>.lora_a" / ".lora_b" as W + (alpha / r)·B·A, per expert for stacked ones
// (ggml_mul_mat_id on B and A as on W): the base file plus the adapter file, so applied, is the merged file.
TEST(GgufMoeExport, AdapterOnlyFileStacksTheExpertsFactorsAndAppliedGivesTheMergedFile) {
  for (const auto& arch : kMoeArchs) {
    SCOPED_TRACE(arch);
    const std::string dir = tiny_moe(arch);
    CausalLM model = load_causal_lm(dir);
    const LoraOptions o = experts_and_router_lora();
    const std::string adapter = test::save_random_adapter(model, o, 6, dir);
    const auto lora = GgufFile::open(export_file(dir, adapter, ExportType::kF32, true));
    const auto base = GgufFile::open(export_file(dir, "", ExportType::kF32));
    const auto merged = GgufFile::open(export_file(dir, adapter, ExportType::kF32));
    const double scale = lora->metadata().number("adapter.lora.alpha", "t") / o.r;
    const int64_t F = model->config().moe_intermediate_size;
    int applied = 0;
    for (const auto& info : lora->tensors()) {
      if (info.name.size() < 7 || info.name.compare(info.name.size() - 7, 7, ".lora_a") != 0) continue;
      const std::string weight = info.name.substr(0, info.name.size() - 7);
      const torch::Tensor A = lora->to_float(info), B = lora->to_float(*lora->find(weight + ".lora_b"));
      const torch::Tensor W = base->to_float(*base->find(weight));
      const torch::Tensor expected = merged->to_float(*merged->find(weight));
      if (weight.find("_exps") != std::string::npos) {
        const bool down = weight.find("ffn_down_exps") != std::string::npos;
        EXPECT_EQ(A.sizes(), (std::vector<int64_t>{kExperts, o.r, down ? F : kHidden})) << weight;
        EXPECT_EQ(B.sizes(), (std::vector<int64_t>{kExperts, down ? kHidden : F, o.r})) << weight;
      }
      EXPECT_LE(test::max_relative_error(W + scale * torch::matmul(B, A), expected), 1e-6) << weight;  // batched over experts
      ++applied;
    }
    EXPECT_EQ(applied, 2 * (4 + 3 + 1));  // attention, the three stacked expert tensors and the router, per layer
  }
}

void write_config_key(const std::string& dir, const std::string& key, const nlohmann::json& value) {
  nlohmann::json config = nlohmann::json::parse(test::read_file(dir + "/config.json"));
  config[key] = value;
  test::write_file(dir + "/config.json", config.dump(1));
}

// llama.cpp's qwen3moe has experts in every layer (it would not load a dense one) and always renormalizes the top-k
// routing weights (it would run another model): such a Qwen3-MoE is refused in one line before any file is made.
TEST(GgufMoeExport, RefusesTheQwen3MoeModelsLlamaCppWouldNotRunAsTrained) {
  const std::vector<std::pair<std::pair<std::string, nlohmann::json>, std::string>> cases = {
      {{"mlp_only_layers", nlohmann::json::array({0})}, "layers 0 have a dense MLP"},
      {{"decoder_sparse_step", 2}, "layers 0 have a dense MLP"},
      {{"norm_topk_prob", false}, "norm_topk_prob is false"}};
  for (const auto& [setting, message] : cases) {
    const std::string dir = tiny_moe("qwen3_moe");
    write_config_key(dir, setting.first, setting.second);
    const std::string out = test::temp_dir("refused") + "/m.gguf";
    const auto r = test::run_qtune("export --model " + dir + " --out " + out);
    EXPECT_EQ(r.exit_code, 2) << r.out;
    EXPECT_NE(r.out.find("Qwen3MoeForCausalLM: " + message), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find('\n'), r.out.size() - 1) << "one line: " << r.out;
    EXPECT_FALSE(fs::exists(out)) << setting.first;
    for (const auto& entry : fs::directory_iterator(fs::path(out).parent_path())) ADD_FAILURE() << "left behind: " << entry.path();
  }
}

}  // namespace
}  // namespace qtune
