// LoRA merge, in memory and streamed between checkpoint folders.
#include "adapters/merge.h"

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

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

torch::Tensor merge_factors(const torch::Tensor& base, const torch::Tensor& A, const torch::Tensor& B, double scale) {
  torch::NoGradGuard no_grad;
  TORCH_CHECK(base.dim() == 2 && A.dim() == 2 && B.dim() == 2 && A.size(1) == base.size(1) && B.size(0) == base.size(0) &&
                  A.size(0) == B.size(1),
              "merge_factors: shapes W ", base.sizes(), ", A ", A.sizes(), ", B ", B.sizes(), " do not fit");
  const torch::Tensor w = base.to(torch::kFloat);                                                          // [out, in]
  const torch::Tensor ba = torch::matmul(B.to(w.device(), torch::kFloat), A.to(w.device(), torch::kFloat));  // [out, in]
  return w + ba * scale;
}

torch::Tensor merged_weight(const FrozenLinear& linear, at::ScalarType compute_dtype) {
  torch::NoGradGuard no_grad;
  const auto* q = dynamic_cast<const QuantizedWeight*>(&linear->weight());
  const torch::Tensor base = q != nullptr ? dequantize_4bit(q->quantized(), compute_dtype) : linear->weight().dequantize();  // [out, in]
  const LoraAdapterImpl* lora = lora_of(linear);
  if (lora == nullptr) return base.to(torch::kFloat);
  return merge_factors(base, lora->lora_A, lora->lora_B, lora->scale());
}

std::vector<std::pair<std::string, torch::Tensor>> merge_lora(CausalLM& model) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (auto& [name, linear] : model->projections())
    if (lora_of(linear) != nullptr) out.emplace_back(name, merged_weight(linear, model->dtype()));
  return out;
}

MergeReport write_merged_model(const MergeOptions& o) {
  torch::NoGradGuard no_grad;
  const std::string out_name = hf_dtype_name(o.out_dtype);
  if (fs::exists(o.out_dir) && fs::exists(o.base_dir) && fs::equivalent(o.out_dir, o.base_dir))
    input_error("{}: --out must differ from --base", o.out_dir);
  if (fs::exists(o.out_dir) && fs::exists(o.adapter_dir) && fs::equivalent(o.out_dir, o.adapter_dir))
    input_error("{}: --out must differ from --adapter", o.out_dir);
  CheckedCheckpoint checked = check_checkpoint(o.base_dir);
  const PeftAdapter adapter = read_peft_adapter(o.adapter_dir);
  check_peft_adapter(adapter, checked.config, o.adapter_dir);
  const double scale = lora_scale(adapter.options);

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
    if (!spec.decoder_projection) {
      writer.write(spec.name, checked.checkpoint.view(spec.name).to(o.out_dtype));
      checked.checkpoint.release(spec.name);
      continue;
    }
    const std::string where = o.base_dir + ": tensor '" + spec.name + "'";
    torch::Tensor base;  // [out, in]: deq(W) in the compute dtype for a 4-bit base, else the stored weight
    if (checked.bnb) {
      base = dequantize_4bit(read_bnb_weight(checked.checkpoint, spec.name, spec.shape), report.dequantize_dtype);
    } else if (o.quantize) {
      base = dequantize_4bit(quantize_4bit(checked.checkpoint.view(spec.name), o.quantize->type, o.quantize->blocksize, o.quantize->double_quant, where),
                             report.dequantize_dtype);
    } else {
      base = checked.checkpoint.view(spec.name);
    }
    const std::string module = spec.name.substr(0, spec.name.size() - std::string(".weight").size());
    auto it = adapter.modules.find(module);
    if (it != adapter.modules.end()) {
      writer.write(spec.name, merge_factors(base, it->second.A, it->second.B, scale).to(o.out_dtype));
      report.merged_modules.push_back(module);
    } else {
      writer.write(spec.name, base.to(o.out_dtype));
    }
    checked.checkpoint.release(spec.name);
  }
  writer.finish();
  report.shards = writer.shard_count();

  copy_tokenizer_files(o.base_dir, o.out_dir);

  // config.json last (a folder with a config.json is a complete model); ordered, so other keys keep their place.
  const std::string config_path = (fs::path(o.base_dir) / "config.json").string();
  std::ifstream config_in(config_path, std::ios::binary);
  nlohmann::ordered_json config;
  try {
    config = nlohmann::ordered_json::parse(config_in);
  } catch (const nlohmann::json::exception&) {
    input_error("{}: invalid JSON", config_path);
  }
  config.erase("quantization_config");
  config["torch_dtype"] = out_name;
  AtomicFile::write_all((fs::path(o.out_dir) / "config.json").string(), config.dump(2) + "\n");
  return report;
}

}  // namespace qtune
