// TrainConfig loading: YAML -> JSON -> typed fields through one table of keys.
#include "trainer/train_config.h"

#include <fmt/ranges.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <regex>
#include <sstream>

#include "core/did_you_mean.h"
#include "data/chat_template.h"
#include "core/error.h"

namespace qtune {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

// YAML 1.2 core schema for plain scalars.
json plain_scalar(const std::string& s) {
  if (s == "~" || s == "null" || s == "Null" || s == "NULL" || s.empty()) return nullptr;
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  static const std::regex integer(R"([-+]?[0-9]+)"), real(R"([-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?)");
  if (std::regex_match(s, integer)) {
    try {
      return std::stoll(s);
    } catch (const std::out_of_range&) {
    }
  }
  if (std::regex_match(s, real)) return std::stod(s);
  return s;
}

json to_json(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined: return nullptr;
    case YAML::NodeType::Scalar: return node.Tag() == "!" ? json(node.Scalar()) : plain_scalar(node.Scalar());
    case YAML::NodeType::Sequence: {
      json list = json::array();
      for (const auto& item : node) list.push_back(to_json(item));
      return list;
    }
    case YAML::NodeType::Map: {
      json map = json::object();
      for (const auto& item : node) map[item.first.as<std::string>()] = to_json(item.second);
      return map;
    }
  }
  return nullptr;
}

const char* type_word(const json& value) { return value.type_name(); }

// One config key: how to read its JSON value into the config.
struct Key {
  std::string name;
  std::function<void(TrainConfig&, const json&, const std::string&)> read;
};

template <typename T>
Key field(const char* name, T TrainConfig::*member);

// Line of each top-level key in the YAML being read (for messages); empty for documents not from YAML.
thread_local const std::map<std::string, int>* current_key_lines = nullptr;

std::string where_key(const std::string& where, const std::string& key) {
  if (current_key_lines != nullptr) {
    auto it = current_key_lines->find(key);
    if (it != current_key_lines->end()) return fmt::format("{}:{}: key '{}'", where, it->second, key);
  }
  return where + ": key '" + key + "'";
}

// Top-level key -> 1-based line in the YAML text.
std::map<std::string, int> top_level_key_lines(const std::string& yaml_text) {
  std::map<std::string, int> lines;
  try {
    const YAML::Node root = YAML::Load(yaml_text);
    if (root.IsMap())
      for (const auto& item : root) lines[item.first.as<std::string>()] = item.first.Mark().line + 1;
  } catch (const YAML::Exception&) {
  }
  return lines;
}

template <>
Key field<std::string>(const char* name, std::string TrainConfig::*member) {
  return {name, [=](TrainConfig& c, const json& v, const std::string& where) {
            if (!v.is_string()) input_error("{} must be a string, not {}", where_key(where, name), type_word(v));
            c.*member = v.get<std::string>();
          }};
}
template <>
Key field<bool>(const char* name, bool TrainConfig::*member) {
  return {name, [=](TrainConfig& c, const json& v, const std::string& where) {
            if (!v.is_boolean()) input_error("{} must be true or false, not {}", where_key(where, name), v.dump());
            c.*member = v.get<bool>();
          }};
}
template <>
Key field<int64_t>(const char* name, int64_t TrainConfig::*member) {
  return {name, [=](TrainConfig& c, const json& v, const std::string& where) {
            if (!v.is_number_integer()) input_error("{} must be a whole number, not {}", where_key(where, name), v.dump());
            c.*member = v.get<int64_t>();
          }};
}
template <>
Key field<double>(const char* name, double TrainConfig::*member) {
  return {name, [=](TrainConfig& c, const json& v, const std::string& where) {
            if (!v.is_number() || !std::isfinite(v.get<double>())) input_error("{} must be a number, not {}", where_key(where, name), v.dump());
            c.*member = v.get<double>();
          }};
}
// A key that is true, false or auto, kept as that word.
Key true_false_auto(const char* name, std::string TrainConfig::*member) {
  return {name, [=](TrainConfig& c, const json& v, const std::string& where) {
            if (v.is_boolean()) c.*member = v.get<bool>() ? "true" : "false";
            else if (v == "auto") c.*member = "auto";
            else input_error("{} must be true, false or auto (got {})", where_key(where, name), v.dump());
          }};
}
template <>
Key field<std::vector<std::string>>(const char* name, std::vector<std::string> TrainConfig::*member) {
  return {name, [=](TrainConfig& c, const json& v, const std::string& where) {
            if (!v.is_array()) input_error("{} must be a list of strings, not {}", where_key(where, name), type_word(v));
            (c.*member).clear();
            for (const auto& item : v) {
              if (!item.is_string()) input_error("{} must be a list of strings; found {}", where_key(where, name), item.dump());
              (c.*member).push_back(item.get<std::string>());
            }
          }};
}

const std::vector<Key>& keys() {
  static const std::vector<Key> table = {
      field("base_model", &TrainConfig::base_model),
      field("tokenizer", &TrainConfig::tokenizer),
      field("load_in_4bit", &TrainConfig::load_in_4bit),
      field("bnb_4bit_quant_type", &TrainConfig::bnb_4bit_quant_type),
      field("bnb_4bit_use_double_quant", &TrainConfig::bnb_4bit_use_double_quant),
      field("bnb_4bit_compute_dtype", &TrainConfig::bnb_4bit_compute_dtype),
      field("bnb_4bit_blocksize", &TrainConfig::bnb_4bit_blocksize),
      field("adapter", &TrainConfig::adapter),
      field("lora_r", &TrainConfig::lora_r),
      field("lora_alpha", &TrainConfig::lora_alpha),
      field("lora_dropout", &TrainConfig::lora_dropout),
      field("lora_target_modules", &TrainConfig::lora_target_modules),
      field("lora_target_linear", &TrainConfig::lora_target_linear),
      field("peft_use_rslora", &TrainConfig::peft_use_rslora),
      field("peft_use_dora", &TrainConfig::peft_use_dora),
      field("lora_init", &TrainConfig::lora_init),
      field("lora_model_dir", &TrainConfig::lora_model_dir),
      {"datasets",
       [](TrainConfig& c, const json& v, const std::string& where) {
         if (!v.is_array() || v.empty()) input_error("{} must be a non-empty list of datasets", where_key(where, "datasets"));
         c.datasets.clear();
         for (std::size_t i = 0; i < v.size(); ++i) c.datasets.push_back(DatasetSpec::from_json(v[i], fmt::format("{}: datasets[{}]", where, i)));
       }},
      field("chat_template", &TrainConfig::chat_template),
      field("train_on_inputs", &TrainConfig::train_on_inputs),
      field("roles_to_train", &TrainConfig::roles_to_train),
      field("train_on_eos", &TrainConfig::train_on_eos),
      field("sequence_len", &TrainConfig::sequence_len),
      field("sample_packing", &TrainConfig::sample_packing),
      field("pad_to_sequence_len", &TrainConfig::pad_to_sequence_len),
      field("overlong_samples", &TrainConfig::overlong_samples),
      field("val_set_size", &TrainConfig::val_set_size),
      field("shuffle_merged_datasets", &TrainConfig::shuffle_merged_datasets),
      field("dataset_prepared_path", &TrainConfig::dataset_prepared_path),
      field("dataset_processes", &TrainConfig::dataset_processes),
      field("seed", &TrainConfig::seed),
      field("micro_batch_size", &TrainConfig::micro_batch_size),
      field("gradient_accumulation_steps", &TrainConfig::gradient_accumulation_steps),
      field("num_epochs", &TrainConfig::num_epochs),
      field("max_steps", &TrainConfig::max_steps),
      field("learning_rate", &TrainConfig::learning_rate),
      field("lr_scheduler", &TrainConfig::lr_scheduler),
      field("warmup_steps", &TrainConfig::warmup_steps),
      field("warmup_ratio", &TrainConfig::warmup_ratio),
      field("optimizer", &TrainConfig::optimizer),
      field("adam_beta1", &TrainConfig::adam_beta1),
      field("adam_beta2", &TrainConfig::adam_beta2),
      field("adam_epsilon", &TrainConfig::adam_epsilon),
      field("cosine_min_lr_ratio", &TrainConfig::cosine_min_lr_ratio),
      field("weight_decay", &TrainConfig::weight_decay),
      field("max_grad_norm", &TrainConfig::max_grad_norm),
      true_false_auto("bf16", &TrainConfig::bf16),
      field("gradient_checkpointing", &TrainConfig::gradient_checkpointing),
      field("activation_offloading", &TrainConfig::activation_offloading),
      {"gpu_memory_limit",
       [](TrainConfig& c, const json& v, const std::string& where) {
         std::optional<int64_t> bytes;
         if (v.is_number_integer()) bytes = v.get<int64_t>() > 0 ? std::optional<int64_t>(v.get<int64_t>()) : std::nullopt;
         else if (v.is_number() && std::isfinite(v.get<double>()) && v.get<double>() >= 1 && v.get<double>() < 9e18)
           bytes = std::llround(v.get<double>());  // 2.4e10
         else if (v.is_string()) bytes = parse_byte_size(v.get<std::string>());
         if (!bytes)
           input_error("{} is {}; write a size such as 22GiB, 24GB, 500MiB or a whole number of bytes", where_key(where, "gpu_memory_limit"),
                       v.dump());
         c.gpu_memory_limit = *bytes;
       }},
      true_false_auto("offload_base", &TrainConfig::offload_base),
      field("skip_nonfinite_steps", &TrainConfig::skip_nonfinite_steps),
      field("device", &TrainConfig::device),
      field("output_dir", &TrainConfig::output_dir),
      field("resume_from_checkpoint", &TrainConfig::resume_from_checkpoint),
      field("logging_steps", &TrainConfig::logging_steps),
      field("save_steps", &TrainConfig::save_steps),
      field("save_total_limit", &TrainConfig::save_total_limit),
      field("stop_after_steps", &TrainConfig::stop_after_steps),
      field("eval_steps", &TrainConfig::eval_steps),
      field("ddp_backend", &TrainConfig::ddp_backend),
      field("ddp_timeout", &TrainConfig::ddp_timeout),
      field("ddp_bucket_cap_mb", &TrainConfig::ddp_bucket_cap_mb),
      field("rl", &TrainConfig::rl),
      field("rl_beta", &TrainConfig::rl_beta),
      field("dpo_loss_type", &TrainConfig::dpo_loss_type),
      field("dpo_label_smoothing", &TrainConfig::dpo_label_smoothing),
      field("precompute_ref_log_probs", &TrainConfig::precompute_ref_log_probs),
      field("simpo_gamma", &TrainConfig::simpo_gamma),
      field("cpo_alpha", &TrainConfig::cpo_alpha),
      field("orpo_alpha", &TrainConfig::orpo_alpha),
      field("orpo_prompt_loss", &TrainConfig::orpo_prompt_loss),
      field("disable_dropout", &TrainConfig::disable_dropout),
  };
  return table;
}

std::vector<std::string> key_names() {
  std::vector<std::string> names;
  for (const auto& key : keys()) names.push_back(key.name);
  return names;
}

void require_one_of(const std::string& value, const std::vector<std::string>& options, const std::string& where, const char* key) {
  if (std::find(options.begin(), options.end(), value) == options.end())
    input_error("{} is '{}'; use one of: {}{}", where_key(where, key), value, fmt::join(options, ", "), did_you_mean(value, options));
}

// Relative paths in a config file are relative to the file's folder, as users expect when they run
// qtune from elsewhere.
void resolve(std::string& path, const std::string& base_dir) {
  if (!path.empty() && fs::path(path).is_relative()) path = (fs::path(base_dir) / path).lexically_normal().string();
}

void check_preference_keys(TrainConfig& c, const std::string& where) {
  require_one_of(c.rl, {"dpo", "ipo", "orpo", "simpo"}, where, "rl");
  require_one_of(c.dpo_loss_type, {"sigmoid", "ipo", "robust", "hinge"}, where, "dpo_loss_type");
  if (c.rl == "ipo") c.rl = "dpo", c.dpo_loss_type = "ipo";  // Axolotl's spelling of IPO
  if (!(c.rl_beta > 0) || !std::isfinite(c.rl_beta)) input_error("{} must be a positive number (got {})", where_key(where, "rl_beta"), c.rl_beta);
  if (!(c.dpo_label_smoothing >= 0 && c.dpo_label_smoothing < 0.5))
    input_error("{} must be in [0, 0.5) (got {})", where_key(where, "dpo_label_smoothing"), c.dpo_label_smoothing);
  if (!(c.orpo_alpha >= 0) || !std::isfinite(c.orpo_alpha)) input_error("{} must be a number >= 0", where_key(where, "orpo_alpha"));
  if (!(c.cpo_alpha >= 0) || !std::isfinite(c.cpo_alpha)) input_error("{} must be a number >= 0", where_key(where, "cpo_alpha"));
  if (!std::isfinite(c.simpo_gamma)) input_error("{} must be a finite number", where_key(where, "simpo_gamma"));
  if (c.sample_packing)
    input_error("{}: sample_packing does not apply to rl: {} (each pair is one chosen and one rejected row); set sample_packing: false", where, c.rl);
}

void check(TrainConfig& c, const std::string& where) {
  if (c.base_model.empty()) input_error("{}: key 'base_model' is required (a folder with config.json and *.safetensors)", where);
  if (c.datasets.empty()) input_error("{}: key 'datasets' is required (a list of {{path, type}})", where);
  require_one_of(c.adapter, {"lora", "qlora"}, where, "adapter");
  require_one_of(c.bnb_4bit_quant_type, {"nf4", "fp4"}, where, "bnb_4bit_quant_type");
  require_one_of(c.bnb_4bit_compute_dtype, {"bfloat16", "float16", "float32"}, where, "bnb_4bit_compute_dtype");
  check_blocksize(c.bnb_4bit_blocksize, where_key(where, "bnb_4bit_blocksize"));
  require_one_of(c.overlong_samples, {"truncate", "drop"}, where, "overlong_samples");
  require_one_of(c.lora_init, {"kaiming", "gaussian"}, where, "lora_init");
  require_one_of(c.device, {"auto", "cpu", "cuda"}, where, "device");
  require_one_of(c.ddp_backend, {"auto", "gloo", "nccl"}, where, "ddp_backend");
  if (c.ddp_timeout < 1) input_error("{} must be at least 1 (seconds)", where_key(where, "ddp_timeout"));
  if (!(c.ddp_bucket_cap_mb > 0)) input_error("{} must be a positive number of MiB", where_key(where, "ddp_bucket_cap_mb"));
  if (c.peft_use_dora) input_error("{}: key 'peft_use_dora': DoRA is not supported yet; remove the key", where);
  if (c.adam_beta1 < 0 || c.adam_beta1 >= 1 || c.adam_beta2 < 0 || c.adam_beta2 >= 1)
    input_error("{}: keys 'adam_beta1' and 'adam_beta2' must be in [0, 1)", where);
  if (c.cosine_min_lr_ratio < 0 || c.cosine_min_lr_ratio > 1) input_error("{} must be in [0, 1]", where_key(where, "cosine_min_lr_ratio"));
  require_one_of(c.lr_scheduler, {"cosine", "linear", "constant", "constant_with_warmup"}, where, "lr_scheduler");
  require_one_of(c.optimizer, {"adamw", "adamw_torch"}, where, "optimizer");
  if (!c.rl.empty()) check_preference_keys(c, where);
  // prepare_data() checks that all datasets are of one kind; the first tells which.
  const bool pairs = c.datasets[0].type == DatasetType::preference;
  if (!c.rl.empty() && !pairs) input_error("{}: rl: {} needs preference datasets (type: preference)", where, c.rl);
  if (c.rl.empty() && pairs) input_error("{}: preference datasets (type: preference) need rl: dpo, ipo, orpo or simpo", where);
  if (c.chat_template != "tokenizer_default") {
    auto names = chat_template_names();
    names.push_back("tokenizer_default");
    require_one_of(c.chat_template, names, where, "chat_template");
  }
  parse_train_on_eos(c.train_on_eos, where_key(where, "train_on_eos"));
  auto positive = [&](int64_t value, const char* key) {
    if (value < 1) input_error("{} must be at least 1 (got {})", where_key(where, key), value);
  };
  positive(c.sequence_len, "sequence_len");
  positive(c.micro_batch_size, "micro_batch_size");
  positive(c.gradient_accumulation_steps, "gradient_accumulation_steps");
  positive(c.lora_r, "lora_r");
  if (c.learning_rate <= 0) input_error("{} must be positive", where_key(where, "learning_rate"));
  if (c.lora_dropout < 0 || c.lora_dropout >= 1) input_error("{} must be in [0, 1)", where_key(where, "lora_dropout"));
  if (c.val_set_size < 0) input_error("{} must be 0, a fraction below 1 or a count", where_key(where, "val_set_size"));
  if (c.warmup_ratio < 0 || c.warmup_ratio >= 1) input_error("{} must be in [0, 1)", where_key(where, "warmup_ratio"));
  // Offloading moves the checkpointed layer inputs to the host: without checkpointing there is nothing to
  // move. Streamed layers are overwritten in their slots: the backward must recompute from them.
  if (c.activation_offloading || c.offload_base == "true") c.gradient_checkpointing = true;
}

}  // namespace

std::string format_byte_size(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) bytes /= 1024, ++u;
  return u == 0 ? fmt::format("{:.0f} B", bytes) : fmt::format("{:.2f} {}", bytes, units[u]);
}

std::optional<int64_t> parse_byte_size(const std::string& text) {
  static const std::regex size(R"(\s*([0-9]+(\.[0-9]*)?|\.[0-9]+)\s*([A-Za-z]*)\s*)");
  std::smatch m;
  if (!std::regex_match(text, m, size)) return std::nullopt;
  static const std::map<std::string, double> units = {{"", 1},      {"b", 1},       {"kb", 1e3},          {"mb", 1e6},
                                                      {"gb", 1e9},  {"tb", 1e12},   {"kib", 1024.0},      {"mib", 1048576.0},
                                                      {"gib", 1073741824.0}, {"tib", 1099511627776.0}};
  std::string unit = m[3].str();
  std::transform(unit.begin(), unit.end(), unit.begin(), [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  const auto factor = units.find(unit);
  if (factor == units.end()) return std::nullopt;
  const double bytes = std::stod(m[1].str()) * factor->second;
  if (!(bytes >= 1) || bytes > 9.0e18) return std::nullopt;
  return static_cast<int64_t>(std::llround(bytes));
}

json yaml_to_json(const std::string& yaml_text, const std::string& where) {
  try {
    return to_json(YAML::Load(yaml_text));
  } catch (const YAML::Exception& e) {
    input_error("{}:{}: invalid YAML: {}", where, e.mark.line + 1, e.msg);
  }
}

TrainConfig TrainConfig::from_json(const json& document, const std::string& where, const std::string& base_dir) {
  if (!document.is_object()) input_error("{}: expected a mapping of keys (base_model, datasets, ...)", where);
  TrainConfig config;
  config.source = where;
  const auto names = key_names();
  for (const auto& [name, value] : document.items()) {
    auto key = std::find_if(keys().begin(), keys().end(), [&](const Key& k) { return k.name == name; });
    if (key == keys().end()) {
      const auto line = current_key_lines ? current_key_lines->find(name) : std::map<std::string, int>::const_iterator();
      const std::string at = current_key_lines && line != current_key_lines->end() ? fmt::format("{}:{}", where, line->second) : where;
      input_error("{}: unknown key '{}'{}", at, name, did_you_mean(name, names));
    }
    if (value.is_null()) continue;  // "key:" with no value keeps the default
    key->read(config, value, where);
  }
  check(config, where);
  resolve(config.base_model, base_dir);
  resolve(config.tokenizer, base_dir);
  resolve(config.lora_model_dir, base_dir);
  resolve(config.output_dir, base_dir);
  resolve(config.dataset_prepared_path, base_dir);
  if (config.resume_from_checkpoint != "auto") resolve(config.resume_from_checkpoint, base_dir);
  for (auto& dataset : config.datasets) resolve(dataset.path, base_dir);
  return config;
}

TrainConfig TrainConfig::load(const std::string& path, const std::vector<std::string>& overrides) {
  if (!fs::exists(path)) input_error("{}: no such config file", path);
  std::ifstream in(path, std::ios::binary);
  if (!in) input_error("{}: cannot read the config file", path);
  std::stringstream text;
  text << in.rdbuf();
  json document = yaml_to_json(text.str(), path);
  if (document.is_null()) document = json::object();
  std::map<std::string, int> key_lines = top_level_key_lines(text.str());
  struct LinesScope {  // errors below name the key's line
    explicit LinesScope(const std::map<std::string, int>* lines) { current_key_lines = lines; }
    ~LinesScope() { current_key_lines = nullptr; }
  } scope(&key_lines);
  for (const auto& item : overrides) {
    auto eq = item.find('=');
    if (eq == std::string::npos || eq == 0) input_error("override '{}' must be key=value", item);
    json value = yaml_to_json(item.substr(eq + 1), "override " + item);
    if (document.is_object()) document[item.substr(0, eq)] = value;
    key_lines.erase(item.substr(0, eq));  // the value no longer comes from the file
  }
  return from_json(document, path, fs::absolute(path).parent_path().string());
}

void TrainConfig::check_paths() const {
  if (!fs::is_directory(base_model))
    input_error("{}: key 'base_model': no model folder at {} (a folder with config.json and *.safetensors)", source, base_model);
  if (!tokenizer.empty() && !fs::exists(tokenizer)) input_error("{}: key 'tokenizer': no tokenizer file or folder at {}", source, tokenizer);
  if (!lora_model_dir.empty() && !fs::exists(fs::path(lora_model_dir) / "adapter_config.json"))
    input_error("{}: key 'lora_model_dir': no PEFT adapter (adapter_config.json) in {}", source, lora_model_dir);
  for (std::size_t i = 0; i < datasets.size(); ++i)
    if (!fs::exists(datasets[i].path)) input_error("{}: datasets[{}]: no such file or folder: {}", source, i, datasets[i].path);
}

LoadOptions TrainConfig::load_options() const {
  LoadOptions options;
  options.dtype = parse_dtype(bnb_4bit_compute_dtype, source);
  if (load_in_4bit)
    options.quantize = QuantizeOptions{parse_quant_type(bnb_4bit_quant_type, source), bnb_4bit_blocksize, bnb_4bit_use_double_quant};
  return options;
}

TrainingBase training_base(const std::string& adapter_dir) {
  TrainingBase base;
  const fs::path path = fs::path(adapter_dir) / kTrainingConfigFile;
  if (!fs::exists(path)) return base;
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  json document = yaml_to_json(text.str(), path.string());
  const json defaults = json::object();
  const json& c = document.is_object() ? document : defaults;
  if (c.contains("bnb_4bit_compute_dtype") && c["bnb_4bit_compute_dtype"].is_string())
    base.compute_dtype = parse_dtype(c["bnb_4bit_compute_dtype"].get<std::string>(), path.string());
  if (c.value("load_in_4bit", true))
    base.quantize = QuantizeOptions{parse_quant_type(c.value("bnb_4bit_quant_type", "nf4"), path.string()), c.value("bnb_4bit_blocksize", int64_t(64)),
                                    c.value("bnb_4bit_use_double_quant", true)};
  return base;
}

DataConfig TrainConfig::data_config() const {
  DataConfig data;
  data.datasets = datasets;
  data.chat_template = chat_template;
  data.masking = MaskingOptions{train_on_inputs, roles_to_train, parse_train_on_eos(train_on_eos, source)};
  data.val_set_size = val_set_size;
  data.seed = static_cast<uint64_t>(seed);
  data.shuffle = shuffle_merged_datasets;
  data.cache_dir = dataset_prepared_path.empty() ? (fs::path(output_dir) / "prepared").string() : dataset_prepared_path;
  data.threads = static_cast<unsigned>(std::max<int64_t>(0, dataset_processes));
  return data;
}

}  // namespace qtune
