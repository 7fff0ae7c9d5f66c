// qtune export: a base model plus a LoRA adapter, merged as `qtune merge` merges (adapters/merge.h), written as one
// GGUF file of the chosen type; or the adapter alone as a GGUF LoRA adapter (llama.cpp's --lora).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "gguf/quant_mix.h"
#include "models/model_loader.h"

namespace qtune {

struct ExportOptions {
  std::string model_dir;    // HF checkpoint folder (16/32-bit or bitsandbytes 4-bit)
  std::string adapter_dir;  // PEFT adapter folder; empty: the base alone
  std::string out_path;     // FILE.gguf
  ExportType type = ExportType::kF16;
  bool adapter_only = false;
  // As MergeOptions: the base was quantized at load in training; deq(W)'s dtype for a 4-bit base.
  std::optional<QuantizeOptions> quantize;
  std::optional<at::ScalarType> compute_dtype;
  bool force = false;  // overwrite an existing out_path
};

struct ExportReport {
  int64_t tensors = 0;
  int64_t merged_modules = 0;
  uint64_t bytes = 0;                   // file size
  std::vector<std::string> type_counts;  // "Q4_K: 98", ...
};

ExportReport export_gguf(const ExportOptions& options);

}  // namespace qtune
