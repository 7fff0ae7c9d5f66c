// qtune export: merged model -> GGUF, tensor by tensor; adapter -> GGUF LoRA adapter.
#include "gguf/gguf_export.h"

#include <filesystem>
#include <map>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "adapters/lora.h"
#include "adapters/lora_init.h"
#include "adapters/merge.h"
#include "core/error.h"
#include "gguf/gguf_file.h"
#include "gguf/gguf_names.h"
#include "gguf/gguf_tokenizer.h"

namespace qtune {
namespace {

namespace fs = std::filesystem;

// One tensor of the output: where its values come from (a base spec, or a tensor made here) and how it is stored.
struct PlannedTensor {
  const WeightSpec* spec = nullptr;  // null: `made`
  torch::Tensor made;
  std::string row_order;  // the HF weight whose layout it has (q/k rows regrouped for the Llama family, Gemma's norms + 1)
  GgufTensorInfo info;
};

std::vector<int64_t> ggml_ne(c10::IntArrayRef shape) { return std::vector<int64_t>(shape.rbegin(), shape.rend()); }

void check_output_path(const ExportOptions& o) {
  if (o.out_path.empty()) input_error("--out: give the GGUF file to write");
  if (fs::is_directory(o.out_path)) input_error("{}: --out is a folder; give a file name such as model.gguf", o.out_path);
  if (fs::exists(o.out_path) && !o.force) input_error("{}: already exists; pass --force to replace it", o.out_path);
  const fs::path parent = fs::absolute(o.out_path).parent_path();
  if (!fs::is_directory(parent)) input_error("{}: the folder {} does not exist", o.out_path, parent.string());
  for (const std::string* in : {&o.model_dir, &o.adapter_dir})
    if (!in->empty() && fs::exists(*in) && fs::exists(o.out_path) && fs::equivalent(*in, o.out_path))
      input_error("{}: --out must differ from the inputs", o.out_path);
}

// The tokenizer travels with the adapter when training saved one there (as `qtune generate` reads it), else with the base.
std::string tokenizer_dir(const ExportOptions& o) {
  const bool adapter_has_one = !o.adapter_dir.empty() && fs::exists(fs::path(o.adapter_dir) / "tokenizer.json");
  return adapter_has_one ? o.adapter_dir : o.model_dir;
}

std::string model_name(const std::string& dir) {
  const fs::path p = fs::absolute(dir).lexically_normal();
  return (p.filename().empty() ? p.parent_path().filename() : p.filename()).string();
}

bool quantized(ExportType type) { return type != ExportType::kF32 && type != ExportType::kF16 && type != ExportType::kBF16; }

GgufMetadata model_metadata(const ExportOptions& o, const ModelConfig& config) {
  GgufMetadata m;
  add_architecture_metadata(config, model_name(o.model_dir), m);
  m.set("general.file_type", GgufValue::u32(llama_file_type(o.type)));
  if (quantized(o.type)) m.set("general.quantization_version", GgufValue::u32(2));  // ggml's current block layouts
  add_tokenizer_metadata(tokenizer_dir(o), config.vocab_size, m);
  return m;
}

std::vector<PlannedTensor> plan_model(MergedTensors& merged, ExportType type) {
  const ModelConfig& config = merged.config();
  const MixContext mix{config.num_layers, !config.tie_word_embeddings,
                       llama_cpp_type_is_70b(gguf_architecture(config.arch), config.num_layers, config.num_heads, config.num_kv_heads)};
  std::vector<PlannedTensor> plan;
  auto add = [&](PlannedTensor t, const std::string& name, std::vector<int64_t> ne) {
    t.info.name = name;
    t.info.ne = std::move(ne);
    t.info.type = tensor_type_for(type, name, t.info.ne, mix);
    plan.push_back(std::move(t));
  };
  // llama.cpp's gemma2 reads the output matrix from token_embd only; an output.weight would be a tensor too many.
  if (config.arch == Architecture::kGemma2 && !config.tie_word_embeddings)
    input_error("{}: Gemma 2 with untied embeddings (tie_word_embeddings: false) cannot be written for llama.cpp, whose gemma2 "
                "always ties them", merged.config().hf_class_name());
  for (auto& [name, factors] : rope_factor_tensors(config)) add({nullptr, factors.to(torch::kFloat), "", {}}, name, ggml_ne(factors.sizes()));
  for (const auto& spec : merged.specs()) {
    const auto name = gguf_tensor_name(config.arch, spec.name);
    if (!name) input_error("{}: tensor '{}' has no GGUF name (qtune does not know where llama.cpp keeps it)", merged.config().hf_class_name(), spec.name);
    add({&spec, {}, spec.name, {}}, *name, ggml_ne(spec.shape));
  }
  return plan;
}

// A tensor's float32 values in ggml row order, encoded as its planned type.
std::vector<uint8_t> encode(const ModelConfig& config, const std::string& row_order, const torch::Tensor& values, const GgufTensorInfo& info) {
  const torch::Tensor rows = to_gguf_values(config, row_order, values.to(torch::kFloat)).contiguous();
  if (!torch::isfinite(rows).all().item<bool>()) input_error("tensor '{}' holds NaN or infinity; it cannot be exported", info.name);
  std::vector<uint8_t> bytes(info.bytes());
  const int64_t row_length = info.ne[0];
  ggml_quantize(info.type, rows.data_ptr<float>(), rows.numel() / row_length, row_length, bytes.data());
  return bytes;
}

ExportReport write_plan(const std::string& out_path, const GgufMetadata& metadata, std::vector<PlannedTensor>& plan,
                        const std::function<torch::Tensor(PlannedTensor&)>& values, const ModelConfig& config) {
  std::vector<GgufTensorInfo> infos;
  for (const auto& t : plan) infos.push_back(t.info);
  GgufWriter writer(out_path, metadata, infos);
  std::map<std::string, int64_t> counts;
  for (auto& t : plan) {
    const std::vector<uint8_t> bytes = encode(config, t.row_order, values(t), t.info);
    writer.write(t.info.name, bytes.data(), bytes.size());
    ++counts[ggml_traits(t.info.type).name];
  }
  writer.finish();
  ExportReport report;
  report.tensors = static_cast<int64_t>(plan.size());
  report.bytes = fs::file_size(out_path);
  for (const auto& [name, n] : counts) report.type_counts.push_back(fmt::format("{}: {}", name, n));
  return report;
}

ExportReport export_model(const ExportOptions& o) {
  torch::NoGradGuard no_grad;
  MergedTensors merged(o.model_dir, o.adapter_dir, o.quantize, o.compute_dtype);
  const GgufMetadata metadata = model_metadata(o, merged.config());
  std::vector<PlannedTensor> plan = plan_model(merged, o.type);
  ExportReport report = write_plan(o.out_path, metadata, plan, [&](PlannedTensor& t) {
    if (!t.spec) return t.made;
    torch::Tensor values = merged.get(*t.spec).to(torch::kFloat);
    merged.release(*t.spec);
    return values;
  }, merged.config());
  report.merged_modules = static_cast<int64_t>(merged.report().merged_modules.size());
  return report;
}

// The types llama.cpp's LoRA converter writes; a row that Q8_0's 32-blocks do not divide (rank 16's B) stays F16.
GgmlType adapter_tensor_type(ExportType type, const torch::Tensor& t) {
  switch (type) {
    case ExportType::kF32: return GgmlType::kF32;
    case ExportType::kF16: return GgmlType::kF16;
    case ExportType::kBF16: return GgmlType::kBF16;
    case ExportType::kQ8_0: return t.size(-1) % 32 == 0 ? GgmlType::kQ8_0 : GgmlType::kF16;
    default: input_error("--type {}: an adapter-only export is f32, f16, bf16 or q8_0 (llama.cpp applies adapters in those)", export_type_name(type));
  }
}

// llama.cpp's LoRA adapter: per adapted projection "<gguf name>.lora_a" [r, in] and ".lora_b" [out, r] (B's rows in
// ggml order), applied as W + (alpha / r)·B·A with r = lora_a's rank; alpha is written so that alpha / r is qtune's
// scale (which for rsLoRA is alpha / sqrt(r)).
ExportReport export_adapter(const ExportOptions& o) {
  const ModelConfig config = ModelConfig::load(o.model_dir);
  const PeftAdapter adapter = read_peft_adapter(o.adapter_dir, &config);
  check_peft_adapter(adapter, config, o.adapter_dir);
  if (adapter.options.use_dora)
    input_error("{}: llama.cpp's LoRA adapters cannot hold DoRA's magnitudes; export the merged model instead (drop --adapter-only)", o.adapter_dir);
  if (init_uses_base(adapter.options.init))
    input_error("{}: a {} adapter as trained belongs to a residual base; export the run's final adapter, saved for the original base", o.adapter_dir,
                adapter.options.init);
  const double scale = lora_scale(adapter.options);
  GgufMetadata m;
  m.set("general.architecture", GgufValue::text(gguf_architecture(config.arch)));
  m.set("general.type", GgufValue::text("adapter"));
  m.set("general.name", GgufValue::text(model_name(o.adapter_dir)));
  m.set("adapter.type", GgufValue::text("lora"));
  m.set("adapter.lora.alpha", GgufValue::f32(static_cast<float>(scale * adapter.options.r)));
  std::vector<PlannedTensor> plan;
  for (const auto& [module, tensors] : adapter.modules) {
    const std::string weight = *gguf_tensor_name(config.arch, module + ".weight");
    plan.push_back({nullptr, tensors.A, "", {weight + ".lora_a", adapter_tensor_type(o.type, tensors.A), ggml_ne(tensors.A.sizes())}});
    plan.push_back({nullptr, tensors.B, module + ".weight", {weight + ".lora_b", adapter_tensor_type(o.type, tensors.B), ggml_ne(tensors.B.sizes())}});
  }
  return write_plan(o.out_path, m, plan, [](PlannedTensor& t) { return t.made; }, config);
}

// Refused before anything is written: llama.cpp stores the experts of a layer as one stacked tensor per projection,
// which the per-tensor plan here does not make yet.
void check_dense_model(const ExportOptions& o) {
  if (!fs::exists(fs::path(o.model_dir) / "config.json")) return;  // the loaders name what is missing
  const ModelConfig config = ModelConfig::load(o.model_dir);
  if (config.num_experts > 0)
    input_error("{}: {}: GGUF export of mixture-of-experts models is not supported yet; merge the adapter with `qtune merge` and keep the "
                "safetensors checkpoint", o.model_dir, config.hf_class_name());
}

}  // namespace

ExportReport export_gguf(const ExportOptions& o) {
  check_output_path(o);
  check_dense_model(o);
  return o.adapter_only ? export_adapter(o) : export_model(o);
}

}  // namespace qtune
