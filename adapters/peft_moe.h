// PEFT's LoRA on transformers 5 mixture-of-experts models, and its conversion to the per-expert modules qtune trains.
//
// transformers 5 keeps a sparse layer's experts fused: mlp.experts.gate_up_proj [E, 2F, D] (gate rows, then up rows)
// and mlp.experts.down_proj [E, D, F]; the router is mlp.gate (weight [E, D]). PEFT adapts them as parameters
// (adapter_config.json "target_parameters"), one LoRA per parameter with the experts' factors stacked:
//   A [E·R, in]  expert e's A_e = rows e·R .. e·R+R-1
//   B [out, R·E] expert e's B_e = columns j·E + e for j < R
// stored as base_model.model.model.layers.L.mlp.experts.lora_A.weight (and ".experts.base_layer.lora_*" for the
// second of the two expert parameters, which PEFT wraps inside the first), and ...mlp.gate.lora_* for the router.
// The same delta per expert, s·B_e·A_e, is the checkpoint layout's (transformers 4, PEFT's target_modules w1/w3/w2 or
// gate_proj/up_proj/down_proj, what qtune writes and PEFT converts on load): gate and up each get A_e and their
// rows of B_e, down gets A_e and B_e.
#pragma once

#include "core/torch.h"

#include <map>
#include <string>
#include <vector>

#include "adapters/lora_variant.h"
#include "models/model_config.h"

namespace qtune {

// True for a module name PEFT gives a fused expert or router LoRA ("model.layers.3.mlp.experts",
// "model.layers.3.mlp.experts.base_layer", "model.layers.3.mlp.gate").
bool is_fused_moe_module(const std::string& module);

// The per-expert (and router) modules in the checkpoint layout of `config`, from the fused ones read from
// `weights_path` (keyed by their PEFT module names). InputError naming the file and tensor for shapes that fit no
// expert parameter of `config` or a rank other than `r`.
std::map<std::string, LoraTensors> unfuse_moe_modules(const std::map<std::string, LoraTensors>& fused, const ModelConfig& config, int64_t r,
                                                      const std::string& weights_path);

}  // namespace qtune
