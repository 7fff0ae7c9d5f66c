// TrainConfig loading: YAML -> JSON -> typed fields through one table of keys, then validation.
#include "trainer/train_config.h"

#include <unistd.h>

#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <functional>
#include <map>
#include <regex>

#include "core/did_you_mean.h"
#include "core/error.h"
#include "data/chat_template.h"
#include "trainer/yaml_document.h"

namespace qtune {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

// One config key: how to read its JSON value into the config.
struct Key {
  std::string name;
  std::function<void(TrainConfig&, const json&, const std::string&)> read;
};

// Line of each top-level key in the YAML being read (for messages); empty for documents not from YAML.
thread_local const std::map<std::string, int>* current_key_lines = nullptr;

std::string where_key(const std::string& where, const std::string& key) {
  if (current_key_lines != nullptr) {
    auto it = current_key_lines->find(key);
    if (it != current_key_lines->end()) return fmt::format("{}:{}: key '{}'", where, it->second, key);
  }
  return where + ": key '" + key + "'";
}

template <typename T>
Key field(const char* name, T TrainConfig::*member);

template <>
Key field<std::string>(const char* name, std::string TrainConfig::*member) {
  return {name, [=](TrainConfig& c, const json& v, const std::string& where) {
            if (!v.is_string()) input_error("{} must be a string, not {}", where_key(where, name), v.type_name());
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
template <>
Key field<TriState>(const char* name, TriState TrainConfig::*member) {
  return {name, [=](TrainConfig& c, const json& v, const std::string& where) {
            if (v.is_boolean()) c.*member = v.get<bool>() ? TriState::on : TriState::off;
            else if (v == "auto") c.*member = TriState::automatic;
            else input_error("{} must be true, false or auto (got {})", where_key(where, name), v.dump());
          }};
}
template <>
Key field<std::vector<std::string>>(const char* name, std::vector<std::string> TrainConfig::*member) {
  return {name, [=](TrainConfig& c, const json& v, const std::string& where) {
            if (!v.is_array()) input_error("{} must be a list of strings, not {}", where_key(where, name), v.type_name());
            (c.*member).clear();
            for (const auto& item : v) {
              if (!item.is_string()) input_error("{} must be a list of strings; found {}", where_key(where, name), item.dump());
              (c.*member).push_back(item.get<std::string>());
            }
          }};
}

void read_datasets(TrainConfig& c, const json& v, const std::string& where) {
  if (!v.is_array() || v.empty()) input_error("{} must be a non-empty list of datasets", where_key(where, "datasets"));
  c.datasets.clear();
  for (std::size_t i = 0; i < v.size(); ++i) c.datasets.push_back(DatasetSpec::from_json(v[i], fmt::format("{}: datasets[{}]", where, i)));
}

// "22GiB", "24GB", a whole number of bytes, or 2.4e10.
void read_gpu_memory_limit(TrainConfig& c, const json& v, const std::string& where) {
  std::optional<int64_t> bytes;
  if (v.is_number_integer()) bytes = v.get<int64_t>() > 0 ? std::optional<int64_t>(v.get<int64_t>()) : std::nullopt;
  else if (v.is_number() && std::isfinite(v.get<double>()) && v.get<double>() >= 1 && v.get<double>() < 9e18) bytes = std::llround(v.get<double>());
  else if (v.is_string()) bytes = parse_byte_size(v.get<std::string>());
  if (!bytes)
    input_error("{} is {}; write a size such as 22GiB, 24GB, 500MiB or a whole number of bytes", where_key(where, "gpu_memory_limit"), v.dump());
  c.gpu_memory_limit = *bytes;
}

// HF's report_to: one integration or a list of them; only TensorBoard is built in.
void read_report_to(TrainConfig& c, const json& v, const std::string& where) {
  const bool strings = v.is_string() || (v.is_array() && std::all_of(v.begin(), v.end(), [](const json& item) { return item.is_string(); }));
  if (!strings) input_error("{} must be a string or a list of strings (tensorboard or none), not {}", where_key(where, "report_to"), v.dump());
  c.report_to = v.is_string() ? std::vector<std::string>{v.get<std::string>()} : v.get<std::vector<std::string>>();
}

std::vector<Key> model_keys() {
  return {field("base_model", &TrainConfig::base_model),
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
          field("lora_model_dir", &TrainConfig::lora_model_dir)};
}

std::vector<Key> data_keys() {
  return {{"datasets", read_datasets},
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
          field("seed", &TrainConfig::seed)};
}

std::vector<Key> optimization_keys() {
  return {field("micro_batch_size", &TrainConfig::micro_batch_size),
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
          field("loraplus_lr_ratio", &TrainConfig::loraplus_lr_ratio),
          field("loraplus_lr_embedding", &TrainConfig::loraplus_lr_embedding),
          field("max_grad_norm", &TrainConfig::max_grad_norm),
          field("moe_aux_loss_coef", &TrainConfig::moe_aux_loss_coef)};
}

std::vector<Key> run_keys() {
  return {field("bf16", &TrainConfig::bf16),
          field("gradient_checkpointing", &TrainConfig::gradient_checkpointing),
          field("activation_offloading", &TrainConfig::activation_offloading),
          {"gpu_memory_limit", read_gpu_memory_limit},
          field("offload_base", &TrainConfig::offload_base),
          field("skip_nonfinite_steps", &TrainConfig::skip_nonfinite_steps),
          field("device", &TrainConfig::device),
          field("output_dir", &TrainConfig::output_dir),
          field("resume_from_checkpoint", &TrainConfig::resume_from_checkpoint),
          field("logging_steps", &TrainConfig::logging_steps),
          field("save_steps", &TrainConfig::save_steps),
          field("save_total_limit", &TrainConfig::save_total_limit),
          field("stop_after_steps", &TrainConfig::stop_after_steps),
          {"report_to", read_report_to},
          field("logging_dir", &TrainConfig::logging_dir),
          field("eval_steps", &TrainConfig::eval_steps),
          field("ddp_backend", &TrainConfig::ddp_backend),
          field("ddp_timeout", &TrainConfig::ddp_timeout),
          field("ddp_bucket_cap_mb", &TrainConfig::ddp_bucket_cap_mb)};
}

std::vector<Key> preference_keys() {
  return {field("rl", &TrainConfig::rl),
          field("rl_beta", &TrainConfig::rl_beta),
          field("dpo_loss_type", &TrainConfig::dpo_loss_type),
          field("dpo_label_smoothing", &TrainConfig::dpo_label_smoothing),
          field("precompute_ref_log_probs", &TrainConfig::precompute_ref_log_probs),
          field("simpo_gamma", &TrainConfig::simpo_gamma),
          field("cpo_alpha", &TrainConfig::cpo_alpha),
          field("orpo_alpha", &TrainConfig::orpo_alpha),
          field("orpo_prompt_loss", &TrainConfig::orpo_prompt_loss),
          field("disable_dropout", &TrainConfig::disable_dropout)};
}

const std::vector<Key>& keys() {
  static const std::vector<Key> table = [] {
    std::vector<Key> all;
    for (auto group : {model_keys, data_keys, optimization_keys, run_keys, preference_keys})
      for (Key& key : group()) all.push_back(std::move(key));
    return all;
  }();
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

void require_at_least_one(int64_t value, const std::string& where, const char* key) {
  if (value < 1) input_error("{} must be at least 1 (got {})", where_key(where, key), value);
}

// Relative paths in a config file are relative to the file's folder, as users expect when they run
// qtune from elsewhere.
void resolve(std::string& path, const std::string& base_dir) {
  if (!path.empty() && fs::path(path).is_relative()) path = (fs::path(base_dir) / path).lexically_normal().string();
}

void check_model_keys(const TrainConfig& c, const std::string& where) {
  if (c.base_model.empty()) input_error("{}: key 'base_model' is required (a folder with config.json and *.safetensors)", where);
  require_one_of(c.adapter, {"lora", "qlora"}, where, "adapter");
  require_one_of(c.bnb_4bit_quant_type, {"nf4", "fp4"}, where, "bnb_4bit_quant_type");
  require_one_of(c.bnb_4bit_compute_dtype, {"bfloat16", "float16", "float32"}, where, "bnb_4bit_compute_dtype");
  check_blocksize(c.bnb_4bit_blocksize, where_key(where, "bnb_4bit_blocksize"));
  // LoRA's keys are checked where LoRA is defined; its messages start with the key ("lora_r: ...").
  try {
    validate_lora_options(c.lora_options());
  } catch (const InputError& e) {
    const std::string message = e.what();
    const std::string key = message.substr(0, message.find(':'));
    const auto names = key_names();
    if (std::find(names.begin(), names.end(), key) == names.end()) input_error("{}: {}", where, message);
    input_error("{}{}", where_key(where, key), message.substr(key.size()));
  }
}

void check_data_keys(const TrainConfig& c, const std::string& where) {
  if (c.datasets.empty()) input_error("{}: key 'datasets' is required (a list of {{path, type}})", where);
  require_one_of(c.overlong_samples, {"truncate", "drop"}, where, "overlong_samples");
  if (c.chat_template != "tokenizer_default") {
    auto names = chat_template_names();
    names.push_back("tokenizer_default");
    require_one_of(c.chat_template, names, where, "chat_template");
  }
  parse_train_on_eos(c.train_on_eos, where_key(where, "train_on_eos"));
  require_at_least_one(c.sequence_len, where, "sequence_len");
  if (c.val_set_size < 0) input_error("{} must be 0, a fraction below 1 or a count", where_key(where, "val_set_size"));
  // prepare_data() checks that all datasets are of one kind; the first tells which.
  const bool pairs = c.datasets[0].type == DatasetType::preference;
  if (!c.rl.empty() && !pairs) input_error("{}: rl: {} needs preference datasets (type: preference)", where, c.rl);
  if (c.rl.empty() && pairs) input_error("{}: preference datasets (type: preference) need rl: dpo, ipo, orpo or simpo", where);
}

void check_optimization_keys(const TrainConfig& c, const std::string& where) {
  require_at_least_one(c.micro_batch_size, where, "micro_batch_size");
  require_at_least_one(c.gradient_accumulation_steps, where, "gradient_accumulation_steps");
  if (c.learning_rate <= 0) input_error("{} must be positive", where_key(where, "learning_rate"));
  if (c.warmup_ratio < 0 || c.warmup_ratio >= 1) input_error("{} must be in [0, 1)", where_key(where, "warmup_ratio"));
  if (c.adam_beta1 < 0 || c.adam_beta1 >= 1 || c.adam_beta2 < 0 || c.adam_beta2 >= 1)
    input_error("{}: keys 'adam_beta1' and 'adam_beta2' must be in [0, 1)", where);
  if (c.cosine_min_lr_ratio < 0 || c.cosine_min_lr_ratio > 1) input_error("{} must be in [0, 1]", where_key(where, "cosine_min_lr_ratio"));
  require_one_of(c.lr_scheduler, {"cosine", "linear", "constant", "constant_with_warmup"}, where, "lr_scheduler");
  require_one_of(c.optimizer, {"adamw", "adamw_torch"}, where, "optimizer");
  if (c.loraplus_lr_ratio < 0)
    input_error("{} must be a positive number (lora_B learns at learning_rate × it; leave it out or 0 for plain LoRA)", where_key(where, "loraplus_lr_ratio"));
  if (c.loraplus_lr_embedding < 0) input_error("{} must be a number >= 0", where_key(where, "loraplus_lr_embedding"));
  if (c.moe_aux_loss_coef < 0)
    input_error("{} must be a number >= 0 (the load-balancing loss's weight; leave it out or 0 for the model's own setting)",
                where_key(where, "moe_aux_loss_coef"));
}

// The integrations HF's report_to knows besides TensorBoard: named as unsupported rather than as a typo.
void check_report_to(const TrainConfig& c, const std::string& where) {
  static const std::vector<std::string> others = {"all",   "azure_ml",  "clearml", "codecarbon", "comet_ml", "dagshub", "dvclive",
                                                  "flyte", "mlflow",    "neptune", "swanlab",    "trackio",  "wandb"};
  for (const std::string& name : c.report_to) {
    if (std::find(others.begin(), others.end(), name) != others.end())
      input_error("{}: '{}' is not supported; qtune writes TensorBoard event files only: use report_to: tensorboard (or none)",
                  where_key(where, "report_to"), name);
    require_one_of(name, {"tensorboard", "none"}, where, "report_to");
  }
}

void check_run_keys(const TrainConfig& c, const std::string& where) {
  require_one_of(c.device, {"auto", "cpu", "cuda"}, where, "device");
  require_one_of(c.ddp_backend, {"auto", "gloo", "nccl"}, where, "ddp_backend");
  if (c.ddp_timeout < 1) input_error("{} must be at least 1 (seconds)", where_key(where, "ddp_timeout"));
  if (!(c.ddp_bucket_cap_mb > 0)) input_error("{} must be a positive number of MiB", where_key(where, "ddp_bucket_cap_mb"));
  if (c.output_dir.empty()) input_error("{} must name a folder", where_key(where, "output_dir"));
  check_report_to(c, where);
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
  check_model_keys(c, where);
  check_data_keys(c, where);
  check_optimization_keys(c, where);
  check_run_keys(c, where);
  if (!c.rl.empty()) check_preference_keys(c, where);
  // Offloading moves the checkpointed layer inputs to the host: without checkpointing there is nothing to
  // move. Streamed layers are overwritten in their slots: the backward must recompute from them.
  if (c.activation_offloading || c.offload_base == TriState::on) c.gradient_checkpointing = true;
}

// InputError naming `key` unless `dir` is a folder qtune can write in, or can be created as one: its
// nearest existing ancestor must be a writable folder (not a file).
void check_creatable_folder(const std::string& dir, const std::string& source, const char* key) {
  std::error_code error;
  fs::path existing = fs::absolute(dir);
  while (!fs::exists(existing, error) && existing.has_parent_path() && existing != existing.parent_path()) existing = existing.parent_path();
  const std::string why = !fs::is_directory(existing, error) ? fmt::format("{} is a file, not a folder", existing.string())
                          : ::access(existing.c_str(), W_OK | X_OK) != 0 ? fmt::format("no permission to write in {}", existing.string())
                                                                         : "";
  if (!why.empty()) input_error("{}: key '{}': cannot create the folder {}: {}; choose another {}", source, key, dir, why, key);
}

}  // namespace

const char* tri_state_name(TriState value) {
  return value == TriState::on ? "true" : value == TriState::off ? "false" : "auto";
}

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

TrainConfig TrainConfig::from_json(const json& document, const std::string& where, const std::string& base_dir) {
  if (!document.is_object()) input_error("{}: expected a mapping of keys (base_model, datasets, ...)", where);
  TrainConfig config;
  config.source = where;
  for (const auto& [name, value] : document.items()) {
    auto key = std::find_if(keys().begin(), keys().end(), [&](const Key& k) { return k.name == name; });
    if (key == keys().end()) {
      const auto line = current_key_lines ? current_key_lines->find(name) : std::map<std::string, int>::const_iterator();
      const std::string at = current_key_lines && line != current_key_lines->end() ? fmt::format("{}:{}", where, line->second) : where;
      input_error("{}: unknown key '{}'{}", at, name, did_you_mean(name, key_names()));
    }
    if (value.is_null()) continue;  // "key:" with no value keeps the default
    key->read(config, value, where);
  }
  check(config, where);
  for (std::string* path : {&config.base_model, &config.tokenizer, &config.lora_model_dir, &config.output_dir, &config.dataset_prepared_path,
                            &config.logging_dir})
    resolve(*path, base_dir);
  if (config.logging_dir.empty()) config.logging_dir = (fs::path(config.output_dir) / "runs").string();
  if (config.resume_from_checkpoint != "auto") resolve(config.resume_from_checkpoint, base_dir);
  for (auto& dataset : config.datasets) resolve(dataset.path, base_dir);
  config.as_run_yaml = document.dump(2) + "\n";  // JSON is YAML too; load() keeps the file's own layout
  return config;
}

TrainConfig TrainConfig::load(const std::string& path, const std::vector<std::string>& overrides) {
  const ConfigDocument document = read_config_document(path, overrides);
  struct LinesScope {  // errors below name the key's line
    explicit LinesScope(const std::map<std::string, int>* lines) { current_key_lines = lines; }
    ~LinesScope() { current_key_lines = nullptr; }
  } scope(&document.key_lines);
  TrainConfig config = from_json(document.json, path, fs::absolute(path).parent_path().string());
  config.as_run_yaml = document.yaml;
  return config;
}

void TrainConfig::check_paths() const {
  if (!fs::is_directory(base_model))
    input_error("{}: key 'base_model': no model folder at {} (a folder with config.json and *.safetensors)", source, base_model);
  if (!tokenizer.empty() && !fs::exists(tokenizer)) input_error("{}: key 'tokenizer': no tokenizer file or folder at {}", source, tokenizer);
  if (!lora_model_dir.empty() && !fs::exists(fs::path(lora_model_dir) / "adapter_config.json"))
    input_error("{}: key 'lora_model_dir': no PEFT adapter (adapter_config.json) in {}", source, lora_model_dir);
  for (std::size_t i = 0; i < datasets.size(); ++i)
    if (!fs::exists(datasets[i].path)) input_error("{}: datasets[{}]: no such file or folder: {}", source, i, datasets[i].path);
  check_creatable_folder(output_dir, source, "output_dir");
  if (!dataset_prepared_path.empty()) check_creatable_folder(dataset_prepared_path, source, "dataset_prepared_path");
  if (reports_to_tensorboard()) check_creatable_folder(logging_dir, source, "logging_dir");
}

bool TrainConfig::reports_to_tensorboard() const { return std::find(report_to.begin(), report_to.end(), "tensorboard") != report_to.end(); }

std::optional<std::string> check_sequence_len(const TrainConfig& config, const ModelConfig& model, const std::string& model_source) {
  // Linear RoPE scaling stretches the positions the model was trained on by its factor; llama3 scaling is
  // already counted in max_position_embeddings (transformers' convention).
  const RopeScaling& rope = model.rope_scaling;
  const double factor = rope.type == "linear" ? rope.factor : 1.0;
  const double limit = std::floor(static_cast<double>(model.max_position_embeddings) * factor);
  const std::string key = fmt::format("{}: key 'sequence_len'", config.source);
  if (static_cast<double>(config.sequence_len) > limit)
    input_error("{} is {} but the model ({}) handles at most {} positions (max_position_embeddings {}{}); lower sequence_len", key,
                config.sequence_len, model_source, static_cast<int64_t>(limit), model.max_position_embeddings,
                factor != 1.0 ? fmt::format(" × linear RoPE scaling factor {}", factor) : "");
  if (config.sequence_len <= model.max_position_embeddings) return std::nullopt;
  return fmt::format("{} {} is above max_position_embeddings {} of {}: positions beyond it rely on the linear RoPE scaling (factor {})", key,
                     config.sequence_len, model.max_position_embeddings, model_source, factor);
}

}  // namespace qtune
