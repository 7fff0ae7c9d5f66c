// The training base record: made from the run, written as JSON, read back (or from an old output's YAML),
// and compared on resume.
#include "trainer/training_base.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/json_file.h"
#include "trainer/yaml_document.h"

namespace qtune {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
constexpr const char* kFormat = "qtune-training-base";
constexpr int kVersion = 1;

const char* dtype_name(at::ScalarType dtype) {
  return dtype == at::kBFloat16 ? "bfloat16" : dtype == at::kHalf ? "float16" : "float32";
}

std::string quantize_text(const std::optional<QuantizeOptions>& q) {
  if (!q) return "16-bit";
  return fmt::format("4-bit {} (blocksize {}{})", quant_type_name(q->type), q->blocksize, q->double_quant ? ", double quantization" : "");
}

bool same_quantize(const std::optional<QuantizeOptions>& a, const std::optional<QuantizeOptions>& b) {
  if (!a || !b) return !a && !b;
  return a->type == b->type && a->blocksize == b->blocksize && a->double_quant == b->double_quant;
}

std::string model_text(const TrainingBase& b) {
  return fmt::format("{} (hidden {}, {} layers, vocab {})", b.architecture, b.hidden_size, b.num_layers, b.vocab_size);
}

TrainingBase from_record(const json& j, const std::string& where) {
  if (!j.is_object() || j.value("format", "") != kFormat) input_error("{}: not a {} record", where, kFormat);
  if (j.value("version", 0) != kVersion) input_error("{}: version {} is not supported (this qtune reads version {})", where, j.value("version", 0), kVersion);
  TrainingBase b;
  b.source = where;
  b.base_model = json_required<std::string>(j, "base_model", where);
  const json model = json_required<json>(j, "model", where);
  b.architecture = json_required<std::string>(model, "architecture", where + ": model");
  b.hidden_size = json_required<int64_t>(model, "hidden_size", where + ": model");
  b.num_layers = json_required<int64_t>(model, "num_layers", where + ": model");
  b.vocab_size = json_required<int64_t>(model, "vocab_size", where + ": model");
  if (j.contains("quantize") && !j["quantize"].is_null()) {
    const json& q = j["quantize"];
    b.quantize = QuantizeOptions{parse_quant_type(json_required<std::string>(q, "type", where + ": quantize"), where + ": quantize"),
                                 json_required<int64_t>(q, "blocksize", where + ": quantize"), json_required<bool>(q, "double_quant", where + ": quantize")};
  }
  b.compute_dtype = parse_dtype(json_required<std::string>(j, "compute_dtype", where), where + ": compute_dtype");
  return b;
}

// Outputs of earlier versions: qtune_training.yaml is the config as run (later keys win), with the
// compute dtype appended as bnb_4bit_compute_dtype; defaults as TrainConfig's.
TrainingBase from_old_yaml(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  const json document = yaml_to_json(text.str(), path.string());
  const json c = document.is_object() ? document : json::object();
  TrainingBase b;
  b.source = path.string();
  if (c.contains("base_model") && c["base_model"].is_string()) b.base_model = c["base_model"].get<std::string>();
  if (c.contains("bnb_4bit_compute_dtype") && c["bnb_4bit_compute_dtype"].is_string())
    b.compute_dtype = parse_dtype(c["bnb_4bit_compute_dtype"].get<std::string>(), path.string());
  if (c.value("load_in_4bit", true))
    b.quantize = QuantizeOptions{parse_quant_type(c.value("bnb_4bit_quant_type", "nf4"), path.string()), c.value("bnb_4bit_blocksize", int64_t(64)),
                                 c.value("bnb_4bit_use_double_quant", true)};
  return b;
}

[[noreturn]] void differs(const TrainingBase& checkpoint, const std::string& then, const std::string& now, const std::string& fix) {
  input_error("{}: the checkpoint's base was {}, this run's is {}; {}, or start a new output_dir", checkpoint.source, then, now, fix);
}

}  // namespace

BaseModelInfo BaseModelInfo::read(const std::string& dir) {
  const std::string path = (fs::path(dir) / "config.json").string();
  if (!fs::exists(path)) input_error("{}: no such file (the base model folder needs the model's config.json)", path);
  const json config_json = read_json_file(path);
  return {dir, ModelConfig::from_json(config_json, path), read_bnb_config(config_json, path)};
}

std::optional<QuantizeOptions> base_quantization(const TrainConfig& config, const BaseModelInfo& base) {
  if (base.bnb) return QuantizeOptions{base.bnb->type, 64, base.bnb->double_quant};  // bitsandbytes' blocksize
  if (!config.load_in_4bit) return std::nullopt;
  return QuantizeOptions{parse_quant_type(config.bnb_4bit_quant_type, config.source), config.bnb_4bit_blocksize, config.bnb_4bit_use_double_quant};
}

TrainingBase training_base_of(const TrainConfig& config, const BaseModelInfo& base, at::ScalarType compute_dtype) {
  TrainingBase b;
  b.base_model = config.base_model;
  b.architecture = base.config.hf_class_name();
  b.hidden_size = base.config.hidden_size;
  b.num_layers = base.config.num_layers;
  b.vocab_size = base.config.vocab_size;
  b.quantize = base_quantization(config, base);
  b.compute_dtype = compute_dtype;
  return b;
}

void write_training_base(const std::string& dir, const TrainingBase& b) {
  nlohmann::ordered_json j = {{"format", kFormat}, {"version", kVersion}, {"base_model", b.base_model}};
  j["model"] = {{"architecture", b.architecture}, {"hidden_size", b.hidden_size}, {"num_layers", b.num_layers}, {"vocab_size", b.vocab_size}};
  j["quantize"] = nullptr;
  if (b.quantize) j["quantize"] = {{"type", quant_type_name(b.quantize->type)}, {"blocksize", b.quantize->blocksize}, {"double_quant", b.quantize->double_quant}};
  j["compute_dtype"] = dtype_name(b.compute_dtype.value_or(at::kFloat));
  AtomicFile::write_all((fs::path(dir) / kTrainingBaseFile).string(), j.dump(2) + "\n");
}

TrainingBase read_training_base(const std::string& adapter_dir) {
  const fs::path record = fs::path(adapter_dir) / kTrainingBaseFile, old_yaml = fs::path(adapter_dir) / kTrainingConfigFile;
  if (fs::exists(record)) return from_record(read_json_file(record.string()), record.string());
  if (fs::exists(old_yaml)) return from_old_yaml(old_yaml);
  return {};
}

void check_same_training_base(const TrainingBase& checkpoint, const TrainingBase& run) {
  if (checkpoint.source.empty()) return;  // no record (checkpoints of the first versions)
  if (!checkpoint.architecture.empty() && model_text(checkpoint) != model_text(run))
    differs(checkpoint, model_text(checkpoint) + " from " + checkpoint.base_model, model_text(run) + " from " + run.base_model,
            "resume with the base_model it trained on");
  if (!same_quantize(checkpoint.quantize, run.quantize))
    differs(checkpoint, quantize_text(checkpoint.quantize), quantize_text(run.quantize),
            "set load_in_4bit and bnb_4bit_quant_type, bnb_4bit_blocksize, bnb_4bit_use_double_quant as the checkpoint had them");
  if (checkpoint.compute_dtype && run.compute_dtype && *checkpoint.compute_dtype != *run.compute_dtype)
    differs(checkpoint, std::string("computed in ") + dtype_name(*checkpoint.compute_dtype), std::string("computed in ") + dtype_name(*run.compute_dtype),
            fmt::format("set bf16: {} to compute as it did", *checkpoint.compute_dtype == at::kBFloat16 ? "true" : "false"));
}

}  // namespace qtune
