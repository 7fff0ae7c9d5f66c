// LoRA adapter, option checks and injection.
#include "adapters/lora.h"

#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <iterator>

#include "adapters/lora_init.h"
#include "core/error.h"
#include "core/hash.h"
#include "models/architecture.h"

namespace qtune {
namespace {

std::string last_component(const std::string& module) {
  const auto dot = module.rfind('.');
  return dot == std::string::npos ? module : module.substr(dot + 1);
}

bool is_float(at::ScalarType t) { return t == at::kFloat || t == at::kDouble || t == at::kBFloat16 || t == at::kHalf; }

}  // namespace

double lora_scale(const LoraOptions& options) {
  const double r = static_cast<double>(options.r);
  return options.rslora ? options.alpha / std::sqrt(r) : options.alpha / r;
}

const std::vector<std::string>& lora_projection_names() {
  static const std::vector<std::string> names = {"q_proj", "k_proj", "v_proj", "qkv_proj", "o_proj", "gate_proj", "up_proj",
                                                 "gate_up_proj", "down_proj", "w1", "w3", "w2", "gate"};
  return names;
}

namespace {
// The distinct last components of the model's projection names, in model order.
std::vector<std::string> projection_leaf_names(const ModelConfig& config) {
  std::vector<std::string> names;
  for (int64_t layer = 0; layer < config.num_layers; ++layer)
    for (const auto& n : config.layer_projection_names(layer))
      if (std::find(names.begin(), names.end(), last_component(n)) == names.end()) names.push_back(last_component(n));
  return names;
}
}  // namespace

void validate_lora_options(const LoraOptions& o) {
  if (o.r <= 0) input_error("lora_r: must be a positive integer, got {}", o.r);
  if (!(o.alpha >= 0) || !std::isfinite(o.alpha)) input_error("lora_alpha: must be a finite number >= 0, got {}", o.alpha);
  if (!(o.dropout >= 0 && o.dropout < 1)) input_error("lora_dropout: must be in [0, 1), got {}", o.dropout);
  check_lora_init(o.init);
  if (o.use_dora && init_uses_base(o.init))
    input_error("lora_init: {} with peft_use_dora is not supported (a DoRA adapter cannot be converted back to one for the original base); "
                "use one of them", o.init);
  if (!is_float(o.dtype)) input_error("LoRA weights must have a floating-point dtype, got {}", c10::toString(o.dtype));
  const auto& valid = lora_projection_names();
  if (!o.target_linear && o.target_modules.empty())
    input_error("lora_target_modules: no target modules; list some of {} or set lora_target_linear: true", fmt::join(valid, " "));
  for (const auto& t : o.target_modules)
    if (t != "all-linear" && std::find(valid.begin(), valid.end(), t) == valid.end())
      input_error("lora_target_modules: unknown module '{}' (valid: {}, or all-linear)", t, fmt::join(valid, " "));
}

std::vector<std::string> lora_target_names(const LoraOptions& o) {
  validate_lora_options(o);
  const bool all = o.target_linear || std::find(o.target_modules.begin(), o.target_modules.end(), "all-linear") != o.target_modules.end();
  std::vector<std::string> names = o.target_modules;
  if (all)  // every projection but an MoE router, which is trained only when listed ("gate")
    std::copy_if(lora_projection_names().begin(), lora_projection_names().end(), std::back_inserter(names), [](const std::string& n) { return n != "gate"; });
  names.erase(std::remove(names.begin(), names.end(), "all-linear"), names.end());
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

std::vector<std::string> lora_target_modules(const ModelConfig& config, const LoraOptions& options) {
  const auto targets = lora_target_names(options);
  std::vector<std::string> modules;
  for (const auto& spec : hf_weight_specs(config)) {
    if (!spec.decoder_projection && !spec.router) continue;
    const std::string module = spec.name.substr(0, spec.name.size() - std::string(".weight").size());
    if (std::binary_search(targets.begin(), targets.end(), last_component(module))) modules.push_back(module);
  }
  if (modules.empty())  // as PEFT: names the family lacks are skipped, but something must match (q_proj on Phi-3 alone)
    input_error("lora_target_modules: {} has none of {}; its projections are {}", config.hf_class_name(), fmt::join(targets, " "),
                fmt::join(projection_leaf_names(config), " "));
  return modules;
}

void check_expert_lora_dropout(const ModelConfig& config, const LoraOptions& options) {
  if (config.num_experts == 0 || options.dropout == 0) return;
  for (const auto& module : lora_target_modules(config, options))
    if (module.find(".experts.") != std::string::npos || last_component(module) == "gate")
      input_error("lora_dropout: {} with LoRA on the experts of {} ({}); PEFT trains and loads expert and router adapters only without "
                  "dropout (transformers 5 fuses the experts): set lora_dropout: 0, or target the attention only (q_proj k_proj v_proj o_proj)",
                  options.dropout, config.hf_class_name(), module);
}

LoraAdapterImpl::LoraAdapterImpl(int64_t in_features, int64_t out_features, const LoraOptions& options, uint64_t seed,
                                 const std::string& module_name, const torch::Device& device)
    : init_(options.init),
      seed_(Fnv1a64().add_u64(seed).add(module_name).value()),
      scale_(lora_scale(options)),
      dropout_(options.dropout),
      variant_(&lora_variant(options.use_dora)) {
  validate_lora_options(options);
  const LoraStart start = random_lora_start(options.init, in_features, out_features, options.r, seed_);
  auto to = torch::TensorOptions().dtype(options.dtype).device(device);
  lora_A = register_parameter("lora_A", start.A.to(to));
  lora_B = register_parameter("lora_B", start.B.to(to));
  if (options.use_dora) magnitude = register_parameter("lora_magnitude_vector", torch::ones({out_features}, to));  // set by start_from
}

void LoraAdapterImpl::start_from(FrozenLinearImpl& layer) {
  if (!init_uses_base(init_) && !magnitude.defined()) return;  // nothing depends on W: no dequantization at load
  torch::NoGradGuard no_grad;
  torch::Tensor w = layer.weight().dequantize().to(torch::kFloat);
  if (init_uses_base(init_)) {
    LoraStart start = lora_start_from_base(init_, w, rank(), scale_, seed_);
    lora_A.copy_(start.A);
    lora_B.copy_(start.B);
    initial_A = register_buffer("initial_A", lora_A.detach().clone());
    initial_B = register_buffer("initial_B", lora_B.detach().clone());
    layer.set_weight(same_format_weight(layer.weight(), start.residual));
    w = layer.weight().dequantize().to(torch::kFloat);  // what the layer computes with now
  }
  LoraTensors t = trained();
  variant_->init(t, w, scale_);
  if (t.magnitude.defined()) magnitude.copy_(t.magnitude);
}

torch::Tensor LoraAdapterImpl::dropped(const torch::Tensor& x) {
  return (dropout_ > 0 && is_training()) ? at::dropout(x, dropout_, /*train=*/true) : x;
}

torch::Tensor LoraAdapterImpl::add_to(const FrozenLinearImpl& layer, torch::Tensor y, const torch::Tensor& x) {
  if (y.is_view()) y = y.clone();  // never write through a view into someone else's tensor
  if (ReferenceModel::active()) return reference.A.defined() ? variant_->forward(reference, {layer, std::move(y), x, false, scale_, nullptr}) : y;
  const torch::Tensor h = dropped(x);
  LoraGradientSums* sums = torch::GradMode::is_enabled() ? sums_ : nullptr;
  return variant_->forward(trained(), {layer, std::move(y), h, !h.is_same(x), scale_, sums});
}

torch::Tensor LoraAdapterImpl::delta(const torch::Tensor& x) { return low_rank_term(dropped(x), lora_A, lora_B, scale_); }

torch::Tensor LoraAdapterImpl::merged_weight(const torch::Tensor& base) const { return variant_->merged_weight(trained(), base, scale_); }

void LoraAdapterImpl::keep_reference_copy() {
  torch::NoGradGuard no_grad;
  reference.A = register_buffer("reference_A", lora_A.detach().clone());
  reference.B = register_buffer("reference_B", lora_B.detach().clone());
  if (magnitude.defined()) reference.magnitude = register_buffer("reference_magnitude", magnitude.detach().clone());
}

std::vector<std::string> inject_lora(CausalLM& model, const LoraOptions& options, uint64_t seed) {
  std::vector<std::string> modules = lora_target_modules(model->config(), options);  // validates; model order
  std::sort(modules.begin(), modules.end());
  std::vector<std::string> adapted;
  for (auto& [name, linear] : model->projections()) {
    if (!std::binary_search(modules.begin(), modules.end(), name)) continue;
    TORCH_CHECK(!linear->adapter(), name, " already has an adapter; call remove_lora first");
    LoraAdapter adapter(linear->weight().in_features(), linear->weight().out_features(), options, seed, name, model->device());
    adapter->train(model->is_training());  // a new module starts in training mode; follow the model's
    adapter->start_from(*linear);
    linear->set_adapter(adapter.ptr());
    adapted.push_back(name);
  }
  return adapted;
}

void remove_lora(CausalLM& model) {
  for (auto& [name, linear] : model->projections()) linear->set_adapter(nullptr);
}

void keep_reference_copies(CausalLM& model) {
  for (auto& [name, linear] : model->projections())
    if (LoraAdapterImpl* lora = lora_of(linear)) lora->keep_reference_copy();
}

std::vector<LoraAdapterImpl*> lora_adapters(CausalLM& model) {
  std::vector<LoraAdapterImpl*> adapters;
  for (auto& [name, linear] : model->projections())
    if (LoraAdapterImpl* lora = lora_of(linear)) adapters.push_back(lora);
  return adapters;
}

LoraAdapterImpl* lora_of(const FrozenLinear& linear) { return dynamic_cast<LoraAdapterImpl*>(linear->adapter().get()); }

std::string peft_tensor_name(const std::string& module, char which) {
  return "base_model.model." + module + ".lora_" + std::string(1, which) + ".weight";
}

std::string peft_magnitude_name(const std::string& module) { return "base_model.model." + module + ".lora_magnitude_vector"; }

std::vector<std::pair<std::string, torch::Tensor>> lora_state(CausalLM& model) {
  std::vector<std::pair<std::string, torch::Tensor>> state;
  for (auto& [name, linear] : model->projections()) {
    LoraAdapterImpl* lora = lora_of(linear);
    if (lora == nullptr) continue;
    state.emplace_back(peft_tensor_name(name, 'A'), lora->lora_A);
    state.emplace_back(peft_tensor_name(name, 'B'), lora->lora_B);
    if (lora->magnitude.defined()) state.emplace_back(peft_magnitude_name(name), lora->magnitude);
  }
  return state;
}

namespace {
thread_local bool reference_model = false;
}

ReferenceModel::ReferenceModel() : previous_(reference_model) { reference_model = true; }
ReferenceModel::~ReferenceModel() { reference_model = previous_; }
bool ReferenceModel::active() { return reference_model; }

}  // namespace qtune
