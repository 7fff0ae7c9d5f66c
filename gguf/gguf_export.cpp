// qtune export: merged model -> GGUF, tensor by tensor (a layer's experts stacked, expert by expert); adapter -> GGUF
// LoRA adapter.
#include "gguf/gguf_export.h"

#include <algorithm>
#include <filesystem>
#include <functional>
#include <map>
#include <stdexcept>

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

// One tensor of the output and where its values come from: one tensor of the base (`parts` holds its spec), a stacked
// expert tensor (`parts` holds the E experts' specs in expert order, each one expert's rows), or a tensor made here
// (no parts: `made`, laid out as the HF weight `made_row_order`: the Llama family's q/k rows regrouped, Gemma's norms + 1).
struct PlannedTensor {
  std::vector<const WeightSpec*> parts;
  torch::Tensor made;
  std::string made_row_order;
  GgufTensorInfo info;
};

// A part's float32 values (a whole tensor, or one expert of a stacked one), in HF layout.
using PartValues = std::function<torch::Tensor(const PlannedTensor&, size_t part)>;

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

// Expert `expert` of the stacked tensor `name` (ne [in, out, E]), planned at the place of the layer's first expert.
void plan_expert(std::vector<PlannedTensor>& plan, std::map<std::string, size_t>& stacked, const ModelConfig& config, const StackedExpert& expert,
                 const WeightSpec& spec) {
  auto [it, added] = stacked.emplace(expert.gguf_name, plan.size());
  if (added) {
    PlannedTensor t;
    t.parts.assign(config.num_experts, nullptr);
    t.info.name = expert.gguf_name;
    t.info.ne = {spec.shape[1], spec.shape[0], config.num_experts};
    plan.push_back(std::move(t));
  }
  plan[it->second].parts.at(expert.expert) = &spec;
}

std::vector<PlannedTensor> plan_model(MergedTensors& merged, ExportType type) {
  const ModelConfig& config = merged.config();
  const std::string arch = gguf_architecture(config.arch);
  const MixContext mix{config.num_layers, !config.tie_word_embeddings,
                       llama_cpp_type_is_70b(arch, config.num_layers, config.num_heads, config.num_kv_heads, config.num_experts), config.num_experts};
  // llama.cpp's gemma2 reads the output matrix from token_embd only; an output.weight would be a tensor too many.
  if (config.arch == Architecture::kGemma2 && !config.tie_word_embeddings)
    input_error("{}: Gemma 2 with untied embeddings (tie_word_embeddings: false) cannot be written for llama.cpp, whose gemma2 "
                "always ties them", merged.config().hf_class_name());
  std::vector<PlannedTensor> plan;
  for (auto& [name, factors] : rope_factor_tensors(config)) plan.push_back({{}, factors.to(torch::kFloat), "", {name, GgmlType::kF32, ggml_ne(factors.sizes())}});
  std::map<std::string, size_t> stacked;  // stacked expert tensor -> its place in the plan
  for (const auto& spec : merged.specs()) {
    if (const auto expert = stacked_expert_tensor(config, spec.name)) {
      plan_expert(plan, stacked, config, *expert, spec);
      continue;
    }
    const auto name = gguf_tensor_name(config.arch, spec.name);
    if (!name) input_error("{}: tensor '{}' has no GGUF name (qtune does not know where llama.cpp keeps it)", merged.config().hf_class_name(), spec.name);
    plan.push_back({{&spec}, {}, "", {*name, GgmlType::kF32, ggml_ne(spec.shape)}});
  }
  for (auto& t : plan) {
    if (std::find(t.parts.begin(), t.parts.end(), nullptr) != t.parts.end()) throw std::logic_error("plan_model: '" + t.info.name + "' lacks an expert");
    t.info.type = tensor_type_for(type, t.info.name, t.info.ne, mix);
  }
  return plan;
}

// One part's float32 values in ggml row order, encoded as the tensor's type into `out` (rows · row bytes).
void encode_part(const ModelConfig& config, const std::string& row_order, const torch::Tensor& values, const GgufTensorInfo& info, uint8_t* out,
                 uint64_t out_bytes) {
  const torch::Tensor rows = to_gguf_values(config, row_order, values.to(torch::kFloat)).contiguous();
  const int64_t row_length = info.ne[0];
  if (rows.numel() % row_length != 0 || static_cast<uint64_t>(rows.numel() / row_length) * ggml_row_bytes(info.type, row_length) != out_bytes)
    throw std::logic_error(fmt::format("export: '{}' got [{}], which does not fill its {} bytes", info.name, fmt::join(values.sizes(), ", "), out_bytes));
  if (!torch::isfinite(rows).all().item<bool>()) input_error("tensor '{}' holds NaN or infinity; it cannot be exported", info.name);
  ggml_quantize(info.type, rows.data_ptr<float>(), rows.numel() / row_length, row_length, out);
}

// The tensor's bytes: its parts encoded one after another (a stacked tensor's experts each hold the same bytes; only
// one expert's float32 values are in memory at a time).
std::vector<uint8_t> encode(const ModelConfig& config, const PlannedTensor& t, const PartValues& values) {
  std::vector<uint8_t> bytes(t.info.bytes());
  if (t.parts.empty()) {
    encode_part(config, t.made_row_order, t.made, t.info, bytes.data(), bytes.size());
    return bytes;
  }
  const uint64_t part_bytes = bytes.size() / t.parts.size();
  for (size_t i = 0; i < t.parts.size(); ++i) encode_part(config, t.parts[i]->name, values(t, i), t.info, bytes.data() + i * part_bytes, part_bytes);
  return bytes;
}

ExportReport write_plan(const std::string& out_path, const GgufMetadata& metadata, const std::vector<PlannedTensor>& plan, const PartValues& values,
                        const ModelConfig& config) {
  std::vector<GgufTensorInfo> infos;
  for (const auto& t : plan) infos.push_back(t.info);
  GgufWriter writer(out_path, metadata, infos);
  std::map<std::string, int64_t> counts;
  for (const auto& t : plan) {
    const std::vector<uint8_t> bytes = encode(config, t, values);
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
  const std::vector<PlannedTensor> plan = plan_model(merged, o.type);
  ExportReport report = write_plan(o.out_path, metadata, plan, [&](const PlannedTensor& t, size_t part) {
    const WeightSpec& spec = *t.parts[part];
    torch::Tensor values = merged.get(spec).to(torch::kFloat);
    merged.release(spec);
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

void plan_lora(std::vector<PlannedTensor>& plan, const std::string& weight, const LoraTensors& t, const std::string& b_row_order, ExportType type) {
  plan.push_back({{}, t.A, "", {weight + ".lora_a", adapter_tensor_type(type, t.A), ggml_ne(t.A.sizes())}});
  plan.push_back({{}, t.B, b_row_order, {weight + ".lora_b", adapter_tensor_type(type, t.B), ggml_ne(t.B.sizes())}});
}

// The experts' adapters stacked as llama.cpp stacks the experts (convert_lora_to_gguf.py stacks A and B along a new
// first dimension): per stacked tensor A [E, r, in] and B [E, out, r]; an expert the adapter leaves alone gets zeros
// (a zero delta), so one tensor of one rank holds them all.
std::map<std::string, LoraTensors> stacked_expert_adapters(const ModelConfig& config, const PeftAdapter& adapter, const std::string& where) {
  std::map<std::string, std::vector<const LoraTensors*>> experts;  // stacked GGUF name -> each expert's adapter or null
  for (const auto& [module, tensors] : adapter.modules)
    if (const auto e = stacked_expert_tensor(config, module + ".weight")) {
      auto& slots = experts[e->gguf_name];
      slots.resize(config.num_experts, nullptr);
      slots.at(e->expert) = &tensors;
    }
  std::map<std::string, LoraTensors> stacked;
  for (const auto& [name, slots] : experts) {
    const LoraTensors& any = **std::find_if(slots.begin(), slots.end(), [](const LoraTensors* t) { return t != nullptr; });
    std::vector<torch::Tensor> a, b;
    for (const LoraTensors* t : slots) {
      if (t && t->A.size(0) != any.A.size(0))
        input_error("{}: the experts of '{}' have LoRA ranks {} and {}; llama.cpp stacks them into one tensor of one rank", where, name,
                    any.A.size(0), t->A.size(0));
      a.push_back(t ? t->A : torch::zeros_like(any.A));
      b.push_back(t ? t->B : torch::zeros_like(any.B));
    }
    stacked[name] = LoraTensors{torch::stack(a), torch::stack(b), {}};
  }
  return stacked;
}

// llama.cpp's LoRA adapter: per adapted projection "<gguf name>.lora_a" [r, in] and ".lora_b" [out, r] (B's rows in
// ggml order; experts stacked, stacked_expert_adapters), applied as W + (alpha / r)·B·A with r = lora_a's rank; alpha
// is written so that alpha / r is qtune's scale (which for rsLoRA is alpha / sqrt(r)).
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
    if (stacked_expert_tensor(config, module + ".weight")) continue;
    const auto weight = gguf_tensor_name(config.arch, module + ".weight");
    if (!weight) input_error("{}: module '{}' has no GGUF name (qtune does not know where llama.cpp keeps it)", o.adapter_dir, module);
    plan_lora(plan, *weight, tensors, module + ".weight", o.type);
  }
  for (const auto& [weight, tensors] : stacked_expert_adapters(config, adapter, o.adapter_dir)) plan_lora(plan, weight, tensors, "", o.type);
  return write_plan(o.out_path, m, plan, [](const PlannedTensor&, size_t) -> torch::Tensor { throw std::logic_error("adapter tensors are made"); },
                    config);
}

// Refused before anything is read but the config: a Qwen3-MoE that llama.cpp would not load or would run as another
// model. Its qwen3moe graph has experts in every layer and always renormalizes the top-k routing weights.
void check_llama_cpp_runs(const ExportOptions& o) {
  if (!fs::exists(fs::path(o.model_dir) / "config.json")) return;  // the loaders name what is missing
  const ModelConfig c = ModelConfig::load(o.model_dir);
  if (c.arch != Architecture::kQwen3Moe) return;
  std::vector<int64_t> dense;
  for (int64_t layer = 0; layer < c.num_layers; ++layer)
    if (!c.is_sparse_layer(layer)) dense.push_back(layer);
  const std::string instead = "merge with `qtune merge` and keep the safetensors checkpoint";
  if (!dense.empty())
    input_error("{}: {}: layers {} have a dense MLP (mlp_only_layers / decoder_sparse_step), but llama.cpp's qwen3moe has experts in every "
                "layer and would not load the file; {}", o.model_dir, c.hf_class_name(), fmt::join(dense, ", "), instead);
  if (!c.norm_topk_prob)
    input_error("{}: {}: norm_topk_prob is false, but llama.cpp's qwen3moe always renormalizes the top-k routing weights and would run "
                "another model; {}", o.model_dir, c.hf_class_name(), instead);
}

}  // namespace

ExportReport export_gguf(const ExportOptions& o) {
  check_output_path(o);
  check_llama_cpp_runs(o);
  return o.adapter_only ? export_adapter(o) : export_model(o);
}

}  // namespace qtune
