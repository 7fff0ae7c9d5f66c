// Checkpoint checking and loading. Tensors are converted one at a time from the mapped files, so host
// memory holds the model in its compute dtype plus one tensor. Depends on: models/model_loader.h.
#include "models/model_loader.h"

#include <set>

#include "core/error.h"

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
  CheckedCheckpoint out{ModelConfig::load(dir), Checkpoint::open(dir), {}, {}, {}};
  out.specs = hf_weight_specs(out.config);
  std::set<std::string> used;
  for (const auto& spec : out.specs) {
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
    if (!used.count(name)) out.unused.push_back(name);
  return out;
}

CausalLM load_causal_lm(const std::string& dir, const LoadOptions& options) {
  CheckedCheckpoint checked = check_checkpoint(dir);
  ModelWeights weights;
  for (const auto& spec : checked.specs) {
    torch::Tensor t = checked.checkpoint.view(spec.name).to(options.device, options.dtype, /*non_blocking=*/false, /*copy=*/true);
    const bool projection = spec.decoder_projection || spec.name == "lm_head.weight";
    if (projection) {
      const std::string module = spec.name.substr(0, spec.name.size() - std::string(".weight").size());
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
