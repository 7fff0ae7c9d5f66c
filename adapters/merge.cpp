// LoRA merge, in memory and streamed between checkpoint folders.
#include "adapters/merge.h"

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "adapters/lora_init.h"
#include "adapters/peft_format.h"
#include "models/model_files.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "models/bnb_format.h"
#include "models/linear4bit.h"

namespace qtune {
namespace {

namespace fs = std::filesystem;

std::string hf_dtype_name(at::ScalarType dtype) {
  switch (dtype) {
    case at::kFloat: return "float32";
    case at::kBFloat16: return "bfloat16";
    case at::kHalf: return "float16";
    default: input_error("merge: output dtype {} is not supported (use f32, bf16 or f16)", c10::toString(dtype));
  }
}

}  // namespace

torch::Tensor merged_weight(const FrozenLinear& linear, at::ScalarType compute_dtype) {
  torch::NoGradGuard no_grad;
  const auto* q = dynamic_cast<const QuantizedWeight*>(&linear->weight());
  const torch::Tensor base = q != nullptr ? dequantize_4bit(q->quantized(), compute_dtype) : linear->weight().dequantize();  // [out, in]
  const LoraAdapterImpl* lora = lora_of(linear);
  if (lora == nullptr) return base.to(torch::kFloat);
  return lora->merged_weight(base);
}

std::vector<std::pair<std::string, torch::Tensor>> merge_lora(CausalLM& model) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (auto& [name, linear] : model->projections())
    if (lora_of(linear) != nullptr) out.emplace_back(name, merged_weight(linear, model->dtype()));
  return out;
}

namespace {

// The adapter to merge, read and checked against the base; a PiSSA / OLoRA adapter as trained is refused.
PeftAdapter adapter_to_merge(const std::string& adapter_dir, const CheckedCheckpoint& checked) {
  PeftAdapter adapter = read_peft_adapter(adapter_dir, &checked.config);
  check_peft_adapter(adapter, checked.config, adapter_dir);
  if (init_uses_base(adapter.options.init))
    input_error("{}: a {} adapter as trained (a checkpoint) belongs to a residual base; merge the run's final adapter, which qtune "
                "saves for the original base", adapter_dir, adapter.options.init);
  return adapter;
}

void check_out_dir(const MergeOptions& o) {
  if (fs::exists(o.out_dir) && fs::exists(o.base_dir) && fs::equivalent(o.out_dir, o.base_dir))
    input_error("{}: --out must differ from --base", o.out_dir);
  if (fs::exists(o.out_dir) && fs::exists(o.adapter_dir) && fs::equivalent(o.out_dir, o.adapter_dir))
    input_error("{}: --out must differ from --adapter", o.out_dir);
}

// The base's config.json without quantization_config, torch_dtype the output's; ordered, so other keys keep their place.
void write_merged_config(const MergeOptions& o) {
  const std::string config_path = (fs::path(o.base_dir) / "config.json").string();
  std::ifstream config_in(config_path, std::ios::binary);
  nlohmann::ordered_json config;
  try {
    config = nlohmann::ordered_json::parse(config_in);
  } catch (const nlohmann::json::exception&) {
    input_error("{}: invalid JSON", config_path);
  }
  config.erase("quantization_config");
  config["torch_dtype"] = hf_dtype_name(o.out_dtype);
  AtomicFile::write_all((fs::path(o.out_dir) / "config.json").string(), config.dump(2) + "\n");
}

}  // namespace

MergedTensors::MergedTensors(const std::string& base_dir, const std::string& adapter_dir, std::optional<QuantizeOptions> quantize,
                             std::optional<at::ScalarType> compute_dtype)
    : checked_(check_checkpoint(base_dir)), quantize_(quantize) {
  if (!adapter_dir.empty()) adapter_ = adapter_to_merge(adapter_dir, checked_);
  report_.base_4bit = checked_.bnb.has_value() || quantize_.has_value();
  report_.dequantize_dtype = compute_dtype ? *compute_dtype
                             : checked_.bnb ? parse_dtype(checked_.bnb->compute_dtype, base_dir + "/config.json: bnb_4bit_compute_dtype")
                                            : at::kBFloat16;
}

// A projection's weight as training computed with it, [out, in]: deq(W) in the compute dtype for a 4-bit
// base (stored so, or quantized here exactly as the loader does), else the stored weight.
torch::Tensor MergedTensors::base_weight(const WeightSpec& spec) {
  const at::ScalarType dtype = report_.dequantize_dtype;
  if (spec.router) return checked_.checkpoint.view(spec.name);  // never quantized
  if (checked_.bnb) return dequantize_4bit(read_bnb_weight(checked_.checkpoint, spec.name, spec.shape), dtype);
  if (!quantize_) return checked_.checkpoint.view(spec.name);
  const std::string where = checked_.checkpoint.dir() + ": tensor '" + spec.name + "'";
  return dequantize_4bit(quantize_4bit(checked_.checkpoint.view(spec.name), quantize_->type, quantize_->blocksize, quantize_->double_quant, where),
                         dtype);
}

torch::Tensor MergedTensors::get(const WeightSpec& spec) {
  torch::NoGradGuard no_grad;
  if (!spec.decoder_projection && !spec.router) return checked_.checkpoint.view(spec.name);
  torch::Tensor weight = base_weight(spec);
  const std::string module = spec.name.substr(0, spec.name.size() - std::string(".weight").size());
  if (!adapter_) return weight;
  const auto it = adapter_->modules.find(module);
  if (it == adapter_->modules.end()) return weight;
  report_.merged_modules.push_back(module);
  return lora_variant(adapter_->options.use_dora).merged_weight(it->second, weight, lora_scale(adapter_->options));
}

MergeReport write_merged_model(const MergeOptions& o) {
  torch::NoGradGuard no_grad;
  hf_dtype_name(o.out_dtype);  // refuses other dtypes before any work
  check_out_dir(o);
  MergedTensors merged(o.base_dir, o.adapter_dir, o.quantize, o.compute_dtype);
  prepare_model_output_dir(o.out_dir, o.force);
  std::vector<TensorSpec> specs;
  for (const auto& spec : merged.specs()) specs.push_back({spec.name, o.out_dtype, spec.shape});
  ShardedWriter writer(o.out_dir, specs, o.max_shard_bytes, {{"format", "pt"}});
  for (const auto& spec : merged.specs()) {
    writer.write(spec.name, merged.get(spec).to(o.out_dtype));
    merged.release(spec);
  }
  writer.finish();
  MergeReport report = merged.report();
  report.shards = writer.shard_count();
  copy_tokenizer_files(o.base_dir, o.out_dir);
  write_merged_config(o);  // last: a folder with a config.json is a complete model
  return report;
}

}  // namespace qtune
