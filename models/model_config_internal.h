// Parts of ModelConfig's reading and writing shared by model_config*.cpp.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "models/model_config.h"

namespace qtune {

void read_rope(const nlohmann::json& json, const std::string& where, ModelConfig& c);  // model_config_rope.cpp
void write_rope(const ModelConfig& c, nlohmann::ordered_json& j);

// The keys only some families have (model_config_families.cpp): biases, windows, norms, soft-capping.
void read_family_keys(const nlohmann::json& json, const std::string& where, ModelConfig& c);
void write_family_keys(const ModelConfig& c, nlohmann::ordered_json& j);
void apply_family_preset(ModelConfig& c);  // c.arch set, sizes the generic preset's
void apply_family_switches(ModelConfig& c);  // the preset's family settings, before fit_preset_to_sizes
void validate_family_settings(const ModelConfig& c, const std::string& where);  // InputError on inconsistent keys

// The mixture-of-experts keys (model_config_moe.cpp): experts, top-k, sparse layers.
void read_moe_keys(const nlohmann::json& json, const std::string& where, ModelConfig& c);
void write_moe_keys(const ModelConfig& c, nlohmann::ordered_json& j);
void validate_moe_settings(const ModelConfig& c, const std::string& where);
void apply_moe_switches(ModelConfig& c);  // the Mixtral / Qwen3-MoE preset's settings

}  // namespace qtune
