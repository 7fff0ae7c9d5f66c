// qtune export --model DIR [--adapter DIR] --out FILE.gguf --type TYPE: the merged model as one GGUF file that
// llama.cpp, Ollama and LM Studio run; with --adapter-only, the adapter alone as a GGUF LoRA adapter.
#include <filesystem>
#include <iostream>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.h"
#include "gguf/gguf_export.h"
#include "trainer/commands.h"
#include "trainer/training_base.h"

namespace qtune {
namespace {

namespace fs = std::filesystem;

struct ExportArgs {
  ExportOptions options;
  std::string type = "f16";
  bool load_in_4bit = false;
};

// The base model folder: --model, else (with --adapter) the one the adapter trained on, when it is still there.
std::string model_dir(const ExportArgs& a, const TrainingBase& trained) {
  if (!a.options.model_dir.empty()) return a.options.model_dir;
  if (a.options.adapter_dir.empty()) input_error("give --model DIR (and --adapter DIR to merge an adapter)");
  if (!trained.base_model.empty() && fs::exists(fs::path(trained.base_model) / "config.json")) return trained.base_model;
  input_error("{}: the base model the adapter trained on is not known or not found; give it as --model DIR", a.options.adapter_dir);
}

}  // namespace

Command add_export_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("export", "Write a model (base + adapter, merged) or an adapter alone as a GGUF file for llama.cpp / Ollama");
  auto a = std::make_shared<ExportArgs>();
  cmd->add_option("--model", a->options.model_dir, "the base model folder (default: the one the adapter trained on)");
  cmd->add_option("--adapter", a->options.adapter_dir, "a LoRA adapter folder to merge in (qtune train's output_dir)");
  cmd->add_option("--out", a->options.out_path, "the GGUF file to write")->required();
  cmd->add_option("--type", a->type, "f32, f16 (default), bf16, q8_0, q4_0, q4_k_m, q5_k_m or q6_k");
  cmd->add_flag("--adapter-only", a->options.adapter_only, "write the adapter alone as a GGUF LoRA adapter (llama.cpp --lora)");
  cmd->add_flag("--load-in-4bit", a->load_in_4bit, "the base was quantized to NF4 at load in training (read from the adapter when it says so)");
  cmd->add_flag("--force", a->options.force, "replace an existing --out file");
  return [a]() {
    ExportOptions& o = a->options;
    o.type = parse_export_type(a->type, "--type");
    if (o.adapter_only && o.adapter_dir.empty()) input_error("--adapter-only needs --adapter DIR");
    const TrainingBase trained = o.adapter_dir.empty() ? TrainingBase{} : read_training_base(o.adapter_dir);
    o.model_dir = model_dir(*a, trained);
    o.quantize = a->load_in_4bit ? std::optional<QuantizeOptions>(QuantizeOptions{}) : trained.quantize;
    o.compute_dtype = trained.compute_dtype;
    const ExportReport r = export_gguf(o);
    std::cout << fmt::format("wrote {} ({}, {} tensors: {}; {:.1f} MB){}\n", o.out_path, export_type_name(o.type), r.tensors, fmt::join(r.type_counts, ", "),
                             r.bytes / 1e6, r.merged_modules > 0 ? fmt::format("; merged {} adapted projections", r.merged_modules) : "");
    return 0;
  };
}

}  // namespace qtune
