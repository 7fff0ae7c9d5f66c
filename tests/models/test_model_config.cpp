// Tests for config.json parsing on the real configs of released models (key sets as published), with
// parameter counts checked against the counts the model publishers state; errors for bad configs.
#include <gtest/gtest.h>

#include <filesystem>

#include "core/error.h"
#include "models/architecture.h"
#include "models/model_config.h"

namespace qtune {
namespace {

ModelConfig parse(const std::string& text) { return ModelConfig::from_json(nlohmann::json::parse(text), "config.json"); }

const char* kLlama2_7b = R"({"architectures": ["LlamaForCausalLM"], "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
  "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 11008, "max_position_embeddings": 4096,
  "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 32, "pretraining_tp": 1,
  "rms_norm_eps": 1e-05, "rope_scaling": null, "tie_word_embeddings": false, "torch_dtype": "float16",
  "transformers_version": "4.31.0.dev0", "use_cache": true, "vocab_size": 32000})";

const char* kLlama31_8b = R"({"architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009], "hidden_act": "silu", "hidden_size": 4096,
  "initializer_range": 0.02, "intermediate_size": 14336, "max_position_embeddings": 131072, "mlp_bias": false,
  "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8, "pretraining_tp": 1,
  "rms_norm_eps": 1e-05, "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
  "original_max_position_embeddings": 8192, "rope_type": "llama3"}, "rope_theta": 500000.0, "tie_word_embeddings": false,
  "torch_dtype": "bfloat16", "transformers_version": "4.43.0.dev0", "use_cache": true, "vocab_size": 128256})";

const char* kMistral_7b = R"({"architectures": ["MistralForCausalLM"], "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
  "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 14336, "max_position_embeddings": 32768,
  "model_type": "mistral", "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
  "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "sliding_window": 4096, "tie_word_embeddings": false,
  "torch_dtype": "bfloat16", "transformers_version": "4.34.0.dev0", "use_cache": true, "vocab_size": 32000})";

const char* kQwen25_05b = R"({"architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
  "eos_token_id": 151645, "hidden_act": "silu", "hidden_size": 896, "initializer_range": 0.02, "intermediate_size": 4864,
  "max_position_embeddings": 32768, "max_window_layers": 21, "model_type": "qwen2", "num_attention_heads": 14,
  "num_hidden_layers": 24, "num_key_value_heads": 2, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
  "sliding_window": 32768, "tie_word_embeddings": true, "torch_dtype": "bfloat16", "transformers_version": "4.43.1",
  "use_cache": true, "use_sliding_window": false, "vocab_size": 151936})";

const char* kQwen3_06b = R"({"architectures": ["Qwen3ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 151643, "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu", "hidden_size": 1024,
  "initializer_range": 0.02, "intermediate_size": 3072, "max_position_embeddings": 40960, "max_window_layers": 28,
  "model_type": "qwen3", "num_attention_heads": 16, "num_hidden_layers": 28, "num_key_value_heads": 8,
  "rms_norm_eps": 1e-06, "rope_scaling": null, "rope_theta": 1000000, "sliding_window": null, "tie_word_embeddings": true,
  "torch_dtype": "bfloat16", "transformers_version": "4.51.0", "use_cache": true, "use_sliding_window": false,
  "vocab_size": 151936})";

TEST(ModelConfig, ParsesReleasedConfigsAndCountsTheirPublishedParameters) {
  // Counts as published with the checkpoints (model cards / safetensors metadata).
  EXPECT_EQ(count_parameters(parse(kLlama2_7b)).total(), 6738415616);
  EXPECT_EQ(count_parameters(parse(kLlama31_8b)).total(), 8030261248);
  EXPECT_EQ(count_parameters(parse(kMistral_7b)).total(), 7241732096);
  EXPECT_EQ(count_parameters(parse(kQwen25_05b)).total(), 494032768);
  EXPECT_EQ(count_parameters(parse(kQwen3_06b)).total(), 596049920);
}

// config.json files written from the published configs of the new families (tests/fixtures/model_configs).
ModelConfig fixture(const std::string& name) {
  return ModelConfig::load((std::filesystem::path(QTUNE_SOURCE_DIR) / "tests/fixtures/model_configs" / (name + ".json")).string());
}

TEST(ModelConfig, CountsThePublishedParametersOfGemmaAndPhi) {
  // The totals the checkpoints publish (safetensors metadata), and for the text parts of Gemma 3 4B/12B the count of
  // transformers' Gemma3ForCausalLM built from the same config (from_config on the meta device, 5.25).
  EXPECT_EQ(count_parameters(fixture("gemma2_2b")).total(), 2614341888);
  EXPECT_EQ(count_parameters(fixture("gemma2_9b")).total(), 9241705984);
  EXPECT_EQ(count_parameters(fixture("gemma3_1b")).total(), 999885952);
  EXPECT_EQ(count_parameters(fixture("gemma3_4b_text")).total(), 3880263168);
  EXPECT_EQ(count_parameters(fixture("gemma3_12b_text")).total(), 11766034176);
  EXPECT_EQ(count_parameters(fixture("phi3_mini_4k")).total(), 3821079552);
  EXPECT_EQ(count_parameters(fixture("phi4")).total(), 14659507200);
}

TEST(ModelConfig, ReadsGemmaAndPhiKeys) {
  const ModelConfig g2 = fixture("gemma2_2b");
  EXPECT_EQ(g2.arch, Architecture::kGemma2);
  EXPECT_TRUE(g2.norm_unit_offset && g2.sandwich_norms && g2.scale_embeddings && g2.tie_word_embeddings);
  EXPECT_EQ(g2.hidden_act, "gelu_pytorch_tanh");
  EXPECT_EQ(g2.attn_logit_softcapping, 50.0);
  EXPECT_EQ(g2.final_logit_softcapping, 30.0);
  EXPECT_EQ(g2.sliding_window_for_layer(0), 4096) << "Gemma 2: even layers slide";
  EXPECT_FALSE(g2.sliding_window_for_layer(1).has_value());
  EXPECT_DOUBLE_EQ(g2.attention_scale(), 1.0 / 16.0);

  const ModelConfig g3 = fixture("gemma3_4b_text");
  EXPECT_EQ(g3.arch, Architecture::kGemma3);
  EXPECT_TRUE(g3.qk_norm);
  EXPECT_FALSE(g3.attn_logit_softcapping.has_value());
  EXPECT_FALSE(g3.final_logit_softcapping.has_value());
  for (int64_t i = 0; i < g3.num_layers; ++i) EXPECT_EQ(g3.sliding_window_for_layer(i).has_value(), (i + 1) % 6 != 0) << i;
  EXPECT_EQ(g3.local_rope_theta, 10000.0);
  EXPECT_EQ(g3.rope_theta, 1000000.0);
  EXPECT_EQ(g3.rope_scaling.type, "linear");
  EXPECT_EQ(g3.eos_token_ids, (std::vector<int64_t>{1, 106}));

  const ModelConfig phi = fixture("phi3_mini_4k");
  EXPECT_TRUE(phi.fused_projections);
  EXPECT_EQ(phi.sliding_window, 2047);
  EXPECT_EQ(phi.layer_projection_names(), (std::vector<std::string>{"self_attn.qkv_proj", "self_attn.o_proj", "mlp.gate_up_proj", "mlp.down_proj"}));
  EXPECT_FALSE(fixture("phi4").sliding_window.has_value());
}

// transformers 5 writes Gemma 3's rope per layer type; Phi-3.5's longrope with Phi-4-mini's partial rotation.
TEST(ModelConfig, ReadsPerLayerTypeRopeAndLongrope) {
  auto g3 = nlohmann::json::parse(R"({"architectures": ["Gemma3ForCausalLM"], "vocab_size": 100, "hidden_size": 64,
    "intermediate_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 16,
    "layer_types": ["sliding_attention", "full_attention", "sliding_attention", "full_attention"], "sliding_window": 8,
    "rope_parameters": {"full_attention": {"rope_type": "linear", "factor": 4.0, "rope_theta": 500000.0},
                        "sliding_attention": {"rope_type": "default", "rope_theta": 20000.0}}})");
  const ModelConfig c = ModelConfig::from_json(g3, "config.json");
  EXPECT_EQ(c.rope_theta, 500000.0);
  EXPECT_EQ(c.local_rope_theta, 20000.0);
  EXPECT_EQ(c.rope_scaling.factor, 4.0);
  EXPECT_FALSE(c.sliding_window_for_layer(3).has_value());

  auto phi = nlohmann::json::parse(fixture("phi3_mini_4k").to_hf_json().dump());
  phi["partial_rotary_factor"] = 0.75;
  phi["max_position_embeddings"] = 131072;
  phi["rope_scaling"] = {{"type", "su"}, {"short_factor", std::vector<double>(36, 1.0)}, {"long_factor", std::vector<double>(36, 2.0)}};
  const ModelConfig p = ModelConfig::from_json(phi, "config.json");
  EXPECT_EQ(p.rope_scaling.type, "longrope") << "Phi-3's early name 'su'";
  EXPECT_EQ(p.rotary_dim(), 72);
  EXPECT_EQ(p.rope_scaling.original_max_position_embeddings, 4096);
  EXPECT_DOUBLE_EQ(p.rope_scaling.attention_factor, std::sqrt(1 + std::log(32.0) / std::log(4096.0))) << "the LongRoPE paper's factor";
  phi["rope_scaling"]["long_factor"] = std::vector<double>(35, 2.0);
  EXPECT_THROW(ModelConfig::from_json(phi, "config.json"), InputError);
}

TEST(ModelConfig, ReadsArchitectureSpecificKeys) {
  ModelConfig llama = parse(kLlama31_8b);
  EXPECT_EQ(llama.arch, Architecture::kLlama);
  EXPECT_EQ(llama.head_dim, 128);
  EXPECT_EQ(llama.num_kv_heads, 8);
  EXPECT_EQ(llama.rope_scaling.type, "llama3");
  EXPECT_EQ(llama.rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_EQ(llama.eos_token_ids, (std::vector<int64_t>{128001, 128008, 128009}));
  EXPECT_FALSE(llama.qkv_bias);

  ModelConfig mistral = parse(kMistral_7b);
  ASSERT_TRUE(mistral.sliding_window.has_value());
  EXPECT_EQ(*mistral.sliding_window, 4096);
  EXPECT_EQ(mistral.sliding_window_for_layer(31), 4096);

  ModelConfig qwen2 = parse(kQwen25_05b);
  EXPECT_TRUE(qwen2.qkv_bias);
  EXPECT_FALSE(qwen2.o_bias);
  EXPECT_TRUE(qwen2.tie_word_embeddings);
  EXPECT_FALSE(qwen2.sliding_window.has_value()) << "use_sliding_window is false";

  ModelConfig qwen3 = parse(kQwen3_06b);
  EXPECT_TRUE(qwen3.qk_norm);
  EXPECT_EQ(qwen3.head_dim, 128) << "explicit head_dim differs from hidden/heads = 64";
  EXPECT_FALSE(qwen3.qkv_bias);
}

TEST(ModelConfig, QwenSlidingWindowAppliesFromMaxWindowLayers) {
  auto json = nlohmann::json::parse(kQwen25_05b);
  json["use_sliding_window"] = true;
  json["sliding_window"] = 4096;
  ModelConfig c = ModelConfig::from_json(json, "config.json");
  EXPECT_FALSE(c.sliding_window_for_layer(20).has_value());
  EXPECT_EQ(c.sliding_window_for_layer(21), 4096);
}

TEST(ModelConfig, AcceptsTransformers5RopeParameters) {
  auto json = nlohmann::json::parse(kLlama31_8b);
  json["rope_parameters"] = json["rope_scaling"];
  json["rope_parameters"]["rope_theta"] = 500000.0;
  json.erase("rope_scaling");
  json.erase("rope_theta");
  ModelConfig c = ModelConfig::from_json(json, "config.json");
  EXPECT_EQ(c.rope_scaling.type, "llama3");
  EXPECT_DOUBLE_EQ(c.rope_theta, 500000.0);
}

TEST(ModelConfig, HfJsonRoundTrips) {
  std::vector<ModelConfig> configs;
  for (const char* text : {kLlama2_7b, kLlama31_8b, kMistral_7b, kQwen25_05b, kQwen3_06b}) configs.push_back(parse(text));
  for (const char* name : {"gemma2_9b", "gemma3_1b", "gemma3_12b_text", "phi3_mini_4k", "phi4"}) configs.push_back(fixture(name));
  for (const ModelConfig& a : configs) {
    ModelConfig b = ModelConfig::from_json(nlohmann::json::parse(a.to_hf_json().dump()), "round trip");
    EXPECT_EQ(a.to_hf_json(), b.to_hf_json());
    EXPECT_EQ(count_parameters(a).total(), count_parameters(b).total());
  }
}

void expect_error(const nlohmann::json& json, const std::string& fragment) {
  try {
    ModelConfig::from_json(json, "dir/config.json");
    ADD_FAILURE() << "accepted: " << json.dump();
  } catch (const InputError& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("dir/config.json"), std::string::npos) << m;
    EXPECT_NE(m.find(fragment), std::string::npos) << m;
  }
}

TEST(ModelConfig, RejectsUnsupportedOrIncompleteConfigs) {
  auto base = nlohmann::json::parse(kLlama31_8b);
  auto gemma = base;
  gemma["architectures"] = {"GemmaForCausalLM"};
  expect_error(gemma, "supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, Gemma2ForCausalLM");
  for (const char* key : {"hidden_size", "vocab_size", "num_hidden_layers", "intermediate_size", "num_attention_heads"}) {
    auto missing = base;
    missing.erase(key);
    expect_error(missing, key);
  }
  auto wrong_type = base;
  wrong_type["hidden_size"] = "big";
  expect_error(wrong_type, "wrong type");
  auto bad_gqa = base;
  bad_gqa["num_key_value_heads"] = 5;
  expect_error(bad_gqa, "multiple");
  auto yarn = base;
  yarn["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  expect_error(yarn, "yarn");
  auto gelu = base;
  gelu["hidden_act"] = "gelu";
  expect_error(gelu, "hidden_act");
  auto multimodal = base;
  multimodal["architectures"] = {"Gemma3ForConditionalGeneration"};
  expect_error(multimodal, "vision tower");
  auto g2 = nlohmann::json::parse(fixture("gemma2_2b").to_hf_json().dump());
  auto layers = g2;
  layers["layer_types"] = {"sliding_attention"};
  expect_error(layers, "layer_types has 1 entries for 26 layers");
  auto cap = g2;
  cap["attn_logit_softcapping"] = -1.0;
  expect_error(cap, "attn_logit_softcapping");
  expect_error(nlohmann::json::array(), "object");
}

}  // namespace
}  // namespace qtune
