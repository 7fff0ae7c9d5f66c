// Checkpoint checking and loading. Tensors are converted one at a time from the mapped files, so host
// memory holds the model in its compute dtype plus one tensor.
#include "models/model_loader.h"

#include <fmt/ranges.h>
#include <filesystem>
#include <set>

#include "core/error.h"
#include "core/json_file.h"
#include "models/linear4bit.h"

namespace qtune {
namespace {

std::string shape_string(const std::vector<int64_t>& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

bool is_float(at::ScalarType t) { return t == at::kFloat || t == at::kBFloat16 || t == at::kHalf || t == at::kDouble; }

}  // namespace

at::ScalarType parse_dtype(const std::string& name, const std::string& where) {
  if (name == "f32" || name == "float32" || name == "fp32") return at::kFloat;
  if (name == "bf16" || name == "bfloat16") return at::kBFloat16;
  if (name == "f16" || name == "float16" || name == "fp16") return at::kHalf;
  input_error("{}: dtype '{}' is not supported (use f32, bf16 or f16)", where, name);
}

CheckedCheckpoint check_checkpoint(const std::string& dir) {
  CheckedCheckpoint out{ModelConfig::load(dir), Checkpoint::open(dir), {}, {}, {}, {}};
  const std::string config_path = (std::filesystem::path(dir) / "config.json").string();
  out.bnb = read_bnb_config(read_json_file(config_path), config_path);
  out.specs = hf_weight_specs(out.config);
  std::set<std::string> used;
  for (const auto& spec : out.specs) {
    if (out.bnb && spec.decoder_projection) {
      Quantized4bit q = read_bnb_weight(out.checkpoint, spec.name, spec.shape);  // validates every field
      out.parameters_by_dtype[quant_type_name(q.type)] += q.numel();
      used.insert(spec.name);
      continue;
    }
    if (!out.checkpoint.contains(spec.name))
      input_error("{}: tensor '{}' required by config.json ({}) is missing from the safetensors files", dir, spec.name,
                  out.config.hf_class_name());
    const TensorInfo& info = out.checkpoint.info(spec.name);
    if (info.shape != spec.shape)
      input_error("{}: tensor '{}' has shape {} but config.json implies {}", out.checkpoint.file_of(spec.name), spec.name,
                  shape_string(info.shape), shape_string(spec.shape));
    if (!is_float(info.dtype))
      input_error("{}: tensor '{}' has dtype {}; expected a floating-point dtype (F32, BF16, F16)",
                  out.checkpoint.file_of(spec.name), spec.name, safetensors_dtype_name(info.dtype));
    out.parameters_by_dtype[dtype_short_name(info.dtype)] += info.numel();
    used.insert(spec.name);
  }
  for (const auto& name : out.checkpoint.names())
    if (!used.count(name) && !(out.bnb && is_bnb_aux_tensor(name))) out.unused.push_back(name);
  return out;
}

CausalLM load_causal_lm(const std::string& dir, const LoadOptions& options) {
  CheckedCheckpoint checked = check_checkpoint(dir);
  ModelWeights weights;
  for (const auto& spec : checked.specs) {
    const std::string module = spec.name.substr(0, spec.name.size() - std::string(".weight").size());
    if (spec.decoder_projection && (checked.bnb || options.quantize)) {
      // Pre-quantized: the stored codes (zero-copy views on CPU). Otherwise quantized from the mapping,
      // whose pages are dropped right after, so the 16-bit model is never resident as a whole.
      // On a GPU the 16-bit tensor is sent over first and quantized there.
      at::Tensor source = checked.bnb ? at::Tensor() : checked.checkpoint.view(spec.name);
#ifdef QTUNE_WITH_CUDA
      if (source.defined() && options.device.is_cuda()) source = source.to(options.device);
#endif
      Quantized4bit q = checked.bnb ? read_bnb_weight(checked.checkpoint, spec.name, spec.shape)
                                    : quantize_4bit(source, options.quantize->type, options.quantize->blocksize, options.quantize->double_quant,
                                                    checked.checkpoint.file_of(spec.name) + ": tensor '" + spec.name + "'");
      if (!checked.bnb || !options.device.is_cpu()) checked.checkpoint.release(spec.name);
      weights.projections[module] = std::make_shared<QuantizedWeight>(to_device(q, options.layers_on_host ? torch::kCPU : options.device));
      continue;
    }
    torch::Tensor t = checked.checkpoint.view(spec.name).to(options.device, options.dtype, /*non_blocking=*/false, /*copy=*/true);
    checked.checkpoint.release(spec.name);
    const bool projection = spec.decoder_projection || spec.router || spec.name == "lm_head.weight";
    if (projection) {
      weights.projections[module] = std::make_shared<DenseWeight>(t);
    } else {
      weights.tensors[spec.name] = t;
    }
  }
  CausalLM model(checked.config, std::move(weights));
  model->eval();
  return model;
}

}  // namespace qtune
