// PEFT's fused expert LoRA -> qtune's per-expert modules (layouts in peft_moe.h).
#include "adapters/peft_moe.h"

#include <fmt/ranges.h>

#include <regex>

#include "core/error.h"

namespace qtune {
namespace {

const std::regex kFused(R"(model\.layers\.(\d+)\.mlp\.(experts|experts\.base_layer|gate))");

std::string shape_string(at::IntArrayRef shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

// Which expert parameter a fused LoRA adapts, from its shapes: gate_up_proj (in D, out 2F) or down_proj (in F, out D).
bool adapts_gate_up(const LoraTensors& f, const ModelConfig& c, const std::string& where) {
  const int64_t D = c.hidden_size, F = c.moe_intermediate_size;
  const bool gate_up = f.A.size(1) == D && f.B.size(0) == 2 * F, down = f.A.size(1) == F && f.B.size(0) == D;
  if (gate_up == down)
    input_error("{}: shapes {} and {} fit neither the experts' gate_up_proj (in {}, out {}) nor their down_proj (in {}, out {})", where,
                shape_string(f.A.sizes()), shape_string(f.B.sizes()), D, 2 * F, F, D);
  return gate_up;
}

// Expert e's factors of a fused LoRA of rank r over E experts.
LoraTensors expert_factors(const LoraTensors& f, int64_t e, int64_t r, int64_t E) {
  return {f.A.narrow(0, e * r, r), f.B.view({f.B.size(0), r, E}).select(2, e), torch::Tensor()};
}

}  // namespace

bool is_fused_moe_module(const std::string& module) { return std::regex_match(module, kFused); }

std::map<std::string, LoraTensors> unfuse_moe_modules(const std::map<std::string, LoraTensors>& fused, const ModelConfig& config, int64_t r,
                                                      const std::string& weights_path) {
  std::map<std::string, LoraTensors> out;
  const int64_t E = config.num_experts, F = config.moe_intermediate_size;
  for (const auto& [module, f] : fused) {
    std::smatch m;
    std::regex_match(module, m, kFused);
    const int64_t layer = std::stoll(m[1].str());
    const std::string where = weights_path + ": module '" + module + "'";
    if (!f.A.defined() || !f.B.defined()) input_error("{} has only lora_{}", where, f.A.defined() ? 'A' : 'B');
    if (E == 0 || layer >= config.num_layers || !config.is_sparse_layer(layer))
      input_error("{}: the base model ({}) has no experts in layer {}", where, config.hf_class_name(), layer);
    const std::string block = "model.layers." + std::to_string(layer) + "." + config.moe_block_name() + ".";
    if (m[2] == "gate") {  // the router: a plain 2-D LoRA
      out[block + "gate"] = f;
      continue;
    }
    if (f.A.size(0) != E * r || f.B.size(1) != E * r)
      input_error("{}: shapes {} and {} are not rank {} for each of {} experts", where, shape_string(f.A.sizes()), shape_string(f.B.sizes()), r, E);
    const auto names = config.expert_projection_names();  // gate, up, down
    const bool gate_up = adapts_gate_up(f, config, where);
    for (int64_t e = 0; e < E; ++e) {
      const std::string expert = block + "experts." + std::to_string(e) + ".";
      const LoraTensors x = expert_factors(f, e, r, E);
      if (!gate_up) {
        out[expert + names[2]] = x;
        continue;
      }
      out[expert + names[0]] = {x.A, x.B.narrow(0, 0, F), torch::Tensor()};
      out[expert + names[1]] = {x.A, x.B.narrow(0, F, F), torch::Tensor()};
    }
  }
  return out;
}

}  // namespace qtune
