// init-model implementation.
#include "models/init_model.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include "core/torch.h"

#include <filesystem>

#include "core/atomic_file.h"
#include "core/error.h"
#include "models/model_files.h"
#include "models/architecture.h"
#include "models/bnb_format.h"
#include "models/quantize_model.h"
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
// Each chunk has its own generator (the first seeded by the tensor's name, as when there was one chunk
// only), so the chunks are drawn in parallel and the result does not depend on the thread count.
torch::Tensor random_tensor(const WeightSpec& spec, const InitModelOptions& o) {
  auto options = torch::TensorOptions().dtype(o.dtype);
  if (ends_with(spec.name, "norm.weight"))  // the identity scale: Gemma's norms multiply by 1 + w
    return o.config.norm_unit_offset ? torch::zeros(spec.shape, options) : torch::ones(spec.shape, options);
  if (ends_with(spec.name, ".bias")) return torch::zeros(spec.shape, options);
  torch::Tensor out = torch::empty(spec.shape, options);
  const int64_t rows = spec.shape[0], cols = spec.shape.size() > 1 ? spec.shape[1] : 1;
  const int64_t chunk = std::max<int64_t>(1, (16 << 20) / std::max<int64_t>(cols, 1));
  at::parallel_for(0, (rows + chunk - 1) / chunk, 1, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      auto generator = at::make_generator<at::CPUGeneratorImpl>(fnv1a(c == 0 ? spec.name : spec.name + "#" + std::to_string(c), o.seed));
      const int64_t r = c * chunk, n = std::min(chunk, rows - r);
      torch::Tensor values = at::normal(0.0, o.config.initializer_range, {n, cols}, generator);
      out.narrow(0, r, n).copy_(values.view(out.narrow(0, r, n).sizes()));
    }
  });
  return out;
}

Quantized4bit random_quantized(const WeightSpec& spec, const InitModelOptions& o) {
  const QuantizeOptions& q = *o.quantize;
  return quantize_4bit(random_tensor(spec, o), q.type, q.blocksize, q.double_quant, spec.name);
}

// What bnb_tensor_specs needs of each 4-bit weight, before any is written. Without double quantization it follows
// from the shape; with it, the quant_state JSON holds the nested offset (the mean absmax), so each weight is made
// and quantized once for it here and again when written: twice the work, but only one weight in memory at a time.
std::map<std::string, Quantized4bit> quantized_metadata(const std::vector<WeightSpec>& specs, const InitModelOptions& o) {
  std::map<std::string, Quantized4bit> metadata;
  for (const auto& spec : specs) {
    if (!spec.decoder_projection) continue;
    Quantized4bit q;
    if (o.quantize->double_quant) {
      q = random_quantized(spec, o);
      q.packed = q.code_map = q.scales.absmax = q.scales.nested_absmax = q.scales.nested_map = at::Tensor();
    } else {
      q.type = o.quantize->type, q.blocksize = o.quantize->blocksize, q.shape = spec.shape, q.dtype = o.dtype;
    }
    metadata.emplace(spec.name, std::move(q));
  }
  return metadata;
}

}  // namespace

void write_random_model(const InitModelOptions& o) {
  namespace fs = std::filesystem;
  o.config.validate("init-model");
  prepare_model_output_dir(o.out_dir, o.force);

  ModelConfig config = o.config;
  config.torch_dtype = o.dtype == at::kFloat ? "float32" : o.dtype == at::kHalf ? "float16" : "bfloat16";
  const std::vector<WeightSpec> specs = hf_weight_specs(config);
  std::map<std::string, WeightSpec> by_name;
  std::vector<OutputWeight> outputs;
  for (const auto& w : specs) {
    by_name.emplace(w.name, w);
    outputs.push_back({w.name, o.quantize && w.decoder_projection, o.dtype, w.shape});
  }
  const std::map<std::string, Quantized4bit> metadata = o.quantize ? quantized_metadata(specs, o) : std::map<std::string, Quantized4bit>{};
  const QuantizedSource quantized{[&](const std::string& name) { return bnb_tensor_specs(name, metadata.at(name)); },
                                  [&](const std::string& name) { return random_quantized(by_name.at(name), o); }};
  QuantizeModelReport sizes;
  write_bnb_weights(o.out_dir, outputs, quantized, [&](const std::string& name) { return random_tensor(by_name.at(name), o); }, {}, o.max_shard_bytes,
                    sizes);

  nlohmann::ordered_json generation;
  if (config.bos_token_id) generation["bos_token_id"] = *config.bos_token_id;
  if (config.eos_token_ids.size() == 1) generation["eos_token_id"] = config.eos_token_ids[0];
  if (config.eos_token_ids.size() > 1) generation["eos_token_id"] = config.eos_token_ids;
  generation["_from_model_config"] = true;
  AtomicFile::write_all((fs::path(o.out_dir) / "generation_config.json").string(), generation.dump(2) + "\n");
  // config.json last: a folder with a config.json is a complete model.
  nlohmann::ordered_json config_json = config.to_hf_json();
  if (o.quantize) config_json["quantization_config"] = bnb_quantization_config({true, o.quantize->type, o.quantize->double_quant, config.torch_dtype});
  AtomicFile::write_all((fs::path(o.out_dir) / "config.json").string(), config_json.dump(2) + "\n");
}

}  // namespace qtune
