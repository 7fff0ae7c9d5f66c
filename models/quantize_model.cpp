// Quantizing a checkpoint: projections are quantized one by one from the mapped files (pages dropped
// after each), kept packed in memory, then everything is streamed out.
#include "models/quantize_model.h"

#include <filesystem>
#include <fstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "models/bnb_format.h"
#include "models/model_files.h"

namespace qtune {

namespace {

int64_t numel_of(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

}  // namespace

void write_bnb_weights(const std::string& out_dir, const std::vector<OutputWeight>& weights, const QuantizedSource& quantized,
                       const std::function<at::Tensor(const std::string&)>& tensor_of, const std::function<void(const std::string&)>& written,
                       uint64_t max_shard_bytes, QuantizeModelReport& report) {
  std::vector<TensorSpec> specs;
  for (const auto& w : weights) {
    if (w.quantized) {
      report.quantized_parameters += numel_of(w.shape);
      for (auto& spec : quantized.specs(w.name)) {
        report.quantized_bytes += static_cast<int64_t>(spec.bytes());
        specs.push_back(std::move(spec));
      }
    } else {
      specs.push_back({w.name, w.dtype, w.shape});
      report.other_parameters += numel_of(w.shape);
      report.other_bytes += static_cast<int64_t>(specs.back().bytes());
    }
  }
  ShardedWriter writer(out_dir, specs, max_shard_bytes, {{"format", "pt"}});
  for (const auto& w : weights) {
    if (w.quantized) {
      for (const auto& [name, tensor] : bnb_tensors(w.name, quantized.make(w.name))) writer.write(name, tensor);  // checked against the specs
    } else {
      writer.write(w.name, tensor_of(w.name));
      if (written) written(w.name);
    }
  }
  writer.finish();
}

QuantizeModelReport write_quantized_model(const QuantizeModelOptions& o) {
  namespace fs = std::filesystem;
  if (fs::exists(o.out_dir) && fs::equivalent(o.out_dir, o.model_dir)) input_error("{}: --out must differ from --model", o.out_dir);
  CheckedCheckpoint checked = check_checkpoint(o.model_dir);
  prepare_model_output_dir(o.out_dir, o.force);

  // Phase 1: the 4-bit projections (already 4-bit ones are taken as stored).
  BnbConfig bnb = checked.bnb.value_or(BnbConfig{true, o.quantize.type, o.quantize.double_quant, o.compute_dtype});
  std::map<std::string, Quantized4bit> quantized;
  for (const auto& spec : checked.specs) {
    if (!spec.decoder_projection) continue;
    if (checked.bnb) {
      quantized.emplace(spec.name, read_bnb_weight(checked.checkpoint, spec.name, spec.shape));
    } else {
      quantized.emplace(spec.name, quantize_4bit(checked.checkpoint.view(spec.name), o.quantize.type, o.quantize.blocksize, o.quantize.double_quant,
                                                 checked.checkpoint.file_of(spec.name) + ": tensor '" + spec.name + "'"));
      checked.checkpoint.release(spec.name);
    }
  }

  // Phase 2: stream it out in the model's order.
  QuantizeModelReport report;
  report.format = bnb;
  report.blocksize = quantized.empty() ? o.quantize.blocksize : quantized.begin()->second.blocksize;
  std::vector<OutputWeight> weights;
  for (const auto& spec : checked.specs) {
    const TensorInfo& info = checked.checkpoint.info(spec.name);
    weights.push_back({spec.name, spec.decoder_projection, info.dtype, info.shape});
  }
  const QuantizedSource source{[&](const std::string& name) { return bnb_tensor_specs(name, quantized.at(name)); },
                               [&](const std::string& name) { return quantized.at(name); }};
  write_bnb_weights(
      o.out_dir, weights, source, [&](const std::string& name) { return checked.checkpoint.view(name); },
      [&](const std::string& name) { checked.checkpoint.release(name); }, o.max_shard_bytes, report);

  // Tokenizer and generation files travel with the model; config.json (with quantization_config) last.
  copy_tokenizer_files(o.model_dir, o.out_dir);

  // Parsed as ordered JSON so that the keys keep the input's order (re-writing is then byte-identical).
  const std::string config_path = (fs::path(o.model_dir) / "config.json").string();
  std::ifstream config_in(config_path, std::ios::binary);
  nlohmann::ordered_json config = nlohmann::ordered_json::parse(config_in);
  config["quantization_config"] = bnb_quantization_config(bnb);
  AtomicFile::write_all((fs::path(o.out_dir) / "config.json").string(), config.dump(2) + "\n");
  return report;
}

}  // namespace qtune
