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
PeftAdapter adapter_to_merge(const MergeOptions& o, const CheckedCheckpoint& checked) {
  if (fs::exists(o.out_dir) && fs::exists(o.base_dir) && fs::equivalent(o.out_dir, o.base_dir))
    input_error("{}: --out must differ from --base", o.out_dir);
  if (fs::exists(o.out_dir) && fs::exists(o.adapter_dir) && fs::equivalent(o.out_dir, o.adapter_dir))
    input_error("{}: --out must differ from --adapter", o.out_dir);
  PeftAdapter adapter = read_peft_adapter(o.adapter_dir);
  check_peft_adapter(adapter, checked.config, o.adapter_dir);
  if (init_uses_base(adapter.options.init))
    input_error("{}: a {} adapter as trained (a checkpoint) belongs to a residual base; merge the run's final adapter, which qtune "
                "saves for the original base", o.adapter_dir, adapter.options.init);
  return adapter;
}

// A projection's weight as training computed with it, [out, in]: deq(W) in the compute dtype for a 4-bit
// base (stored so, or quantized here exactly as the loader does), else the stored weight.
torch::Tensor base_weight(CheckedCheckpoint& checked, const MergeOptions& o, const WeightSpec& spec, at::ScalarType dequantize_dtype) {
  if (checked.bnb) return dequantize_4bit(read_bnb_weight(checked.checkpoint, spec.name, spec.shape), dequantize_dtype);
  if (!o.quantize) return checked.checkpoint.view(spec.name);
  const std::string where = o.base_dir + ": tensor '" + spec.name + "'";
  const QuantizeOptions& q = *o.quantize;
  return dequantize_4bit(quantize_4bit(checked.checkpoint.view(spec.name), q.type, q.blocksize, q.double_quant, where), dequantize_dtype);
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

MergeReport write_merged_model(const MergeOptions& o) {
  torch::NoGradGuard no_grad;
  hf_dtype_name(o.out_dtype);  // refuses other dtypes before any work
  CheckedCheckpoint checked = check_checkpoint(o.base_dir);
  const PeftAdapter adapter = adapter_to_merge(o, checked);
  const double scale = lora_scale(adapter.options);
  const LoraVariant& variant = lora_variant(adapter.options.use_dora);
  MergeReport report;
  report.base_4bit = checked.bnb.has_value() || o.quantize.has_value();
  report.dequantize_dtype = o.compute_dtype ? *o.compute_dtype
                            : checked.bnb   ? parse_dtype(checked.bnb->compute_dtype, o.base_dir + "/config.json: bnb_4bit_compute_dtype")
                                            : at::kBFloat16;
  prepare_model_output_dir(o.out_dir, o.force);
  std::vector<TensorSpec> specs;
  for (const auto& spec : checked.specs) specs.push_back({spec.name, o.out_dtype, spec.shape});
  ShardedWriter writer(o.out_dir, specs, o.max_shard_bytes, {{"format", "pt"}});
  for (const auto& spec : checked.specs) {
    const std::string module = spec.name.substr(0, spec.name.size() - std::string(".weight").size());
    const auto it = spec.decoder_projection ? adapter.modules.find(module) : adapter.modules.end();
    torch::Tensor weight = spec.decoder_projection ? base_weight(checked, o, spec, report.dequantize_dtype) : checked.checkpoint.view(spec.name);
    if (it != adapter.modules.end()) {
      weight = variant.merged_weight(it->second, weight, scale);
      report.merged_modules.push_back(module);
    }
    writer.write(spec.name, weight.to(o.out_dtype));
    checked.checkpoint.release(spec.name);
  }
  writer.finish();
  report.shards = writer.shard_count();
  copy_tokenizer_files(o.base_dir, o.out_dir);
  write_merged_config(o);  // last: a folder with a config.json is a complete model
  return report;
}

}  // namespace qtune
