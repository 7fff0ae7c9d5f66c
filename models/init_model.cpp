// init-model implementation. Depends on: models/init_model.h, models/{architecture,safetensors}.h, core/.
#include "models/init_model.h"

#include <ATen/CPUGeneratorImpl.h>
#include "core/torch.h"

#include <filesystem>

#include "core/atomic_file.h"
#include "core/error.h"
#include "models/model_files.h"
#include "models/architecture.h"
#include "models/safetensors.h"

namespace qtune {
namespace {

std::uint64_t fnv1a(const std::string& s, std::uint64_t seed) {
  std::uint64_t h = 1469598103934665603ull ^ (seed * 1099511628211ull);
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// One tensor, generated in row chunks of about 16M values so a huge embedding never needs an fp32 copy.
torch::Tensor random_tensor(const WeightSpec& spec, const InitModelOptions& o) {
  auto options = torch::TensorOptions().dtype(o.dtype);
  if (ends_with(spec.name, "norm.weight")) return torch::ones(spec.shape, options);
  if (ends_with(spec.name, ".bias")) return torch::zeros(spec.shape, options);
  torch::Tensor out = torch::empty(spec.shape, options);
  auto generator = at::make_generator<at::CPUGeneratorImpl>(fnv1a(spec.name, o.seed));
  const int64_t rows = spec.shape[0], cols = spec.shape.size() > 1 ? spec.shape[1] : 1;
  const int64_t chunk = std::max<int64_t>(1, (16 << 20) / std::max<int64_t>(cols, 1));
  for (int64_t r = 0; r < rows; r += chunk) {
    const int64_t n = std::min(chunk, rows - r);
    torch::Tensor values = at::normal(0.0, o.config.initializer_range, {n, cols}, generator);
    out.narrow(0, r, n).copy_(values.view(out.narrow(0, r, n).sizes()));
  }
  return out;
}

}  // namespace

void write_random_model(const InitModelOptions& o) {
  namespace fs = std::filesystem;
  o.config.validate("init-model");
  prepare_model_output_dir(o.out_dir, o.force);

  ModelConfig config = o.config;
  config.torch_dtype = o.dtype == at::kFloat ? "float32" : o.dtype == at::kHalf ? "float16" : "bfloat16";
  std::vector<WeightSpec> weights = hf_weight_specs(config);
  std::vector<TensorSpec> specs;
  for (const auto& w : weights) specs.push_back({w.name, o.dtype, w.shape});
  ShardedWriter writer(o.out_dir, specs, o.max_shard_bytes, {{"format", "pt"}});
  for (const auto& w : weights) writer.write(w.name, random_tensor(w, o));
  writer.finish();

  nlohmann::ordered_json generation;
  if (config.bos_token_id) generation["bos_token_id"] = *config.bos_token_id;
  if (config.eos_token_ids.size() == 1) generation["eos_token_id"] = config.eos_token_ids[0];
  if (config.eos_token_ids.size() > 1) generation["eos_token_id"] = config.eos_token_ids;
  generation["_from_model_config"] = true;
  AtomicFile::write_all((fs::path(o.out_dir) / "generation_config.json").string(), generation.dump(2) + "\n");
  // config.json last: a folder with a config.json is a complete model.
  AtomicFile::write_all((fs::path(o.out_dir) / "config.json").string(), config.to_hf_json().dump(2) + "\n");
}

}  // namespace qtune
