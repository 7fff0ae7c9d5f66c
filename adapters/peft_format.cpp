// PEFT adapter folders: writing and reading with checked fields.
#include "adapters/peft_format.h"

#include <fmt/ranges.h>
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>

#include "adapters/lora_init.h"
#include "adapters/peft_moe.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/json_file.h"
#include "models/architecture.h"
#include "models/safetensors.h"

namespace qtune {
namespace {

namespace fs = std::filesystem;

const char* kConfigFile = "adapter_config.json";
const char* kWeightsFile = "adapter_model.safetensors";
const std::string kPrefix = "base_model.model.";

std::string last_component(const std::string& module) {
  const auto dot = module.rfind('.');
  return dot == std::string::npos ? module : module.substr(dot + 1);
}

std::string shape_string(at::IntArrayRef shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// "<module>" and 'A' / 'B' / 'm' (DoRA's magnitude) from a stored tensor name; false for anything else.
bool parse_factor_name(const std::string& stored, std::string& module, char& which) {
  std::string name = stored.rfind(kPrefix, 0) == 0 ? stored.substr(kPrefix.size()) : stored;
  const std::vector<std::pair<char, std::string>> parts = {{'A', ".lora_A"}, {'B', ".lora_B"}, {'m', ".lora_magnitude_vector"}};
  for (const auto& [w, part] : parts) {
    for (const std::string& suffix : {part + ".weight", part + ".default.weight", part}) {
      if (ends_with(name, suffix) && name.size() > suffix.size()) {
        module = name.substr(0, name.size() - suffix.size());
        which = w;
        return true;
      }
    }
  }
  return false;
}

// PEFT's init_lora_weights -> qtune's lora_init. Values that only say how A and B were drawn do not matter
// for loading; inits that also rewrite the base weight must be ones qtune reproduces.
std::string parse_init(const nlohmann::json& config, const std::string& where) {
  const auto init = config.find("init_lora_weights");
  if (init == config.end() || init->is_null() || init->is_boolean()) return "kaiming";
  if (!init->is_string()) input_error("{}: key 'init_lora_weights' must be a boolean or a string, got {}", where, init->dump());
  const std::string value = init->get<std::string>();
  if (value == "gaussian" || init_uses_base(value)) return value;
  input_error("{}: key 'init_lora_weights' is \"{}\"; qtune loads adapters initialized with true, false, gaussian, pissa, "
              "pissa_niter_N or olora", where, value);
}

// Keys whose non-default values change the adapter's math in ways qtune does not implement.
void reject_unsupported(const nlohmann::json& config, const std::string& where) {
  auto is_set = [&](const char* key) {
    auto it = config.find(key);
    return it != config.end() && !it->is_null() && !(it->is_boolean() && !it->get<bool>()) && !(it->is_object() && it->empty()) &&
           !(it->is_array() && it->empty());
  };
  if (is_set("fan_in_fan_out")) input_error("{}: key 'fan_in_fan_out' is true; only Linear layers ([out, in] weights) are supported", where);
  if (is_set("modules_to_save")) input_error("{}: key 'modules_to_save' is set; adapters that also save full modules are not supported", where);
  if (is_set("layers_to_transform")) input_error("{}: key 'layers_to_transform' is set; per-layer adapters are not supported", where);
  if (is_set("rank_pattern")) input_error("{}: key 'rank_pattern' is set; per-module ranks are not supported", where);
  if (is_set("alpha_pattern")) input_error("{}: key 'alpha_pattern' is set; per-module alphas are not supported", where);
  if (is_set("lora_bias")) input_error("{}: key 'lora_bias' is true; adapters with a lora_B bias are not supported", where);
  if (is_set("trainable_token_indices"))
    input_error("{}: key 'trainable_token_indices' is set; adapters that train embedding rows are not supported", where);
  auto bias = config.find("bias");
  if (bias != config.end() && !bias->is_null() && !(bias->is_string() && bias->get<std::string>() == "none"))
    input_error("{}: key 'bias' is {}; only \"none\" is supported (no trained biases)", where, bias->dump());
}

// PEFT's target_parameters on transformers 5 MoE models -> the target names of `base`'s checkpoint layout: its experts'
// gate and up (gate_up_proj), down (down_proj) and its router (gate.weight).
std::vector<std::string> expert_targets(const nlohmann::json& config, const ModelConfig* base, const std::string& where) {
  const auto parameters = json_optional<std::vector<std::string>>(config, "target_parameters", where, {});
  if (parameters.empty()) return {};
  if (base == nullptr || base->num_experts == 0)
    input_error("{}: key 'target_parameters' adapts fused MoE experts; read this adapter with its mixture-of-experts base model", where);
  const auto names = base->expert_projection_names();
  std::vector<std::string> out;
  for (const auto& p : parameters) {
    if (ends_with(p, "gate_up_proj")) out.insert(out.end(), {names[0], names[1]});
    else if (ends_with(p, "down_proj")) out.push_back(names[2]);
    else if (ends_with(p, "gate.weight")) out.push_back("gate");
    else input_error("{}: key 'target_parameters' names '{}'; qtune reads LoRA on MoE experts (gate_up_proj, down_proj) and routers (gate.weight)", where, p);
  }
  return out;
}

// target_modules (a list, or "all-linear") and target_parameters (MoE experts and routers) into o's targets.
void parse_targets(const nlohmann::json& config, const ModelConfig* base, const std::string& where, LoraOptions& o) {
  const auto targets = config.find("target_modules");
  const auto& valid = lora_projection_names();
  const std::vector<std::string> experts = expert_targets(config, base, where);
  if ((targets == config.end() || targets->is_null()) && !experts.empty()) {
    o.target_modules = experts;
    return;
  }
  if (targets == config.end() || targets->is_null())
    input_error("{}: missing required key 'target_modules' (a list of: {})", where, fmt::join(valid, " "));
  if (targets->is_string()) {
    if (targets->get<std::string>() != "all-linear")
      input_error("{}: key 'target_modules' is the pattern {}; only a list of module names or \"all-linear\" is supported", where,
                  targets->dump());
    o.target_linear = true;
  } else if (targets->is_array()) {
    for (const auto& t : *targets) {
      if (!t.is_string()) input_error("{}: key 'target_modules' must hold strings, got {}", where, t.dump());
      const std::string name = t.get<std::string>();
      if (name != "all-linear" && std::find(valid.begin(), valid.end(), name) == valid.end())
        input_error("{}: key 'target_modules' names '{}', which is not a decoder projection (valid: {})", where, name,
                    fmt::join(valid, " "));
      o.target_modules.push_back(name);
    }
    if (o.target_modules.empty()) input_error("{}: key 'target_modules' is empty", where);
    o.target_modules.insert(o.target_modules.end(), experts.begin(), experts.end());
  } else {
    input_error("{}: key 'target_modules' must be a list of module names, got {}", where, targets->dump());
  }
}

LoraOptions parse_options(const nlohmann::json& config, const ModelConfig* base, const std::string& where) {
  if (!config.is_object()) input_error("{}: expected a JSON object", where);
  const auto peft_type = json_required<std::string>(config, "peft_type", where);
  if (peft_type != "LORA") input_error("{}: key 'peft_type' is \"{}\"; only LORA adapters are supported", where, peft_type);
  const auto task = config.find("task_type");
  if (task != config.end() && !task->is_null() && !(task->is_string() && task->get<std::string>() == "CAUSAL_LM"))
    input_error("{}: key 'task_type' is {}; expected \"CAUSAL_LM\"", where, task->dump());
  reject_unsupported(config, where);

  LoraOptions o;
  const auto r = config.find("r");
  if (r == config.end() || !r->is_number_integer() || r->get<int64_t>() <= 0)
    input_error("{}: key 'r' must be a positive integer{}", where, r == config.end() ? " (missing)" : ", got " + r->dump());
  o.r = r->get<int64_t>();
  const auto alpha = config.find("lora_alpha");
  if (alpha == config.end() || !alpha->is_number() || !std::isfinite(alpha->get<double>()) || alpha->get<double>() < 0)
    input_error("{}: key 'lora_alpha' must be a number >= 0{}", where, alpha == config.end() ? " (missing)" : ", got " + alpha->dump());
  o.alpha = alpha->get<double>();
  o.dropout = json_optional<double>(config, "lora_dropout", where, 0.0);
  if (!(o.dropout >= 0 && o.dropout < 1)) input_error("{}: key 'lora_dropout' must be in [0, 1), got {}", where, o.dropout);
  o.rslora = json_optional<bool>(config, "use_rslora", where, false);
  o.use_dora = json_optional<bool>(config, "use_dora", where, false);
  o.init = parse_init(config, where);

  parse_targets(config, base, where, o);
  o.target_modules = lora_target_names(o);
  o.target_linear = false;
  return o;
}

}  // namespace

std::string peft_adapter_config_json(const LoraOptions& o, const std::string& base_model_name_or_path) {
  nlohmann::json c;  // std::map-backed: keys come out sorted, as PEFT's json.dumps(sort_keys=True)
  c["alpha_pattern"] = nlohmann::json::object();
  c["auto_mapping"] = nullptr;
  c["base_model_name_or_path"] = base_model_name_or_path;
  c["bias"] = "none";
  c["fan_in_fan_out"] = false;
  c["inference_mode"] = true;
  c["init_lora_weights"] = o.init == "kaiming" ? nlohmann::json(true) : nlohmann::json(o.init);
  c["layer_replication"] = nullptr;
  c["layers_pattern"] = nullptr;
  c["layers_to_transform"] = nullptr;
  c["loftq_config"] = nlohmann::json::object();
  if (o.alpha == std::floor(o.alpha) && std::abs(o.alpha) < 1e15) {
    c["lora_alpha"] = static_cast<int64_t>(o.alpha);  // PEFT's lora_alpha is an int
  } else {
    c["lora_alpha"] = o.alpha;
  }
  c["lora_dropout"] = o.dropout;
  c["megatron_config"] = nullptr;
  c["megatron_core"] = "megatron.core";
  c["modules_to_save"] = nullptr;
  c["peft_type"] = "LORA";
  c["r"] = o.r;
  c["rank_pattern"] = nlohmann::json::object();
  c["revision"] = nullptr;
  c["target_modules"] = lora_target_names(o);
  c["task_type"] = "CAUSAL_LM";
  c["use_dora"] = o.use_dora;
  c["use_rslora"] = o.rslora;
  return c.dump(2, ' ', /*ensure_ascii=*/true);  // Python's json.dumps escapes non-ASCII too
}

void save_peft_adapter(CausalLM& model, const LoraOptions& options, const std::string& dir, const std::string& base_model_name_or_path,
                       PeftSave mode) {
  const bool convert = mode == PeftSave::kForTheOriginalBase && init_uses_base(options.init);
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  std::set<std::string> adapted;  // last name components actually adapted
  auto add = [&tensors](const std::string& name, const torch::Tensor& t) { tensors.emplace_back(name, t.detach().to(torch::kCPU).contiguous()); };
  for (auto& [name, linear] : model->projections()) {
    const LoraAdapterImpl* lora = lora_of(linear);
    if (lora == nullptr) continue;
    TORCH_CHECK(lora->rank() == options.r && lora->lora_A.scalar_type() == options.dtype, "save_peft_adapter: ", name,
                " does not match the options (r, dtype)");
    adapted.insert(last_component(name));
    add(peft_tensor_name(name, 'A'), convert ? torch::cat({lora->lora_A, lora->initial_A}, 0) : lora->lora_A);
    add(peft_tensor_name(name, 'B'), convert ? torch::cat({lora->lora_B, -lora->initial_B}, 1) : lora->lora_B);
    if (lora->magnitude.defined()) add(peft_magnitude_name(name), lora->magnitude);
  }
  TORCH_CHECK(!tensors.empty(), "save_peft_adapter: the model has no LoRA adapters");
  LoraOptions written = options;
  written.target_modules.assign(adapted.begin(), adapted.end());
  written.target_linear = false;
  if (convert) {  // rank 2R with the same scale s
    written.r *= 2;
    written.alpha *= options.rslora ? std::sqrt(2.0) : 2.0;
    written.init = "kaiming";
  }

  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) input_error("{}: cannot create the adapter folder ({})", dir, ec.message());
  save_safetensors((fs::path(dir) / kWeightsFile).string(), tensors, {{"format", "pt"}});
  // adapter_config.json last: a folder with a config is a complete adapter.
  AtomicFile::write_all((fs::path(dir) / kConfigFile).string(), peft_adapter_config_json(written, base_model_name_or_path));
}

namespace {
// A stored factor's dtype and number of dimensions (DoRA's magnitude only with use_dora).
void check_factor(const TensorInfo& info, char which, const LoraOptions& o, const std::string& weights_path) {
  if (info.dtype != at::kFloat && info.dtype != at::kBFloat16 && info.dtype != at::kHalf && info.dtype != at::kDouble)
    input_error("{}: tensor '{}' has dtype {}; expected F32, BF16, F16 or F64", weights_path, info.name, safetensors_dtype_name(info.dtype));
  if (which == 'm' && !o.use_dora)
    input_error("{}: tensor '{}' is a DoRA magnitude, but adapter_config.json does not set use_dora", weights_path, info.name);
  if (info.shape.size() != (which == 'm' ? 1u : 2u))
    input_error("{}: tensor '{}' has shape {}; expected a {}", weights_path, info.name, shape_string(info.shape), which == 'm' ? "vector" : "matrix");
}
}  // namespace

PeftAdapter read_peft_adapter(const std::string& dir, const ModelConfig* base) {
  const std::string config_path = (fs::path(dir) / kConfigFile).string();
  const std::string weights_path = (fs::path(dir) / kWeightsFile).string();
  if (!fs::is_directory(dir)) input_error("{}: no such adapter folder", dir);
  if (!fs::exists(config_path)) input_error("{}: no adapter_config.json; expected a PEFT LoRA adapter folder", dir);
  if (!fs::exists(weights_path)) {
    if (fs::exists(fs::path(dir) / "adapter_model.bin"))
      input_error("{}: only adapter_model.bin (pickle) is present; re-save the adapter with safe_serialization=True", dir);
    input_error("{}: no adapter_model.safetensors", dir);
  }
  const nlohmann::json config = read_json_file(config_path);
  PeftAdapter adapter;
  adapter.options = parse_options(config, base, config_path);
  const bool fused_experts = config.contains("target_parameters") && !config["target_parameters"].empty();
  std::map<std::string, LoraTensors> fused;  // PEFT's modules on transformers 5's fused experts and routers
  adapter.base_model_name_or_path = json_optional<std::string>(config, "base_model_name_or_path", config_path, "");

  auto file = SafetensorsFile::open(weights_path);
  std::set<std::string> seen;
  bool dtype_set = false;
  for (const TensorInfo& info : file->tensors()) {
    std::string module;
    char which = 0;
    if (!parse_factor_name(info.name, module, which))
      input_error("{}: tensor '{}' is not a LoRA factor (expected base_model.model.<module>.lora_A.weight / lora_B.weight)", weights_path,
                  info.name);
    const std::string key = module + "." + which;
    if (!seen.insert(key).second) input_error("{}: tensor '{}' duplicates the lora_{} of module '{}'", weights_path, info.name, which, module);
    check_factor(info, which, adapter.options, weights_path);
    if (!dtype_set && which != 'm') adapter.options.dtype = info.dtype, dtype_set = true;
    if (fused_experts && is_fused_moe_module(module)) {  // ranks checked by unfuse_moe_modules
      (which == 'A' ? fused[module].A : fused[module].B) = file->view(info);
      continue;
    }
    const int64_t rank = which == 'A' ? info.shape[0] : which == 'B' ? info.shape[1] : adapter.options.r;
    if (rank != adapter.options.r)
      input_error("{}: tensor '{}' has shape {}, rank {}, but adapter_config.json says r = {}", weights_path, info.name, shape_string(info.shape),
                  rank, adapter.options.r);
    LoraTensors& f = adapter.modules[module];
    (which == 'A' ? f.A : which == 'B' ? f.B : f.magnitude) = file->view(info);
  }
  if (!fused.empty())  // base is set: parse_options required it for target_parameters
    for (auto& [module, f] : unfuse_moe_modules(fused, *base, adapter.options.r, weights_path)) adapter.modules[module] = f;
  for (const auto& [module, f] : adapter.modules) {
    if (!f.A.defined() || !f.B.defined())
      input_error("{}: module '{}' has {} but no lora_{}", weights_path, module, f.A.defined() ? "lora_A" : f.B.defined() ? "lora_B" : "a magnitude",
                  f.A.defined() ? 'B' : 'A');
    if (adapter.options.use_dora && !f.magnitude.defined())
      input_error("{}: tensor '{}' is missing (adapter_config.json sets use_dora)", weights_path, peft_magnitude_name(module));
  }
  return adapter;
}

void check_peft_adapter(const PeftAdapter& adapter, const ModelConfig& config, const std::string& dir) {
  const std::string weights_path = (fs::path(dir) / kWeightsFile).string();
  std::map<std::string, std::vector<int64_t>> shapes;  // module -> [out, in]
  for (const auto& spec : hf_weight_specs(config))
    if (spec.decoder_projection || spec.router) shapes[spec.name.substr(0, spec.name.size() - std::string(".weight").size())] = spec.shape;
  const std::vector<std::string> expected = lora_target_modules(config, adapter.options);
  for (const auto& module : expected)
    if (!adapter.modules.count(module))
      input_error("{}: tensor '{}' is missing (adapter_config.json targets {} in every layer)", weights_path, peft_tensor_name(module, 'A'),
                  last_component(module));
  for (const auto& [module, f] : adapter.modules) {
    if (!shapes.count(module))
      input_error("{}: tensor '{}' is for module '{}', which the base model ({} layers) does not have", weights_path,
                  peft_tensor_name(module, 'A'), module, config.num_layers);
    if (std::find(expected.begin(), expected.end(), module) == expected.end())
      input_error("{}: tensor '{}' is for '{}', which target_modules in adapter_config.json does not list", weights_path,
                  peft_tensor_name(module, 'A'), last_component(module));
    const auto& s = shapes.at(module);  // [out, in]
    if (f.A.size(1) != s[1])
      input_error("{}: tensor '{}' has shape {}; the base model's {} expects [{}, {}]", weights_path, peft_tensor_name(module, 'A'),
                  shape_string(f.A.sizes()), module, adapter.options.r, s[1]);
    if (f.B.size(0) != s[0])
      input_error("{}: tensor '{}' has shape {}; the base model's {} expects [{}, {}]", weights_path, peft_tensor_name(module, 'B'),
                  shape_string(f.B.sizes()), module, s[0], adapter.options.r);
    if (f.magnitude.defined() && f.magnitude.size(0) != s[0])
      input_error("{}: tensor '{}' has shape {}; the base model's {} expects [{}]", weights_path, peft_magnitude_name(module),
                  shape_string(f.magnitude.sizes()), module, s[0]);
  }
}

void copy_peft_adapter(CausalLM& model, const PeftAdapter& adapter, const std::string& dir) {
  check_peft_adapter(adapter, model->config(), dir);
  const std::string weights_path = (fs::path(dir) / kWeightsFile).string();
  torch::NoGradGuard no_grad;
  for (auto& [name, linear] : model->projections()) {
    LoraAdapterImpl* lora = lora_of(linear);
    if (lora == nullptr) continue;
    const auto it = adapter.modules.find(name);
    if (it == adapter.modules.end()) input_error("{}: tensor '{}' is missing", weights_path, peft_tensor_name(name, 'A'));
    const LoraTensors& f = it->second;
    if (f.A.size(0) != lora->rank() || f.magnitude.defined() != lora->magnitude.defined())
      input_error("{}: module '{}' was saved with another LoRA config ({}r = {}); the adapter here has {}r = {}", weights_path, name,
                  f.magnitude.defined() ? "DoRA, " : "", f.A.size(0), lora->magnitude.defined() ? "DoRA, " : "", lora->rank());
    lora->lora_A.copy_(f.A);
    lora->lora_B.copy_(f.B);
    if (f.magnitude.defined()) lora->magnitude.copy_(f.magnitude);
  }
}

LoraOptions load_peft_adapter(CausalLM& model, const std::string& dir) {
  const PeftAdapter adapter = read_peft_adapter(dir, &model->config());
  LoraOptions options = adapter.options;
  if (options.init.rfind("pissa_niter_", 0) == 0)
    input_error("{}: this adapter is a {} adapter as trained (a checkpoint): its residual base came from a randomized SVD that "
                "cannot be rebuilt; use the run's final adapter, saved for the original base", dir, options.init);
  options.dtype = options.dtype == at::kDouble ? at::kDouble : at::kFloat;  // fp32 masters (or the stored fp64)
  inject_lora(model, options, /*seed=*/0);
  copy_peft_adapter(model, adapter, dir);
  return options;
}

}  // namespace qtune
