// PEFT adapter folders: save -> load round trip, adapter_config.json keys and values, tensor names and
// shapes, the alternative names PEFT files use, and the errors for malformed folders.
#include <gtest/gtest.h>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "adapters/peft_format.h"
#include "core/error.h"
#include "models/model_loader.h"
#include "models/safetensors.h"
#include "tests/support/test_support.h"

namespace qtune {
namespace {

LoraOptions options(int64_t r, std::vector<std::string> targets) {
  LoraOptions o;
  o.r = r;
  o.alpha = 16;
  o.dropout = 0.1;
  o.target_modules = std::move(targets);
  return o;
}

void randomize_adapters(CausalLM& model, uint64_t seed) {
  torch::manual_seed(seed);
  torch::NoGradGuard no_grad;
  for (auto& [name, t] : lora_state(model)) t.copy_(torch::randn(t.sizes()) * 0.05);
}

// Expects `fn` to throw an InputError whose message contains every one of `parts`.
template <typename Fn>
void expect_input_error(Fn fn, std::initializer_list<std::string> parts) {
  try {
    fn();
    ADD_FAILURE() << "no InputError";
  } catch (const InputError& e) {
    for (const auto& p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what() << "\n  missing: " << p;
  }
}

TEST(PeftFormat, RoundTripGivesIdenticalLogits) {
  const std::string model_dir = test::make_tiny_model("qwen2");
  CausalLM model = load_causal_lm(model_dir);
  const LoraOptions o = options(4, {"q_proj", "v_proj", "down_proj"});
  inject_lora(model, o, 1);
  randomize_adapters(model, 2);
  const std::string dir = test::temp_dir("adapter");
  save_peft_adapter(model, o, dir, "Qwen/Qwen2.5-0.5B");

  CausalLM fresh = load_causal_lm(model_dir);
  const LoraOptions loaded = load_peft_adapter(fresh, dir);
  EXPECT_EQ(loaded.r, 4);
  EXPECT_EQ(loaded.alpha, 16);
  EXPECT_DOUBLE_EQ(loaded.dropout, 0.1);
  EXPECT_EQ(loaded.target_modules, (std::vector<std::string>{"down_proj", "q_proj", "v_proj"}));
  EXPECT_EQ(loaded.dtype, at::kFloat);
  const torch::Tensor ids = torch::randint(3, 300, {2, 7}, torch::kLong);
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(fresh->forward(ids).equal(model->forward(ids)));
  auto a = lora_state(model), b = lora_state(fresh);
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].first, b[i].first);
    EXPECT_TRUE(a[i].second.equal(b[i].second)) << a[i].first;
  }
  EXPECT_THROW(load_peft_adapter(fresh, dir), c10::Error);  // already adapted
}

TEST(PeftFormat, FileLayoutIsPefts) {
  CausalLM model = load_causal_lm(test::make_tiny_model("llama"));
  LoraOptions o = options(8, {});
  o.target_linear = true;
  o.rslora = true;
  inject_lora(model, o, 0);
  const std::string dir = test::temp_dir("adapter");
  save_peft_adapter(model, o, dir, "meta-llama/Llama-3.2-1B");

  const auto config = nlohmann::json::parse(test::read_file(dir + "/adapter_config.json"));
  EXPECT_EQ(config["peft_type"], "LORA");
  EXPECT_EQ(config["task_type"], "CAUSAL_LM");
  EXPECT_EQ(config["base_model_name_or_path"], "meta-llama/Llama-3.2-1B");
  EXPECT_EQ(config["r"], 8);
  EXPECT_TRUE(config["r"].is_number_integer());
  EXPECT_EQ(config["lora_alpha"], 16);
  EXPECT_TRUE(config["lora_alpha"].is_number_integer());
  EXPECT_DOUBLE_EQ(config["lora_dropout"].get<double>(), 0.1);
  EXPECT_EQ(config["target_modules"],
            (nlohmann::json{"down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"}));
  EXPECT_EQ(config["bias"], "none");
  EXPECT_EQ(config["use_rslora"], true);
  EXPECT_EQ(config["use_dora"], false);
  EXPECT_TRUE(config["modules_to_save"].is_null());
  EXPECT_EQ(config["fan_in_fan_out"], false);
  EXPECT_EQ(config["init_lora_weights"], true);
  EXPECT_EQ(config["inference_mode"], true);
  for (const char* key : {"layers_to_transform", "layers_pattern", "revision", "megatron_config", "layer_replication"})
    EXPECT_TRUE(config.contains(key) && config[key].is_null()) << key;
  for (const char* key : {"rank_pattern", "alpha_pattern", "loftq_config"})
    EXPECT_TRUE(config[key].is_object() && config[key].empty()) << key;
  EXPECT_EQ(config["megatron_core"], "megatron.core");

  auto file = SafetensorsFile::open(dir + "/adapter_model.safetensors");
  EXPECT_EQ(file->tensors().size(), 2u * 7u * 2u);
  EXPECT_EQ(file->metadata().at("format"), "pt");
  // Llama tiny: D = 64, H = 4 x Dh 16, KV = 2 x 16, F from the preset.
  const ModelConfig& c = model->config();
  const TensorInfo* qa = file->find("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight");
  const TensorInfo* kb = file->find("base_model.model.model.layers.0.self_attn.k_proj.lora_B.weight");
  const TensorInfo* da = file->find("base_model.model.model.layers.1.mlp.down_proj.lora_A.weight");
  const TensorInfo* db = file->find("base_model.model.model.layers.1.mlp.down_proj.lora_B.weight");
  ASSERT_TRUE(qa && kb && da && db);
  EXPECT_EQ(qa->shape, (std::vector<int64_t>{8, c.hidden_size}));
  EXPECT_EQ(kb->shape, (std::vector<int64_t>{c.num_kv_heads * c.head_dim, 8}));
  EXPECT_EQ(da->shape, (std::vector<int64_t>{8, c.intermediate_size}));
  EXPECT_EQ(db->shape, (std::vector<int64_t>{c.hidden_size, 8}));
  EXPECT_EQ(qa->dtype, at::kFloat);
  EXPECT_EQ(peft_adapter_config_json(o, "x").find("\n  \"alpha_pattern\": {},\n"), 1u);  // sorted keys, indent 2

  // rsLoRA survives the round trip.
  CausalLM fresh = load_causal_lm(test::make_tiny_model("llama"));
  const LoraOptions loaded = load_peft_adapter(fresh, dir);
  EXPECT_TRUE(loaded.rslora);
  EXPECT_DOUBLE_EQ(lora_of(fresh->projections()[0].second)->scale(), 16 / std::sqrt(8.0));
}

TEST(PeftFormat, AcceptsDefaultAdapterNamesAndNoPrefix) {
  const std::string model_dir = test::make_tiny_model("llama");
  CausalLM model = load_causal_lm(model_dir);
  const LoraOptions o = options(2, {"q_proj"});
  inject_lora(model, o, 0);
  randomize_adapters(model, 3);
  const std::string dir = test::temp_dir("adapter");
  save_peft_adapter(model, o, dir, "base");
  // Rewrite the tensors as ".lora_A.default.weight" (in-memory PEFT names) and without the prefix.
  std::vector<std::pair<std::string, torch::Tensor>> renamed;
  bool prefix = true;
  for (auto& [name, t] : lora_state(model)) {
    std::string n = name;
    n.replace(n.find(".weight"), 7, ".default.weight");
    if (!prefix) n = n.substr(std::string("base_model.model.").size());
    prefix = !prefix;
    renamed.emplace_back(n, t.detach());
  }
  save_safetensors(dir + "/adapter_model.safetensors", renamed);
  CausalLM fresh = load_causal_lm(model_dir);
  load_peft_adapter(fresh, dir);
  const torch::Tensor ids = torch::randint(3, 300, {1, 6}, torch::kLong);
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(fresh->forward(ids).equal(model->forward(ids)));
}

TEST(PeftFormat, MalformedFoldersAreInputErrors) {
  const std::string model_dir = test::make_tiny_model("llama");
  CausalLM model = load_causal_lm(model_dir);
  const LoraOptions o = options(2, {"q_proj", "v_proj"});
  inject_lora(model, o, 0);
  const std::string dir = test::temp_dir("adapter");
  save_peft_adapter(model, o, dir, "base");
  const std::string config_path = dir + "/adapter_config.json";
  const std::string weights_path = dir + "/adapter_model.safetensors";
  const std::string good_config = test::read_file(config_path);
  auto state = lora_state(model);
  auto load = [&] {
    CausalLM fresh = load_causal_lm(model_dir);
    load_peft_adapter(fresh, dir);
  };
  auto with_config = [&](const std::string& key, const nlohmann::json& value) {
    auto c = nlohmann::json::parse(good_config);
    if (value.is_discarded()) c.erase(key);
    else c[key] = value;
    test::write_file(config_path, c.dump());
  };
  const nlohmann::json erase(nlohmann::json::value_t::discarded);

  with_config("peft_type", "IA3");
  expect_input_error(load, {"adapter_config.json", "peft_type", "LORA"});
  with_config("r", erase);
  expect_input_error(load, {"adapter_config.json", "'r'"});
  with_config("r", 3);  // the tensors have rank 2
  expect_input_error(load, {"adapter_model.safetensors", "lora_A", "r = 3"});
  with_config("lora_alpha", "sixteen");
  expect_input_error(load, {"adapter_config.json", "lora_alpha"});
  with_config("target_modules", nlohmann::json{"q_proj", "lm_head"});
  expect_input_error(load, {"adapter_config.json", "target_modules", "lm_head"});
  with_config("target_modules", ".*proj");
  expect_input_error(load, {"adapter_config.json", "target_modules"});
  with_config("target_modules", nlohmann::json{"q_proj"});  // the file also holds v_proj
  expect_input_error(load, {"adapter_model.safetensors", "v_proj", "target_modules"});
  with_config("target_modules", nlohmann::json{"q_proj", "v_proj", "k_proj"});
  expect_input_error(load, {"adapter_model.safetensors", "k_proj.lora_A.weight", "missing"});
  with_config("use_dora", true);  // DoRA without its magnitude vectors
  expect_input_error(load, {"adapter_model.safetensors", "lora_magnitude_vector", "use_dora"});
  with_config("init_lora_weights", "loftq");  // rewrites the base in a way qtune does not
  expect_input_error(load, {"adapter_config.json", "init_lora_weights", "loftq"});
  with_config("bias", "all");
  expect_input_error(load, {"adapter_config.json", "bias"});
  test::write_file(config_path, "{not json");
  expect_input_error(load, {"adapter_config.json"});
  test::write_file(config_path, good_config);

  // Tensors: one missing, a stray one, a wrong shape.
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (auto& [n, t] : state) tensors.emplace_back(n, t.detach());
  auto write_tensors = [&](std::vector<std::pair<std::string, torch::Tensor>> ts) { save_safetensors(weights_path, ts); };
  write_tensors({tensors.begin() + 1, tensors.end()});
  expect_input_error(load, {"adapter_model.safetensors", "layers.0.self_attn.q_proj", "lora_B"});
  auto stray = tensors;
  stray.emplace_back("base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector", torch::ones({64}));
  write_tensors(stray);
  expect_input_error(load, {"adapter_model.safetensors", "lora_magnitude_vector"});
  auto extra_layer = tensors;
  extra_layer.emplace_back("base_model.model.model.layers.5.self_attn.q_proj.lora_A.weight", torch::zeros({2, 64}));
  extra_layer.emplace_back("base_model.model.model.layers.5.self_attn.q_proj.lora_B.weight", torch::zeros({64, 2}));
  write_tensors(extra_layer);
  expect_input_error(load, {"adapter_model.safetensors", "layers.5.self_attn.q_proj", "does not have"});
  auto wrong = tensors;
  wrong[0].second = torch::zeros({2, 63});
  write_tensors(wrong);
  expect_input_error(load, {"adapter_model.safetensors", tensors[0].first, "[2, 63]"});
  std::filesystem::remove(weights_path);
  expect_input_error(load, {dir, "adapter_model.safetensors"});
  std::filesystem::remove(config_path);
  expect_input_error(load, {dir, "adapter_config.json"});
}

}  // namespace
}  // namespace qtune

namespace qtune {
namespace {

// PEFT's adapters on transformers 5's fused experts (adapters/peft_moe.h): read against the MoE base, the column
// layout j·E + e of B taken apart per expert, and one-line errors for what does not fit.
TEST(PeftFormat, FusedExpertAdaptersSplitPerExpertAndAreChecked) {
  const std::string model_dir = test::make_tiny_model("mixtral", "--intermediate 32 --experts 4 --experts-per-token 2");
  const ModelConfig config = ModelConfig::load(model_dir);
  const int64_t E = 4, r = 2, D = config.hidden_size, F = config.moe_intermediate_size;
  const std::string dir = test::temp_dir("fused_adapter");
  auto write = [&](int64_t a_rows) {
    nlohmann::json c = {{"peft_type", "LORA"}, {"r", r}, {"lora_alpha", 4}, {"target_modules", {"q_proj"}},
                        {"target_parameters", {"mlp.experts.gate_up_proj"}}};
    test::write_file(dir + "/adapter_config.json", c.dump());
    std::vector<std::pair<std::string, torch::Tensor>> tensors;
    torch::manual_seed(1);
    for (int64_t layer = 0; layer < config.num_layers; ++layer) {
      const std::string p = "base_model.model.model.layers." + std::to_string(layer) + ".";
      tensors.emplace_back(p + "self_attn.q_proj.lora_A.weight", torch::randn({r, D}));
      tensors.emplace_back(p + "self_attn.q_proj.lora_B.weight", torch::randn({D, r}));
      tensors.emplace_back(p + "mlp.experts.lora_A.weight", torch::randn({a_rows, D}));
      tensors.emplace_back(p + "mlp.experts.lora_B.weight", torch::arange(2 * F * r * E, torch::kFloat).view({2 * F, r * E}));
    }
    save_safetensors(dir + "/adapter_model.safetensors", tensors);
  };
  write(E * r);
  CausalLM model = load_causal_lm(model_dir);
  load_peft_adapter(model, dir);
  const PeftAdapter adapter = read_peft_adapter(dir, &config);
  // Expert 1's up projection: A rows 2..3 (its A_1), B rows F..2F-1 of columns 0·4 + 1 and 1·4 + 1.
  const LoraTensors& up = adapter.modules.at("model.layers.0.block_sparse_moe.experts.1.w3");
  auto file = SafetensorsFile::open(dir + "/adapter_model.safetensors");
  EXPECT_TRUE(up.A.equal(file->view("base_model.model.model.layers.0.mlp.experts.lora_A.weight").narrow(0, 2, 2)));
  EXPECT_EQ(up.B[0][0].item<float>(), static_cast<float>(F * r * E + 1));
  EXPECT_EQ(up.B[0][1].item<float>(), static_cast<float>(F * r * E + E + 1));
  EXPECT_EQ(adapter.modules.size(), static_cast<std::size_t>(config.num_layers * (1 + 2 * E)));  // q_proj, w1 and w3 of each expert

  expect_input_error([&] { read_peft_adapter(dir); }, {"target_parameters", "mixture-of-experts base model"});
  const ModelConfig dense = ModelConfig::load(test::make_tiny_model("llama"));
  expect_input_error([&] { read_peft_adapter(dir, &dense); }, {"target_parameters", "mixture-of-experts base model"});
  write(E * r + 1);
  expect_input_error([&] { read_peft_adapter(dir, &config); }, {"layers.0.mlp.experts", "not rank 2 for each of 4 experts"});
}

TEST(PeftFormat, NewExpertAdaptersTrainWithoutDropoutAsInPeft) {
  const ModelConfig config = ModelConfig::load(test::make_tiny_model("qwen3_moe", "--experts 4 --experts-per-token 2 --moe-intermediate 16"));
  LoraOptions o = options(2, {"q_proj", "down_proj"});
  expect_input_error([&] { check_expert_lora_dropout(config, o); }, {"lora_dropout: 0.1", "set lora_dropout: 0"});
  o.dropout = 0;
  check_expert_lora_dropout(config, o);
  o = options(2, {"q_proj", "v_proj"});  // attention only: dropout as usual
  check_expert_lora_dropout(config, o);
}

}  // namespace
}  // namespace qtune
