// The Hugging Face PEFT LoRA adapter format: adapter_model.safetensors (PEFT tensor names) +
// adapter_config.json (PEFT's keys), written atomically and read back with every field checked.
//
// Tensors, for each adapted module <m> (e.g. model.layers.0.self_attn.q_proj):
//   base_model.model.<m>.lora_A.weight           [R, in]
//   base_model.model.<m>.lora_B.weight           [out, R]
//   base_model.model.<m>.lora_magnitude_vector   [out]   (DoRA: use_dora true)
// Read also: names without the "base_model.model." prefix and with ".lora_A.default.weight", and PEFT's adapters on
// transformers 5's fused MoE experts (target_parameters; adapters/peft_moe.h), converted to the per-expert modules.
//
// PiSSA / OLoRA adapters train against the residual of their start (lora_init.h). A run's final adapter is
// saved as PEFT's save_pretrained(path_initial_model_for_weight_conversion=...) saves it, for the ORIGINAL
// base: ΔW = s·B·A − s·B₀·A₀ as one plain LoRA of rank 2R, A' = [A; A₀], B' = [B, −B₀], α' = 2α (α·√2 with
// rsLoRA), init_lora_weights true. Checkpoints keep the adapter as trained (init_lora_weights "pissa" /
// "olora": PEFT and qtune rebuild the residual from the base when they load it).
#pragma once

#include "core/torch.h"

#include <map>
#include <string>

#include "adapters/lora.h"
#include "models/transformer.h"

namespace qtune {

// An adapter folder as read from disk (tensors are views of the mapped file, not yet checked against a model).
struct PeftAdapter {
  LoraOptions options;  // r, alpha, dropout, rslora, use_dora, init, target_modules (sorted); dtype = the stored one
  std::string base_model_name_or_path;
  std::map<std::string, LoraTensors> modules;  // "model.layers.0.self_attn.q_proj" -> A, B (and DoRA's m)
};

// For the original base (a run's output), or as trained (checkpoints); the same for adapters that leave the base as it is.
enum class PeftSave { kForTheOriginalBase, kAsTrained };

// Writes dir/adapter_model.safetensors (the adapters' tensors in their own dtype) and dir/adapter_config.json.
// `options` is what the adapters were created with (target_modules are written as the names actually adapted).
void save_peft_adapter(CausalLM& model, const LoraOptions& options, const std::string& dir, const std::string& base_model_name_or_path,
                       PeftSave mode = PeftSave::kForTheOriginalBase);

// The adapter_config.json content for `options` (keys sorted, as PEFT writes them).
std::string peft_adapter_config_json(const LoraOptions& options, const std::string& base_model_name_or_path);

// Reads and validates an adapter folder: InputError naming the file and key (peft_type, r, lora_alpha,
// target_modules, unsupported features such as bias, rank_pattern or an init that rewrites the base in a way
// qtune does not) or the file and tensor (unknown name, A without B, a DoRA magnitude missing or extra,
// non-float dtype, ranks different from r).
// An adapter on fused MoE experts needs the base model's config (`base`) to name its per-expert modules;
// InputError without it.
PeftAdapter read_peft_adapter(const std::string& dir, const ModelConfig* base = nullptr);

// Checks that `adapter` fits a model with `config`: exactly the modules its target_modules imply, with
// A [r, in], B [out, r] (and m [out]) shapes. InputError naming the file and tensor otherwise.
void check_peft_adapter(const PeftAdapter& adapter, const ModelConfig& config, const std::string& dir);

// Copies `adapter` (read from `dir`) into the live adapters of `model`, which must fit it (check_peft_adapter) and
// have its rank and variant: InputError naming the file otherwise. Resume uses it on the adapters the run made.
void copy_peft_adapter(CausalLM& model, const PeftAdapter& adapter, const std::string& dir);

// Reads the adapter in `dir`, injects LoRA into `model` (which must have none; a PiSSA / OLoRA adapter as
// trained rebuilds its residual base) and copies the stored tensors in. Master weights are float32 (float64
// if stored so). Returns the options read from the folder.
LoraOptions load_peft_adapter(CausalLM& model, const std::string& dir);

}  // namespace qtune
