// The bitsandbytes 4-bit checkpoint format: write -> read -> write is byte-identical; a file built by
// hand in the exact HF layout loads with the values it encodes; load-time quantization; and the corpus
// of inconsistent files, each one error naming the tensor and the field.
#include <gtest/gtest.h>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "models/bnb_format.h"
#include "models/linear4bit.h"
#include "models/model_loader.h"
#include "models/quantize_model.h"
#include "tests/support/test_support.h"

namespace qtune {
namespace {

namespace fs = std::filesystem;

std::string quantized_copy(const std::string& model, const std::string& name, bool double_quant, QuantType type = QuantType::NF4) {
  QuantizeModelOptions o;
  o.model_dir = model;
  o.out_dir = test::temp_dir(name);
  o.quantize = {type, 64, double_quant};
  o.force = true;
  write_quantized_model(o);
  return o.out_dir;
}

const FrozenWeight& weight_of(CausalLM model, const std::string& name) {
  for (const auto& [module, linear] : model->projections())
    if (module == name) return linear->weight();
  throw std::runtime_error("no projection " + name);
}

const QuantizedWeight& projection(CausalLM model, const std::string& name) {
  return dynamic_cast<const QuantizedWeight&>(weight_of(model, name));
}

TEST(BnbFormat, WriteReadWriteIsByteIdenticalAndLoadsTheSameCodes) {
  const std::string model = test::make_tiny_model("llama");
  for (bool double_quant : {false, true}) {
    const std::string first = quantized_copy(model, double_quant ? "dq1" : "q1", double_quant);
    const std::string second = quantized_copy(first, double_quant ? "dq2" : "q2", !double_quant);  // options ignored: already 4-bit
    for (const char* file : {"model.safetensors", "config.json", "generation_config.json"})
      EXPECT_EQ(test::read_file(first + "/" + file), test::read_file(second + "/" + file)) << file;
    // The stored codes are those of quantizing the original weight.
    CausalLM loaded = load_causal_lm(first);
    Checkpoint original = Checkpoint::open(model);
    const std::string name = "model.layers.1.mlp.down_proj";
    Quantized4bit expected = quantize_4bit(original.view(name + ".weight"), QuantType::NF4, 64, double_quant, "test");
    const Quantized4bit& got = projection(loaded, name).quantized();
    EXPECT_TRUE(got.packed.equal(expected.packed));
    EXPECT_TRUE(got.scales.absmax.equal(expected.scales.absmax));
    EXPECT_EQ(projection(loaded, name).format(), double_quant ? "nf4-dq" : "nf4");
    // config.json says what transformers needs to load it with bitsandbytes.
    auto config = nlohmann::json::parse(test::read_file(first + "/config.json"));
    EXPECT_EQ(config["quantization_config"]["quant_method"], "bitsandbytes");
    EXPECT_EQ(config["quantization_config"]["bnb_4bit_use_double_quant"], double_quant);
  }
}

TEST(BnbFormat, QuantStateJsonIsWhatPythonWrites) {
  Quantized4bit q = quantize_4bit(torch::ones({4, 64}), QuantType::NF4, 64, true, "t");
  q.scales.offset = 0.0123f;
  EXPECT_EQ(bnb_quant_state_json(q), R"({"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": [4, 64], )"
                                     R"("nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": 0.012299999594688416})");
  q.scales.offset = 1.0f;  // Python's repr keeps ".0"
  EXPECT_NE(bnb_quant_state_json(q).find("\"nested_offset\": 1.0}"), std::string::npos);
}

TEST(BnbFormat, HandBuiltHfLayoutLoads) {
  // A checkpoint assembled tensor by tensor the way transformers + bitsandbytes save one: every
  // projection gets codes 0,1,...,15,0,1,... and absmax 0.5 per block of 64.
  const std::string model = test::make_tiny_model("mistral");
  const std::string dir = test::temp_dir("hand");
  CheckedCheckpoint checked = check_checkpoint(model);
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& spec : checked.specs) {
    if (!spec.decoder_projection) {
      tensors.emplace_back(spec.name, checked.checkpoint.view(spec.name).to(at::kBFloat16));
      continue;
    }
    const int64_t n = spec.shape[0] * spec.shape[1];
    at::Tensor packed = at::empty({n / 2, 1}, at::kByte);
    for (int64_t i = 0; i < n / 2; ++i) packed.data_ptr<uint8_t>()[i] = static_cast<uint8_t>(((2 * i) % 16) << 4 | ((2 * i + 1) % 16));
    tensors.emplace_back(spec.name, packed);
    tensors.emplace_back(spec.name + ".absmax", at::full({n / 64}, 0.5f));
    tensors.emplace_back(spec.name + ".quant_map", at::tensor(std::vector<float>(nf4_values().begin(), nf4_values().end())));
    const std::string state = "{\"quant_type\": \"nf4\", \"blocksize\": 64, \"dtype\": \"bfloat16\", \"shape\": [" +
                              std::to_string(spec.shape[0]) + ", " + std::to_string(spec.shape[1]) + "]}";
    at::Tensor bytes = at::empty({static_cast<int64_t>(state.size())}, at::kByte);
    std::memcpy(bytes.data_ptr(), state.data(), state.size());
    tensors.emplace_back(spec.name + ".quant_state.bitsandbytes__nf4", bytes);
  }
  save_safetensors(dir + "/model.safetensors", tensors, {{"format", "pt"}});
  auto config = nlohmann::json::parse(test::read_file(model + "/config.json"));
  config["quantization_config"] = nlohmann::json::parse(R"({"_load_in_4bit": true, "_load_in_8bit": false, "bnb_4bit_compute_dtype": "bfloat16",
    "bnb_4bit_quant_storage": "uint8", "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": false, "llm_int8_enable_fp32_cpu_offload": false,
    "llm_int8_has_fp16_weight": false, "llm_int8_skip_modules": null, "llm_int8_threshold": 6.0, "load_in_4bit": true, "load_in_8bit": false,
    "quant_method": "bitsandbytes"})");
  test::write_file(dir + "/config.json", config.dump(2));

  CausalLM loaded = load_causal_lm(dir);
  at::Tensor w = projection(loaded, "model.layers.0.self_attn.k_proj").dequantize().to(at::kFloat).flatten();
  for (int64_t i = 0; i < 200; ++i) EXPECT_EQ(w[i].item<float>(), static_cast<float>(static_cast<c10::BFloat16>(nf4_values()[i % 16] * 0.5f))) << i;
  auto r = test::run_qtune("inspect " + dir);
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("nf4"), std::string::npos) << r.out;
}

TEST(BnbFormat, LoadTimeQuantizationEqualsADenseModelOfTheDequantizedWeights) {
  const std::string model = test::make_tiny_model("qwen3");
  LoadOptions options;
  options.quantize = QuantizeOptions{QuantType::NF4, 64, true};
  CausalLM quantized = load_causal_lm(model, options);
  EXPECT_EQ(weight_of(quantized, "model.layers.0.mlp.gate_proj").format(), "nf4-dq");
  EXPECT_EQ(quantized->lm_head->weight().format(), "f32");  // lm_head stays in the compute dtype
  // The reference: the same checkpoint with every projection replaced by its dequantized 4-bit version.
  const std::string reference_dir = test::temp_dir("dequantized");
  CheckedCheckpoint checked = check_checkpoint(model);
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& spec : checked.specs) {
    at::Tensor t = checked.checkpoint.view(spec.name);
    if (spec.decoder_projection) t = dequantize_4bit(quantize_4bit(t, QuantType::NF4, 64, true, spec.name));
    tensors.emplace_back(spec.name, t.contiguous());
  }
  save_safetensors(reference_dir + "/model.safetensors", tensors);
  fs::copy_file(model + "/config.json", reference_dir + "/config.json");
  CausalLM reference = load_causal_lm(reference_dir), original = load_causal_lm(model);
  at::Tensor ids = torch::randint(0, 300, {2, 12});
  torch::NoGradGuard no_grad;
  at::Tensor logits = quantized->forward(ids);
  EXPECT_LT(test::max_relative_error(logits, reference->forward(ids)), 1e-6);
  EXPECT_GT(test::max_relative_error(logits, original->forward(ids)), 1e-3);  // it really is quantized
}

// ---- inconsistent files: each damages one field of a valid 4-bit checkpoint ----

void edit_state(const std::string& dir, const std::string& tensor, const std::function<void(nlohmann::json&)>& edit) {
  auto tensors = std::vector<std::pair<std::string, torch::Tensor>>();
  auto file = SafetensorsFile::open(dir + "/model.safetensors");
  for (const auto& info : file->tensors()) {
    at::Tensor t = file->view(info).clone();
    if (info.name == tensor) {
      auto state = nlohmann::json::parse(std::string(reinterpret_cast<const char*>(t.data_ptr<uint8_t>()), t.numel()));
      edit(state);
      std::string text = state.dump();
      t = at::empty({static_cast<int64_t>(text.size())}, at::kByte);
      std::memcpy(t.data_ptr(), text.data(), text.size());
    }
    tensors.emplace_back(info.name, t);
  }
  file.reset();
  save_safetensors(dir + "/model.safetensors", tensors);
}

void replace_tensor(const std::string& dir, const std::string& old_name, const std::string& new_name, c10::optional<at::Tensor> value) {
  auto tensors = std::vector<std::pair<std::string, torch::Tensor>>();
  auto file = SafetensorsFile::open(dir + "/model.safetensors");
  for (const auto& info : file->tensors()) {
    if (info.name == old_name) {
      if (!new_name.empty()) tensors.emplace_back(new_name, value ? *value : file->view(info).clone());
    } else {
      tensors.emplace_back(info.name, file->view(info).clone());
    }
  }
  file.reset();
  save_safetensors(dir + "/model.safetensors", tensors);
}

TEST(BnbFormat, InconsistentFilesNameTheTensorAndField) {
  const std::string model = test::make_tiny_model("llama");
  const std::string w = "model.layers.0.self_attn.o_proj.weight";  // [64, 64]: 4096 values, 64 blocks
  const std::string state = w + ".quant_state.bitsandbytes__nf4";
  struct Case {
    std::string name;
    std::function<void(const std::string&)> damage;
    std::string problem;
  };
  std::vector<Case> cases = {
      {"packed_size", [&](const std::string& d) { replace_tensor(d, w, w, at::zeros({100, 1}, at::kByte)); }, "'" + w + "' has 100 values"},
      {"absmax_count", [&](const std::string& d) { replace_tensor(d, w + ".absmax", w + ".absmax", at::zeros({63}, at::kByte)); }, "'" + w + ".absmax' has 63 values"},
      {"absmax_dtype", [&](const std::string& d) { replace_tensor(d, w + ".absmax", w + ".absmax", at::zeros({64}, at::kFloat)); }, "'" + w + ".absmax' has dtype F32"},
      {"unknown_type", [&](const std::string& d) { replace_tensor(d, state, w + ".quant_state.bitsandbytes__int3", c10::nullopt); }, "quant type 'int3' is unknown"},
      {"type_field", [&](const std::string& d) { edit_state(d, state, [](auto& s) { s["quant_type"] = "int4"; }); }, "field 'quant_type': quant type 'int4'"},
      {"blocksize", [&](const std::string& d) { edit_state(d, state, [](auto& s) { s["blocksize"] = 48; }); }, "field 'blocksize': blocksize 48 must be a power of two"},
      {"shape", [&](const std::string& d) { edit_state(d, state, [](auto& s) { s["shape"] = {64, 32}; }); }, "field 'shape' is [64, 32] but config.json implies [64, 64]"},
      {"no_state", [&](const std::string& d) { replace_tensor(d, state, "", c10::nullopt); }, "has no '.quant_state.bitsandbytes__nf4'"},
      {"bad_json", [&](const std::string& d) { replace_tensor(d, state, state, at::zeros({3}, at::kByte)); }, "is not valid JSON"},
      {"missing_map", [&](const std::string& d) { replace_tensor(d, w + ".nested_quant_map", "", c10::nullopt); }, "'" + w + ".nested_quant_map' is missing"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string dir = quantized_copy(model, "bad_" + c.name, true);
    c.damage(dir);
    auto r = test::run_qtune("inspect " + dir);
    EXPECT_EQ(r.exit_code, 2) << r.out;
    EXPECT_EQ(r.out.rfind("error: ", 0), 0u) << r.out;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
    EXPECT_NE(r.out.find(c.problem), std::string::npos) << r.out;
  }
}

}  // namespace
}  // namespace qtune
