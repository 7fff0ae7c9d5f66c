// Merging LoRA into the base: the merged checkpoint's logits equal base + adapter (dense base; 4-bit
// base quantized at load; pre-quantized bitsandbytes base), bf16 output within one rounding, sharding,
// and the errors.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "adapters/merge.h"
#include "adapters/peft_format.h"
#include "core/error.h"
#include "models/model_loader.h"
#include "models/quantize_model.h"
#include "tests/support/test_support.h"

namespace qtune {
namespace {

namespace fs = std::filesystem;

torch::Tensor ids() {
  torch::manual_seed(4);
  return torch::randint(3, 300, {2, 10}, torch::kLong);  // [B, T]
}

TEST(MergeLora, DenseBaseLogitsMatchBasePlusAdapter) {
  const std::string base = test::make_tiny_model("qwen2");  // qkv biases pass through unchanged
  CausalLM model = load_causal_lm(base);
  const std::string adapter = test::save_random_adapter(model, test::all_linear_lora(), 1);
  MergeOptions o;
  o.base_dir = base;
  o.adapter_dir = adapter;
  o.out_dir = test::temp_dir("merged");
  o.out_dtype = at::kFloat;
  const MergeReport report = write_merged_model(o);
  EXPECT_EQ(report.merged_modules.size(), 14u);
  EXPECT_FALSE(report.base_4bit);

  CausalLM merged = load_causal_lm(o.out_dir);
  EXPECT_TRUE(merged->parameters().empty());
  torch::NoGradGuard no_grad;
  const double err = test::max_relative_error(merged->forward(ids()), model->forward(ids()));
  EXPECT_LE(err, 1e-5) << "max relative difference " << err;
  // The in-memory merge gives the same matrices as the file.
  auto file = Checkpoint::open(o.out_dir);
  for (const auto& [name, w] : merge_lora(model)) EXPECT_TRUE(file.view(name + ".weight").equal(w)) << name;

  const auto config = nlohmann::json::parse(test::read_file(o.out_dir + "/config.json"));
  EXPECT_EQ(config["torch_dtype"], "float32");
  EXPECT_FALSE(config.contains("quantization_config"));
  EXPECT_TRUE(fs::exists(o.out_dir + "/generation_config.json"));
}

TEST(MergeLora, LoadTimeQuantizedBaseMergesTheDequantizedWeights) {
  const std::string base = test::make_tiny_model("llama");
  LoadOptions four_bit;
  four_bit.quantize = QuantizeOptions{QuantType::NF4, 64, true};
  CausalLM model = load_causal_lm(base, four_bit);
  const std::string adapter = test::save_random_adapter(model, test::all_linear_lora(), 2);
  MergeOptions o;
  o.base_dir = base;
  o.adapter_dir = adapter;
  o.out_dir = test::temp_dir("merged");
  o.out_dtype = at::kFloat;
  o.quantize = four_bit.quantize;
  o.compute_dtype = at::kFloat;  // the model above ran in f32
  const MergeReport report = write_merged_model(o);
  EXPECT_TRUE(report.base_4bit);
  EXPECT_EQ(report.dequantize_dtype, at::kFloat);

  CausalLM merged = load_causal_lm(o.out_dir);
  torch::NoGradGuard no_grad;
  const torch::Tensor expected = model->forward(ids());
  const double err = test::max_relative_error(merged->forward(ids()), expected);
  EXPECT_LE(err, 1e-5) << "max relative difference " << err;
  auto file = Checkpoint::open(o.out_dir);
  for (const auto& [name, w] : merge_lora(model)) EXPECT_TRUE(file.view(name + ".weight").equal(w)) << name;
  // Merging into the original 16-bit weights instead is measurably different (the 4-bit error).
  o.quantize.reset();
  o.out_dir = test::temp_dir("merged_dense");
  write_merged_model(o);
  const double dense_err = test::max_relative_error(load_causal_lm(o.out_dir)->forward(ids()), expected);
  EXPECT_GT(dense_err, 1e-3) << "the 4-bit and dense merges should differ";
}

TEST(MergeLora, PrequantizedBnbBase) {
  const std::string dense = test::make_tiny_model("llama");
  QuantizeModelOptions q;
  q.model_dir = dense;
  q.out_dir = test::temp_dir("bnb");
  q.quantize = QuantizeOptions{QuantType::NF4, 64, true};
  write_quantized_model(q);
  CausalLM model = load_causal_lm(q.out_dir);
  const std::string adapter = test::save_random_adapter(model, test::all_linear_lora(), 3);
  MergeOptions o;
  o.base_dir = q.out_dir;
  o.adapter_dir = adapter;
  o.out_dir = test::temp_dir("merged");
  o.out_dtype = at::kFloat;
  o.compute_dtype = at::kFloat;
  EXPECT_TRUE(write_merged_model(o).base_4bit);
  CausalLM merged = load_causal_lm(o.out_dir);
  torch::NoGradGuard no_grad;
  const double err = test::max_relative_error(merged->forward(ids()), model->forward(ids()));
  EXPECT_LE(err, 1e-5) << "max relative difference " << err;
  const auto config = nlohmann::json::parse(test::read_file(o.out_dir + "/config.json"));
  EXPECT_FALSE(config.contains("quantization_config"));
  // Without an explicit compute dtype the checkpoint's bnb_4bit_compute_dtype (bfloat16) is used.
  o.compute_dtype.reset();
  o.out_dir = test::temp_dir("merged_bf16deq");
  EXPECT_EQ(write_merged_model(o).dequantize_dtype, at::kBFloat16);
}

TEST(MergeLora, Bf16OutputIsOneRoundingOfTheFp32Merge) {
  const std::string base = test::make_tiny_model("llama");
  CausalLM model = load_causal_lm(base);
  const std::string adapter = test::save_random_adapter(model, test::all_linear_lora(), 4);
  MergeOptions o;
  o.base_dir = base;
  o.adapter_dir = adapter;
  o.out_dir = test::temp_dir("merged32");
  o.out_dtype = at::kFloat;
  o.max_shard_bytes = 100'000;  // several shards + index
  EXPECT_GT(write_merged_model(o).shards, 1u);
  const std::string out32 = o.out_dir;
  o.out_dir = test::temp_dir("merged16");
  o.out_dtype = at::kBFloat16;
  write_merged_model(o);
  auto f32 = Checkpoint::open(out32), bf16 = Checkpoint::open(o.out_dir);
  ASSERT_EQ(f32.names(), bf16.names());
  for (const auto& name : f32.names()) {
    const torch::Tensor wide = f32.view(name), narrow = bf16.view(name);
    ASSERT_EQ(narrow.scalar_type(), at::kBFloat16) << name;
    EXPECT_TRUE(narrow.equal(wide.to(at::kBFloat16))) << name;  // round-to-nearest of the fp32 merge
    // 8 significant bits: half an ulp is at most 2^-8 |x|.
    const double worst = ((narrow.to(at::kFloat) - wide).abs() - wide.abs() * std::ldexp(1.0, -8)).max().item<double>();
    EXPECT_LE(worst, 0.0) << name;
  }
  EXPECT_EQ(nlohmann::json::parse(test::read_file(o.out_dir + "/config.json"))["torch_dtype"], "bfloat16");
  CausalLM merged = load_causal_lm(o.out_dir);  // loads (bf16 file -> f32 compute)
  torch::NoGradGuard no_grad;
  const double err = test::max_relative_error(merged->forward(ids()), model->forward(ids()));
  EXPECT_LE(err, 5e-2) << "max relative difference " << err;
}

TEST(MergeLora, ErrorsNameTheProblem) {
  const std::string base = test::make_tiny_model("llama");
  CausalLM model = load_causal_lm(base);
  const std::string adapter = test::save_random_adapter(model, test::all_linear_lora(), 5);
  MergeOptions o;
  o.base_dir = base;
  o.adapter_dir = adapter;
  o.out_dir = base;
  EXPECT_THROW(write_merged_model(o), InputError);
  o.out_dir = test::temp_dir("merged");
  o.out_dtype = at::kDouble;
  EXPECT_THROW(write_merged_model(o), InputError);
  o.out_dtype = at::kBFloat16;
  const std::string other = test::temp_dir("narrow");  // a model whose shapes do not fit the adapter
  const auto made = test::run_qtune("init-model --arch llama --out " + other +
                                    " --hidden 32 --layers 2 --heads 4 --kv-heads 2 --vocab 300 --dtype f32 --force");
  ASSERT_EQ(made.exit_code, 0) << made.out;
  o.base_dir = other;
  try {
    write_merged_model(o);
    ADD_FAILURE() << "no error for an adapter of another model";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("adapter_model.safetensors"), std::string::npos) << e.what();
  }
  o.base_dir = base;
  write_merged_model(o);
  EXPECT_THROW(write_merged_model(o), InputError);  // already holds a model
  o.force = true;
  write_merged_model(o);
}

}  // namespace
}  // namespace qtune
