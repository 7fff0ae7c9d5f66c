// Reading and writing the bitsandbytes 4-bit tensors.
#include "models/bnb_format.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cstring>

#include "core/error.h"

namespace qtune {
namespace {

const char* kQuantStatePrefix = ".quant_state.bitsandbytes__";

std::string dtype_word(at::ScalarType dtype) {
  switch (dtype) {
    case at::kBFloat16: return "bfloat16";
    case at::kHalf: return "float16";
    case at::kFloat: return "float32";
    case at::kDouble: return "float64";
    default: return c10::toString(dtype);
  }
}

at::ScalarType dtype_from_word(const std::string& word, const std::string& where) {
  if (word == "bfloat16") return at::kBFloat16;
  if (word == "float16") return at::kHalf;
  if (word == "float32") return at::kFloat;
  if (word == "float64") return at::kDouble;
  input_error("{}: dtype '{}' is not a float dtype (bfloat16, float16, float32)", where, word);
}

// Python's repr of a float: the shortest digits that round-trip, always with a '.' or an exponent.
std::string python_float(double value) {
  std::string s = fmt::format("{}", value);
  if (s.find_first_of(".eninf") == std::string::npos) s += ".0";
  return s;
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

std::string bnb_quant_state_json(const Quantized4bit& q) {
  std::string json = fmt::format(R"({{"quant_type": "{}", "blocksize": {}, "dtype": "{}", "shape": [{}])", quant_type_name(q.type),
                                 q.blocksize, dtype_word(q.dtype), fmt::join(q.shape, ", "));
  if (q.scales.nested)
    json += fmt::format(R"(, "nested_blocksize": {}, "nested_dtype": "float32", "nested_offset": {})", q.scales.nested_blocksize,
                        python_float(static_cast<double>(q.scales.offset)));
  return json + "}";
}

std::vector<std::pair<std::string, at::Tensor>> bnb_tensors(const std::string& name, const Quantized4bit& q) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  out.emplace_back(name, q.packed.view({-1, 1}));
  out.emplace_back(name + ".absmax", q.scales.absmax);
  out.emplace_back(name + ".quant_map", q.code_map);
  if (q.scales.nested) {
    out.emplace_back(name + ".nested_absmax", q.scales.nested_absmax);
    out.emplace_back(name + ".nested_quant_map", q.scales.nested_map);
  }
  const std::string json = bnb_quant_state_json(q);
  at::Tensor state = at::empty({static_cast<int64_t>(json.size())}, at::kByte);
  std::memcpy(state.data_ptr<uint8_t>(), json.data(), json.size());
  out.emplace_back(name + kQuantStatePrefix + quant_type_name(q.type), state);
  return out;
}

std::vector<TensorSpec> bnb_tensor_specs(const std::string& name, const Quantized4bit& q) {
  const int64_t blocks = q.blocks();
  std::vector<TensorSpec> out;
  out.push_back({name, at::kByte, {ceil_div(q.numel(), 2), 1}});
  out.push_back({name + ".absmax", q.scales.nested ? at::kByte : at::kFloat, {blocks}});
  out.push_back({name + ".quant_map", at::kFloat, {16}});
  if (q.scales.nested) {
    out.push_back({name + ".nested_absmax", at::kFloat, {ceil_div(blocks, q.scales.nested_blocksize)}});
    out.push_back({name + ".nested_quant_map", at::kFloat, {256}});
  }
  out.push_back({name + kQuantStatePrefix + quant_type_name(q.type), at::kByte, {static_cast<int64_t>(bnb_quant_state_json(q).size())}});
  return out;
}

bool is_bnb_aux_tensor(const std::string& name) {
  for (const char* suffix : {".absmax", ".quant_map", ".nested_absmax", ".nested_quant_map"})
    if (name.size() > std::strlen(suffix) && name.compare(name.size() - std::strlen(suffix), std::string::npos, suffix) == 0) return true;
  return name.find(kQuantStatePrefix) != std::string::npos;
}

Quantized4bit read_bnb_weight(const Checkpoint& checkpoint, const std::string& name, const std::vector<int64_t>& expected_shape) {
  // The quant_state tensor names the quant type.
  std::string state_name;
  for (const char* type : {"nf4", "fp4"})
    if (checkpoint.contains(name + kQuantStatePrefix + type)) state_name = name + kQuantStatePrefix + type;
  if (state_name.empty()) {
    for (const auto& other : checkpoint.names())
      if (other.rfind(name + kQuantStatePrefix, 0) == 0)
        input_error("{}: tensor '{}': quant type '{}' is unknown (supported: nf4, fp4)", checkpoint.file_of(other), other,
                    other.substr(name.size() + std::strlen(kQuantStatePrefix)));
    input_error("{}: 4-bit weight '{}' has no '{}nf4' (or fp4) tensor", checkpoint.dir(), name, kQuantStatePrefix);
  }
  const std::string where = checkpoint.file_of(state_name) + ": tensor '" + state_name + "'";
  const at::Tensor state_bytes = checkpoint.view(state_name);
  if (state_bytes.scalar_type() != at::kByte) input_error("{}: must be U8 (UTF-8 JSON)", where);
  nlohmann::json state;
  try {
    state = nlohmann::json::parse(std::string(reinterpret_cast<const char*>(state_bytes.data_ptr<uint8_t>()), state_bytes.numel()));
  } catch (const nlohmann::json::exception&) {
    input_error("{}: is not valid JSON", where);
  }
  auto field = [&](const char* key) -> const nlohmann::json& {
    if (!state.is_object() || !state.contains(key)) input_error("{}: quant_state has no '{}'", where, key);
    return state[key];
  };

  Quantized4bit q;
  if (!field("quant_type").is_string()) input_error("{}: field 'quant_type' must be a string", where);
  q.type = parse_quant_type(field("quant_type").get<std::string>(), where + ": field 'quant_type'");
  if (state_name.substr(state_name.size() - 3) != quant_type_name(q.type))
    input_error("{}: field 'quant_type' is {} but the tensor name says {}", where, quant_type_name(q.type), state_name.substr(state_name.size() - 3));
  if (!field("blocksize").is_number_integer()) input_error("{}: field 'blocksize' must be an integer", where);
  q.blocksize = field("blocksize").get<int64_t>();
  check_blocksize(q.blocksize, where + ": field 'blocksize'");
  if (!field("dtype").is_string()) input_error("{}: field 'dtype' must be a string", where);
  q.dtype = dtype_from_word(field("dtype").get<std::string>(), where + ": field 'dtype'");
  if (!field("shape").is_array()) input_error("{}: field 'shape' must be a list", where);
  for (const auto& d : field("shape")) {
    if (!d.is_number_integer() || d.get<int64_t>() < 0) input_error("{}: field 'shape' must hold non-negative integers", where);
    q.shape.push_back(d.get<int64_t>());
  }
  if (q.shape != expected_shape)
    input_error("{}: field 'shape' is [{}] but config.json implies [{}]", where, fmt::join(q.shape, ", "), fmt::join(expected_shape, ", "));

  const int64_t n = q.numel(), blocks = ceil_div(n, q.blocksize);
  auto tensor = [&](const std::string& suffix, at::ScalarType dtype, int64_t count, const std::string& why) {
    const std::string tensor_name = name + suffix;
    if (!checkpoint.contains(tensor_name)) input_error("{}: tensor '{}' is missing ({})", checkpoint.dir(), tensor_name, why);
    const TensorInfo& info = checkpoint.info(tensor_name);
    if (info.dtype != dtype)
      input_error("{}: tensor '{}' has dtype {} but must be {}", checkpoint.file_of(tensor_name), tensor_name, safetensors_dtype_name(info.dtype),
                  safetensors_dtype_name(dtype));
    if (info.numel() != count)
      input_error("{}: tensor '{}' has {} values but the quant_state ({}) needs {}", checkpoint.file_of(tensor_name), tensor_name, info.numel(), why,
                  count);
    return checkpoint.view(tensor_name).reshape({count});  // a view: it keeps its file mapped
  };
  const std::string shape_text = fmt::format("shape [{}], blocksize {}", fmt::join(q.shape, ", "), q.blocksize);
  q.packed = tensor("", at::kByte, ceil_div(n, 2), shape_text + ", two codes per byte");
  q.code_map = tensor(".quant_map", at::kFloat, 16, "16 code values");
  q.scales.nested = state.contains("nested_blocksize") || checkpoint.contains(name + ".nested_absmax");
  if (!q.scales.nested) {
    q.scales.absmax = tensor(".absmax", at::kFloat, blocks, shape_text);
    return q;
  }
  if (!field("nested_blocksize").is_number_integer()) input_error("{}: field 'nested_blocksize' must be an integer", where);
  q.scales.nested_blocksize = field("nested_blocksize").get<int64_t>();
  check_blocksize(q.scales.nested_blocksize, where + ": field 'nested_blocksize'");
  if (!field("nested_offset").is_number()) input_error("{}: field 'nested_offset' must be a number", where);
  q.scales.offset = field("nested_offset").get<float>();
  q.scales.absmax = tensor(".absmax", at::kByte, blocks, shape_text + ", 8-bit absmax codes");
  q.scales.nested_absmax = tensor(".nested_absmax", at::kFloat, ceil_div(blocks, q.scales.nested_blocksize),
                                  fmt::format("{} absmax values in blocks of {}", blocks, q.scales.nested_blocksize));
  q.scales.nested_map = tensor(".nested_quant_map", at::kFloat, 256, "256 code values");
  return q;
}

std::optional<BnbConfig> read_bnb_config(const nlohmann::json& config, const std::string& where) {
  auto it = config.find("quantization_config");
  if (it == config.end() || it->is_null()) return std::nullopt;
  const auto& q = *it;
  if (!q.is_object()) input_error("{}: 'quantization_config' must be an object", where);
  const std::string method = q.value("quant_method", "bitsandbytes");
  if (method != "bitsandbytes")
    input_error("{}: quantization_config.quant_method '{}' is not supported (qtune reads bitsandbytes 4-bit checkpoints)", where, method);
  BnbConfig out;
  out.load_in_4bit = q.value("load_in_4bit", q.value("_load_in_4bit", false));
  if (!out.load_in_4bit) input_error("{}: quantization_config is not 4-bit (8-bit bitsandbytes checkpoints are not supported)", where);
  out.type = parse_quant_type(q.value("bnb_4bit_quant_type", "fp4"), where + ": quantization_config.bnb_4bit_quant_type");
  out.double_quant = q.value("bnb_4bit_use_double_quant", false);
  if (q.contains("bnb_4bit_compute_dtype") && q["bnb_4bit_compute_dtype"].is_string()) out.compute_dtype = q["bnb_4bit_compute_dtype"];
  return out;
}

nlohmann::ordered_json bnb_quantization_config(const BnbConfig& c) {
  // The keys transformers' BitsAndBytesConfig.to_dict() writes, in its (sorted) order.
  return {{"_load_in_4bit", true},
          {"_load_in_8bit", false},
          {"bnb_4bit_compute_dtype", c.compute_dtype},
          {"bnb_4bit_quant_storage", "uint8"},
          {"bnb_4bit_quant_type", quant_type_name(c.type)},
          {"bnb_4bit_use_double_quant", c.double_quant},
          {"llm_int8_enable_fp32_cpu_offload", false},
          {"llm_int8_has_fp16_weight", false},
          {"llm_int8_skip_modules", nullptr},
          {"llm_int8_threshold", 6.0},
          {"load_in_4bit", true},
          {"load_in_8bit", false},
          {"quant_method", "bitsandbytes"}};
}

}  // namespace qtune
