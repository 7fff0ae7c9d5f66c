// The Hugging Face PEFT LoRA adapter format: adapter_model.safetensors (PEFT tensor names) +
// adapter_config.json (PEFT's keys), written atomically and read back with every field checked.
//
// Tensors, for each adapted module <m> (e.g. model.layers.0.self_attn.q_proj):
//   base_model.model.<m>.lora_A.weight  [R, in]
//   base_model.model.<m>.lora_B.weight  [out, R]
// Read also: names without the "base_model.model." prefix and with ".lora_A.default.weight".
#pragma once

#include "core/torch.h"

#include <map>
#include <string>

#include "adapters/lora.h"
#include "models/transformer.h"

namespace qtune {

// One module's stored factors.
struct LoraFactors {
  torch::Tensor A;  // [R, in]
  torch::Tensor B;  // [out, R]
};

// An adapter folder as read from disk (tensors are views of the mapped file, not yet checked against a model).
struct PeftAdapter {
  LoraOptions options;  // r, alpha, dropout, rslora, init, target_modules (sorted); dtype = the stored one
  std::string base_model_name_or_path;
  std::map<std::string, LoraFactors> modules;  // "model.layers.0.self_attn.q_proj" -> factors
};

// Writes dir/adapter_model.safetensors (the adapters' A and B in their own dtype) and dir/adapter_config.json.
// `options` is what the adapters were created with (target_modules are written as the names actually adapted).
void save_peft_adapter(CausalLM& model, const LoraOptions& options, const std::string& dir, const std::string& base_model_name_or_path);

// The adapter_config.json content for `options` (keys sorted, as PEFT writes them).
std::string peft_adapter_config_json(const LoraOptions& options, const std::string& base_model_name_or_path);

// Reads and validates an adapter folder: InputError naming the file and key (peft_type, r, lora_alpha,
// target_modules, unsupported features such as DoRA, bias or rank_pattern) or the file and tensor
// (unknown name, A without B, non-float dtype, ranks different from r).
PeftAdapter read_peft_adapter(const std::string& dir);

// Checks that `adapter` fits a model with `config`: exactly the modules its target_modules imply, with
// A [r, in] and B [out, r] shapes. InputError naming the file and tensor otherwise.
void check_peft_adapter(const PeftAdapter& adapter, const ModelConfig& config, const std::string& dir);

// Reads the adapter in `dir`, injects LoRA into `model` (which must have none) and copies the stored A and
// B in. Master weights are float32 (float64 if stored so). Returns the options read from the folder.
LoraOptions load_peft_adapter(CausalLM& model, const std::string& dir);

}  // namespace qtune
