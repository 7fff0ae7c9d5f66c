// Tests for config.json parsing on the real configs of released models (key sets as published), with
// parameter counts checked against the counts the model publishers state; errors for bad configs.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

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
  EXPECT_EQ(phi.layer_projection_names(0), (std::vector<std::string>{"self_attn.qkv_proj", "self_attn.o_proj", "mlp.gate_up_proj", "mlp.down_proj"}));
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
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;  // one line
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

// Mixture of experts: the published config.json of Mixtral-8x7B-v0.1 and Qwen3-30B-A3B (transformers 4.x keys), and
// the file transformers 5.25 writes for the latter (save_pretrained: num_local_experts, dtype, rope_parameters).
nlohmann::json fixture_json(const std::string& name) {
  return nlohmann::json::parse(std::ifstream(std::filesystem::path(QTUNE_SOURCE_DIR) / "tests/fixtures/model_configs" / (name + ".json")));
}

TEST(ModelConfig, ReadsThePublishedMixtureOfExpertsConfigs) {
  const ModelConfig mixtral = fixture("mixtral_8x7b");
  EXPECT_EQ(mixtral.arch, Architecture::kMixtral);
  EXPECT_EQ(mixtral.num_experts, 8);
  EXPECT_EQ(mixtral.num_experts_per_tok, 2);
  EXPECT_EQ(mixtral.moe_intermediate_size, 14336);  // Mixtral's experts are intermediate_size wide
  EXPECT_TRUE(mixtral.norm_topk_prob);
  EXPECT_FALSE(mixtral.routing_weights_in_compute_dtype);
  EXPECT_DOUBLE_EQ(mixtral.router_aux_loss_coef, 0.02);
  EXPECT_FALSE(mixtral.sliding_window.has_value());
  for (int64_t i = 0; i < mixtral.num_layers; ++i) EXPECT_TRUE(mixtral.is_sparse_layer(i)) << i;
  const auto names = mixtral.layer_projection_names(0);
  EXPECT_EQ(names.size(), 4u + 1u + 8u * 3u);  // attention, router, 8 experts × (w1, w3, w2)
  EXPECT_EQ(names[4], "block_sparse_moe.gate");
  EXPECT_EQ(names[5], "block_sparse_moe.experts.0.w1");
  EXPECT_EQ(names.back(), "block_sparse_moe.experts.7.w2");

  for (const char* name : {"qwen3_30b_a3b", "qwen3_30b_a3b_transformers5"}) {
    const ModelConfig qwen = fixture(name);
    EXPECT_EQ(qwen.arch, Architecture::kQwen3Moe) << name;
    EXPECT_EQ(qwen.num_experts, 128) << name;  // num_experts (4.x) or num_local_experts (5.x)
    EXPECT_EQ(qwen.num_experts_per_tok, 8) << name;
    EXPECT_EQ(qwen.moe_intermediate_size, 768) << name;
    EXPECT_TRUE(qwen.norm_topk_prob) << name;
    EXPECT_TRUE(qwen.routing_weights_in_compute_dtype) << name;
    EXPECT_TRUE(qwen.qk_norm) << name;
    EXPECT_EQ(qwen.decoder_sparse_step, 1) << name;
    EXPECT_TRUE(qwen.mlp_only_layers.empty()) << name;
    EXPECT_DOUBLE_EQ(qwen.rope_theta, 1e6) << name;
    EXPECT_EQ(qwen.layer_projection_names(47)[4], "mlp.gate") << name;
    EXPECT_EQ(qwen.layer_projection_names(47)[5], "mlp.experts.0.gate_proj") << name;
  }
}

TEST(ModelConfig, CountsMixtureOfExpertsParametersAsTransformers) {
  // sum(p.numel() for p in model.parameters()) of the transformers 5.25 model built from the same file on the meta device:
  //   with torch.device("meta"): AutoModelForCausalLM.from_config(AutoConfig.from_pretrained("<fixture>.json"))
  EXPECT_EQ(count_parameters(fixture("mixtral_8x7b")).total(), 46702792704);
  EXPECT_EQ(count_parameters(fixture("qwen3_30b_a3b")).total(), 30532122624);
  EXPECT_EQ(count_parameters(fixture("qwen3_30b_a3b_transformers5")).total(), 30532122624);
  // Dense layers among sparse ones: the same with from_pretrained(..., mlp_only_layers=[0, 47], decoder_sparse_step=2)
  // (layers 0, 2, ..., 46 and 47 dense of intermediate_size 6144; the odd ones but 47 sparse).
  auto mixed = fixture_json("qwen3_30b_a3b");
  mixed["mlp_only_layers"] = {0, 47};
  mixed["decoder_sparse_step"] = 2;
  EXPECT_EQ(count_parameters(ModelConfig::from_json(mixed, "mixed")).total(), 16369793024);
}

// The parameters one token uses, by the published architecture: attention, norms, router and k of E experts per
// layer, embeddings and lm_head.
int64_t active_by_formula(int64_t L, int64_t D, int64_t H, int64_t KV, int64_t Dh, int64_t V, int64_t k, int64_t Fe, int64_t E, int64_t norms_per_layer) {
  const int64_t attention = D * H * Dh + 2 * D * KV * Dh + H * Dh * D;
  const int64_t layer = attention + norms_per_layer + E * D + k * 3 * D * Fe;
  return L * layer + 2 * V * D + D;
}

TEST(ModelConfig, CountsTheParametersOneTokenUses) {
  const ParameterCounts mixtral = count_parameters(fixture("mixtral_8x7b"));
  const int64_t mixtral_active = active_by_formula(32, 4096, 32, 8, 128, 32000, 2, 14336, 8, 2 * 4096);
  EXPECT_EQ(mixtral.active(), mixtral_active);
  EXPECT_EQ(mixtral.routers, 32 * 8 * 4096);
  // Mistral AI publishes "12.9B active parameters" (rounded to 0.1B).
  EXPECT_NEAR(static_cast<double>(mixtral.active()) / 1e9, 12.9, 0.05);

  const ParameterCounts qwen = count_parameters(fixture("qwen3_30b_a3b"));
  const int64_t qwen_active = active_by_formula(48, 2048, 32, 4, 128, 151936, 8, 768, 128, 2 * 2048 + 2 * 128);  // + q/k norms
  EXPECT_EQ(qwen.active(), qwen_active);
  // Qwen publishes "3.3B activated" (3.353B: the figure is cut, not rounded, to 0.1B; the A3B of the name).
  EXPECT_GE(static_cast<double>(qwen.active()) / 1e9, 3.3);
  EXPECT_LT(static_cast<double>(qwen.active()) / 1e9, 3.4);

  const ParameterCounts dense = count_parameters(parse(kMistral_7b));
  EXPECT_EQ(dense.active(), dense.total());
  EXPECT_EQ(dense.routers, 0);
}

TEST(ModelConfig, MixtureOfExpertsHfJsonRoundTrips) {
  for (const char* name : {"mixtral_8x7b", "qwen3_30b_a3b", "qwen3_30b_a3b_transformers5"}) {
    const ModelConfig a = fixture(name);
    const nlohmann::ordered_json written = a.to_hf_json();
    const ModelConfig b = ModelConfig::from_json(nlohmann::json::parse(written.dump()), "round trip");
    EXPECT_EQ(written, b.to_hf_json()) << name;
    EXPECT_EQ(b.num_experts, a.num_experts) << name;
    EXPECT_EQ(b.num_experts_per_tok, a.num_experts_per_tok) << name;
    EXPECT_EQ(b.moe_intermediate_size, a.moe_intermediate_size) << name;
    EXPECT_EQ(b.norm_topk_prob, a.norm_topk_prob) << name;
    EXPECT_EQ(b.mlp_only_layers, a.mlp_only_layers) << name;
    EXPECT_EQ(count_parameters(a).total(), count_parameters(b).total()) << name;
  }
}

TEST(ModelConfig, RejectsInconsistentMixtureOfExpertsKeys) {
  auto too_many = fixture_json("mixtral_8x7b");
  too_many["num_experts_per_tok"] = 9;
  expect_error(too_many, "num_experts_per_tok must be in [1, 8]");
  auto jitter = fixture_json("mixtral_8x7b");
  jitter["router_jitter_noise"] = 0.1;
  expect_error(jitter, "router_jitter_noise");
  auto outside = fixture_json("qwen3_30b_a3b");
  outside["mlp_only_layers"] = {3, 48};
  expect_error(outside, "mlp_only_layers lists layer 48, outside 0..47");
  auto no_experts = fixture_json("qwen3_30b_a3b");
  no_experts["num_experts"] = 0;
  expect_error(no_experts, "number of experts");
}

}  // namespace
}  // namespace qtune
