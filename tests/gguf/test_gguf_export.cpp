// qtune export and the GGUF read-back: llama.cpp's tensor names both ways (per family), the Llama family's Q/K row
// order, Gemma's norms stored as 1 + w, a model of every family exported at f32 and read back computes the logits of
// the folder it came from (exactly) with the same config, base + adapter exported
// gives base + adapter's logits, the adapter-only file holds A and B as llama.cpp applies them, and the errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <iostream>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "adapters/lora.h"
#include "adapters/peft_format.h"
#include "core/error.h"
#include "gguf/gguf_export.h"
#include "gguf/gguf_model.h"
#include "gguf/gguf_names.h"
#include "models/architecture.h"
#include "tests/support/test_support.h"

namespace qtune {
namespace {

namespace fs = std::filesystem;

const std::vector<std::string> kArchs = {"llama", "mistral", "qwen2", "qwen3", "gemma2", "gemma3", "phi3"};

// The reference tests' flags (tests/reference/reference_common.py ARCH_FLAGS). Mistral with a window: without one,
// llama.cpp's converter (and so the file) cannot tell it from Llama. Gemma 2: a query scale (hidden/heads 16) that is
// not head_dim (32); Gemma 3: sliding and full layers alternating (pattern 2, not llama.cpp's default 6) with two rope
// bases; Phi-3: RoPE on 3/4 of each head, longrope factors, a window.
std::string tiny_model(const std::string& arch) {
  const std::map<std::string, std::string> extra = {
      {"qwen3", " --head-dim 32"},
      {"mistral", " --sliding-window 5"},
      {"gemma2", " --sliding-window 5 --head-dim 32"},
      {"gemma3", " --sliding-window 5 --sliding-window-pattern 2 --head-dim 32"},
      {"phi3", " --sliding-window 7 --partial-rotary-factor 0.75 --original-max-positions 512"}};
  return test::make_tiny_model(arch, "--byte-tokenizer" + (extra.count(arch) ? extra.at(arch) : std::string()));
}

torch::Tensor ids() { return torch::randint(3, 300, {2, 12}, torch::Generator(at::detail::createCPUGenerator(7))); }

std::vector<int64_t> values(const torch::Tensor& t) {
  const torch::Tensor flat = t.flatten().to(torch::kLong).contiguous();
  return std::vector<int64_t>(flat.data_ptr<int64_t>(), flat.data_ptr<int64_t>() + flat.numel());
}

torch::Tensor logits(CausalLM& model) {
  torch::NoGradGuard no_grad;
  return model->forward(ids());
}

std::string export_file(const std::string& model, const std::string& adapter, ExportType type, bool adapter_only = false) {
  ExportOptions o;
  o.model_dir = model;
  o.adapter_dir = adapter;
  o.out_path = test::temp_dir("export") + "/out.gguf";
  o.type = type;
  o.adapter_only = adapter_only;
  export_gguf(o);
  return o.out_path;
}

TEST(GgufNames, EveryTensorOfEveryArchitectureMapsBothWays) {
  for (const auto& arch : kArchs) {
    ModelConfig c = ModelConfig::preset(parse_architecture_name(arch));
    std::set<std::string> names;
    for (const auto& spec : hf_weight_specs(c)) {
      const auto name = gguf_tensor_name(c.arch, spec.name);
      ASSERT_TRUE(name) << spec.name;
      EXPECT_EQ(hf_tensor_name(c.arch, *name), spec.name);
      EXPECT_TRUE(names.insert(*name).second) << *name << " twice in " << arch;
    }
  }
  const Architecture llama = Architecture::kLlama;
  EXPECT_EQ(gguf_tensor_name(llama, "model.layers.12.self_attn.q_proj.weight"), "blk.12.attn_q.weight");
  EXPECT_EQ(gguf_tensor_name(llama, "model.layers.0.mlp.down_proj.weight"), "blk.0.ffn_down.weight");
  EXPECT_EQ(gguf_tensor_name(llama, "model.layers.0.post_attention_layernorm.weight"), "blk.0.ffn_norm.weight");
  EXPECT_EQ(gguf_tensor_name(llama, "lm_head.weight"), "output.weight");
  EXPECT_FALSE(gguf_tensor_name(llama, "model.layers.0.self_attn.rotary_emb.inv_freq"));
  EXPECT_FALSE(hf_tensor_name(llama, "blk.0.ffn_gate_exps.weight"));
  // gguf-py's MODEL_TENSORS for gemma2/gemma3: the norm after attention is post_attention_norm, the one before the
  // MLP ffn_norm, the one after it post_ffw_norm.
  for (Architecture gemma : {Architecture::kGemma2, Architecture::kGemma3}) {
    EXPECT_EQ(gguf_tensor_name(gemma, "model.layers.1.post_attention_layernorm.weight"), "blk.1.post_attention_norm.weight");
    EXPECT_EQ(gguf_tensor_name(gemma, "model.layers.1.pre_feedforward_layernorm.weight"), "blk.1.ffn_norm.weight");
    EXPECT_EQ(gguf_tensor_name(gemma, "model.layers.1.post_feedforward_layernorm.weight"), "blk.1.post_ffw_norm.weight");
    EXPECT_EQ(hf_tensor_name(gemma, "blk.1.ffn_norm.weight"), "model.layers.1.pre_feedforward_layernorm.weight");
  }
  EXPECT_EQ(gguf_tensor_name(Architecture::kGemma3, "model.layers.0.self_attn.q_norm.weight"), "blk.0.attn_q_norm.weight");
  // Phi-3: the fused projections keep llama.cpp's names attn_qkv and ffn_up (which holds gate then up).
  EXPECT_EQ(gguf_tensor_name(Architecture::kPhi3, "model.layers.2.self_attn.qkv_proj.weight"), "blk.2.attn_qkv.weight");
  EXPECT_EQ(gguf_tensor_name(Architecture::kPhi3, "model.layers.2.mlp.gate_up_proj.weight"), "blk.2.ffn_up.weight");
  EXPECT_EQ(hf_tensor_name(Architecture::kPhi3, "blk.2.ffn_up.weight"), "model.layers.2.mlp.gate_up_proj.weight");
  EXPECT_EQ(hf_tensor_name(llama, "blk.2.ffn_up.weight"), "model.layers.2.mlp.up_proj.weight");
  for (const char* arch : {"gemma2", "gemma3", "phi3"}) EXPECT_EQ(gguf_architecture(parse_architecture_name(arch)), arch);
}

// llama.cpp's converter stores every Gemma norm as 1 + w (ggml's RMS norm multiplies by the weight). Reading back
// subtracts 1 in float32: not always w itself, but the model computes 1 + w in float32, and for 1 + w >= 0.5 that
// subtraction is exact (Sterbenz), so 1 + (read-back w) is the same float bit for bit.
TEST(GgufNames, GemmaNormsAreStoredPlusOneAndReadBackToTheSameScale) {
  const ModelConfig c = ModelConfig::preset(Architecture::kGemma3);
  const torch::Tensor w = torch::cat({torch::randn({4096}, torch::Generator(at::detail::createCPUGenerator(3))) * 0.3,
                                      torch::tensor({-0.5f, 0.0f, 1e-9f, 3.0f, 100.0f})});
  for (const char* name : {"model.layers.0.input_layernorm.weight", "model.layers.1.self_attn.k_norm.weight", "model.norm.weight",
                           "model.layers.0.post_feedforward_layernorm.weight"}) {
    const torch::Tensor stored = to_gguf_values(c, name, w);
    EXPECT_TRUE(torch::equal(stored, w + 1)) << name;
    EXPECT_TRUE(torch::equal(from_gguf_values(c, name, stored) + 1, w + 1)) << name;
  }
  const torch::Tensor q = torch::randn({8, 3});
  EXPECT_TRUE(torch::equal(to_gguf_values(c, "model.layers.0.self_attn.q_proj.weight", q), q));  // NeoX rope: rows as HF has them
  ModelConfig phi3 = ModelConfig::preset(Architecture::kPhi3);
  EXPECT_TRUE(torch::equal(to_gguf_values(phi3, "model.layers.0.input_layernorm.weight", w), w));  // plain RMSNorm: as is
}

TEST(GgufNames, LlamaQkRowsInterleaveEachHeadsRotaryHalves) {
  ModelConfig c = ModelConfig::preset(Architecture::kLlama);
  c.num_heads = 2;
  c.num_kv_heads = 1;
  // HF q rows per head: [first half | second half]; ggml pairs row i of the first half with row i of the second.
  const torch::Tensor q = torch::arange(8).reshape({8, 1});
  EXPECT_EQ(values(to_gguf_values(c, "model.layers.0.self_attn.q_proj.weight", q)), std::vector<int64_t>({0, 2, 1, 3, 4, 6, 5, 7}));
  const torch::Tensor k = torch::arange(4);  // a bias, one kv head
  EXPECT_EQ(values(to_gguf_values(c, "model.layers.0.self_attn.k_proj.bias", k)), std::vector<int64_t>({0, 2, 1, 3}));
  const torch::Tensor w = torch::randn({8, 3});
  const std::string q1 = "model.layers.1.self_attn.q_proj.weight";
  EXPECT_TRUE(torch::equal(from_gguf_values(c, q1, to_gguf_values(c, q1, w)), w));
  EXPECT_TRUE(torch::equal(to_gguf_values(c, "model.layers.0.self_attn.v_proj.weight", w), w));
  c.arch = Architecture::kQwen2;  // NeoX-style rope in llama.cpp: rows as HF has them
  EXPECT_TRUE(torch::equal(to_gguf_values(c, "model.layers.0.self_attn.q_proj.weight", w), w));
}

// The switches of the new families, as the file gives them back (f32 keys: the tiny models' values are exact in f32).
void expect_same_family_settings(const ModelConfig& a, const ModelConfig& b) {
  EXPECT_EQ(b.layer_types, a.layer_types);
  EXPECT_EQ(b.query_pre_attn_scalar, a.query_pre_attn_scalar);
  EXPECT_EQ(b.attn_logit_softcapping, a.attn_logit_softcapping);
  EXPECT_EQ(b.final_logit_softcapping, a.final_logit_softcapping);
  EXPECT_EQ(b.local_rope_theta, a.local_rope_theta);
  EXPECT_EQ(b.rope_scaling.factor, a.rope_scaling.factor);
  EXPECT_EQ(b.partial_rotary_factor, a.partial_rotary_factor);
  EXPECT_EQ(b.hidden_act, a.hidden_act);
  EXPECT_EQ(b.norm_unit_offset, a.norm_unit_offset);
  EXPECT_EQ(b.sandwich_norms, a.sandwich_norms);
  EXPECT_EQ(b.scale_embeddings, a.scale_embeddings);
  EXPECT_EQ(b.fused_projections, a.fused_projections);
  EXPECT_EQ(b.qk_norm, a.qk_norm);
  if (a.rope_scaling.type != "longrope") return;
  // float32 tensors, and the model turns the factors into float32 itself (rope_inverse_frequencies)
  const auto as_float = [](const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); };
  EXPECT_EQ(as_float(b.rope_scaling.short_factor), as_float(a.rope_scaling.short_factor));
  EXPECT_EQ(as_float(b.rope_scaling.long_factor), as_float(a.rope_scaling.long_factor));
  EXPECT_EQ(b.rope_scaling.original_max_position_embeddings, a.rope_scaling.original_max_position_embeddings);
  EXPECT_FLOAT_EQ(b.rope_scaling.attention_factor, a.rope_scaling.attention_factor);  // a float32 key
}

TEST(GgufExport, F32FileReadBackComputesTheFoldersLogitsExactly) {
  for (const auto& arch : kArchs) {
    SCOPED_TRACE(arch);
    const std::string dir = tiny_model(arch);
    CausalLM original = load_causal_lm(dir);
    GgufModel back = load_gguf_model(export_file(dir, "", ExportType::kF32), LoadOptions{});
    const ModelConfig& a = original->config();
    const ModelConfig& b = back.model->config();
    EXPECT_EQ(b.arch, a.arch);
    EXPECT_EQ(b.sliding_window, a.sliding_window);
    EXPECT_EQ(b.rope_scaling.type, a.rope_scaling.type);
    EXPECT_EQ(b.tie_word_embeddings, a.tie_word_embeddings);
    expect_same_family_settings(a, b);
    EXPECT_TRUE(torch::equal(logits(back.model), logits(original)));
    EXPECT_EQ(back.tokenizer->encode("hello world"), load_tokenizer(dir)->encode("hello world"));
  }
}

TEST(GgufExport, BasePlusAdapterExportedGivesBasePlusAdaptersLogits) {
  const std::string dir = tiny_model("llama");
  CausalLM model = load_causal_lm(dir);
  const LoraOptions o = test::all_linear_lora();
  const std::string adapter = test::save_random_adapter(model, o, 1, dir);
  model->eval();
  const torch::Tensor expected = logits(model);
  GgufModel merged = load_gguf_model(export_file(dir, adapter, ExportType::kF32), LoadOptions{});
  EXPECT_LE(test::max_relative_error(logits(merged.model), expected), 1e-5);  // float32 W + s·B·A vs the unmerged sum

  // The adapter alone: A as is, B with llama.cpp's q/k row order, alpha / r = the scale.
  const auto file = GgufFile::open(export_file(dir, adapter, ExportType::kF32, true));
  EXPECT_EQ(file->metadata().string("general.type", "t"), "adapter");
  EXPECT_EQ(file->metadata().string("adapter.type", "t"), "lora");
  EXPECT_FLOAT_EQ(file->metadata().number("adapter.lora.alpha", "t") / o.r, lora_scale(o));
  const PeftAdapter saved = read_peft_adapter(adapter);
  EXPECT_EQ(file->tensors().size(), 2 * saved.modules.size());
  const LoraTensors& q = saved.modules.at("model.layers.1.self_attn.q_proj");
  EXPECT_TRUE(torch::equal(file->to_float(*file->find("blk.1.attn_q.weight.lora_a")), q.A));
  EXPECT_TRUE(torch::equal(file->to_float(*file->find("blk.1.attn_q.weight.lora_b")),
                           to_gguf_values(model->config(), "model.layers.1.self_attn.q_proj.weight", q.B)));
}

TEST(GgufExport, F16AndQuantizedFilesReadBackCloseToTheModel) {
  const std::string dir = tiny_model("qwen2");
  CausalLM original = load_causal_lm(dir);
  const torch::Tensor expected = logits(original);
  // f16 rounds each weight once (relative 2^-11); 8-bit and 4-bit blocks change the model more, and this tiny model
  // (weights N(0, 0.2²)) amplifies it. The bounds are about 2-4x what it measures (f16 2.3e-3, q8_0 0.041, q4_k_m
  // 0.26), to catch a wrong layout (unrelated logits, error ≥ 1), not to grade the formats (the reference tests
  // check the codes themselves).
  for (const auto& [type, bound] : {std::pair{ExportType::kF16, 1e-2}, std::pair{ExportType::kQ8_0, 0.15}, std::pair{ExportType::kQ4_K_M, 0.5}}) {
    GgufModel back = load_gguf_model(export_file(dir, "", type), LoadOptions{});
    const double error = test::max_relative_error(logits(back.model), expected);
    std::cout << export_type_name(type) << ": max relative logits error " << error << "\n";
    EXPECT_LE(error, bound) << export_type_name(type);
  }
}

nlohmann::json eval_json(const std::string& args) {
  const test::CommandResult r = test::run_qtune("eval --json " + args);
  EXPECT_EQ(r.exit_code, 0) << r.out;
  return nlohmann::json::parse(r.out.substr(r.out.find('{')));
}

// qtune eval on the f16 GGUF of base + adapter and on `qtune merge --dtype f16`'s folder: the same f16 weights
// (both round the float32 merge to nearest even), so the same numbers up to float32 summation order.
TEST(GgufExport, EvalOnTheF16FileEqualsEvalOnTheMergedFolder) {
  const std::string dir = tiny_model("llama");
  CausalLM model = load_causal_lm(dir);
  const std::string work = test::temp_dir("eval_f16");
  const std::string adapter = test::save_random_adapter(model, test::all_linear_lora(), 2, dir);
  auto merged = test::run_qtune("merge --base " + dir + " --adapter " + adapter + " --out " + work + "/merged --dtype f16");
  ASSERT_EQ(merged.exit_code, 0) << merged.out;
  auto exported = test::run_qtune("export --model " + dir + " --adapter " + adapter + " --out " + work + "/m.f16.gguf --type f16");
  ASSERT_EQ(exported.exit_code, 0) << exported.out;
  test::write_file(work + "/text.txt", "A held-out text: the GGUF file and the merged folder must score it alike, token for token.\n");
  const std::string text = " --text " + work + "/text.txt --context 16";
  const nlohmann::json folder = eval_json("--model " + work + "/merged" + text);
  const nlohmann::json file = eval_json("--model " + work + "/m.f16.gguf" + text);
  EXPECT_EQ(file["tokens"], folder["tokens"]);
  EXPECT_NEAR(file["nll_sum"].get<double>(), folder["nll_sum"].get<double>(), 1e-6 * folder["nll_sum"].get<double>());
}

TEST(GgufExport, BadRequestsAreErrorsThatNameTheProblem) {
  const std::string dir = tiny_model("llama");
  const std::string out = test::temp_dir("bad") + "/m.gguf";
  auto r = test::run_qtune("export --model " + dir + " --out " + out + " --type q3_k");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("q4_k_m"), std::string::npos) << r.out;  // lists the types
  EXPECT_EQ(test::run_qtune("export --model " + dir + " --out " + out).exit_code, 0);
  r = test::run_qtune("export --model " + dir + " --out " + out);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("--force"), std::string::npos) << r.out;
  r = test::run_qtune("export --model " + dir + " --out /nonexistent-folder/m.gguf");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("error: "), std::string::npos) << r.out;
  r = test::run_qtune("export --model " + dir + " --out " + out + " --adapter-only");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("--adapter"), std::string::npos) << r.out;
  // An adapter-only file given where a model goes says what it is.
  CausalLM model = load_causal_lm(dir);
  const std::string adapter = test::save_random_adapter(model, test::all_linear_lora(), 3, dir);
  ASSERT_EQ(test::run_qtune("export --model " + dir + " --adapter " + adapter + " --adapter-only --force --out " + out).exit_code, 0);
  r = test::run_qtune("generate --model " + out + " --prompt hi");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("this is a LoRA adapter, not a model"), std::string::npos) << r.out;
  // llama.cpp's gemma2 always ties its output matrix to the embeddings: an untied one is refused, nothing written.
  const std::string untied = test::make_tiny_model("gemma2", "--untie --byte-tokenizer");
  const std::string gemma_out = test::temp_dir("untied") + "/g.gguf";
  r = test::run_qtune("export --model " + untied + " --out " + gemma_out);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("untied embeddings"), std::string::npos) << r.out;
  EXPECT_FALSE(std::filesystem::exists(gemma_out));
}

}  // namespace
}  // namespace qtune
