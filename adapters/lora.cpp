// LoRA adapter, option checks and injection.
#include "adapters/lora.h"

#include <fmt/ranges.h>
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>

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

// aᵀ·b for a [T, p], b [T, q]: the GEMM transposes the smaller operand (in bf16 LibTorch copies a
// transposed operand first, and a [T, out] one is the size of an activation).
torch::Tensor transposed_product(const torch::Tensor& a, const torch::Tensor& b) {
  return a.size(-1) <= b.size(-1) ? torch::matmul(a.t(), b) : torch::matmul(b.t(), a).t();
}

// Adds Σ over tokens of aᵀ·b for a [..., p], b [..., q] into sum [p, q]. On the CPU (batch_invariant_matmul's
// rule) a [B, T, ·] batch gives one GEMM per sequence, added in the sum's dtype: a sequence's part then does
// not depend on its batch, and a float64 total hardly on the order of the parts.
void add_token_sum(torch::Tensor sum, const torch::Tensor& a, const torch::Tensor& b) {
  if (a.is_cpu() && a.dim() == 3) {
    for (int64_t i = 0; i < a.size(0); ++i) sum.add_(transposed_product(a[i], b[i]).to(sum.scalar_type()));
    return;
  }
  sum.add_(transposed_product(a.reshape({-1, a.size(-1)}), b.reshape({-1, b.size(-1)})).to(sum.scalar_type()));
}

// y += s · low · bᵀ in place: one GEMM whose output is y (cuBLAS / BLAS add into C), so the adapter's
// term costs no [..., out] temporary. low [..., R], b [out, R]. A CPU [B, T, ·] batch gets one GEMM per
// sequence (batch_invariant_matmul's rule).
void add_low_rank_product_(torch::Tensor& y, const torch::Tensor& low, const torch::Tensor& b, double scale) {
  if (y.is_cpu() && y.dim() == 3) {
    for (int64_t i = 0; i < y.size(0); ++i) y[i].addmm_(low[i], b.t(), /*beta=*/1, /*alpha=*/scale);
    return;
  }
  y.view({-1, y.size(-1)}).addmm_(low.reshape({-1, low.size(-1)}), b.t(), /*beta=*/1, /*alpha=*/scale);
}

// y + s · (h · Aᵀ) · Bᵀ, added into y in place, whose backward passes y's gradient through, returns h's
// and adds A's and B's into the adapter's gradient sums (see LoraAdapterImpl::use_gradient_sums).
struct LoraDeltaIntoSums : public torch::autograd::Function<LoraDeltaIntoSums> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, torch::Tensor y, const torch::Tensor& h, const torch::Tensor& A,
                               const torch::Tensor& B, double scale, LoraAdapterImpl* adapter) {
    const torch::Tensor a = A.to(h.scalar_type()), b = B.to(h.scalar_type());
    const torch::Tensor low = batch_invariant_matmul(h, a.t());  // [..., R]
    ctx->save_for_backward({h, low, a, b});
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["adapter"] = reinterpret_cast<int64_t>(adapter);  // outlives the graph (a module of the model)
    add_low_rank_product_(y, low, b, scale);
    ctx->mark_dirty({y});
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grad) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor &h = saved[0], &low = saved[1], &a = saved[2], &b = saved[3];
    // The scale goes on the [..., R] factors, not on y's [..., out] gradient (one full-size product fewer).
    const double scale = ctx->saved_data["scale"].toDouble();
    const torch::Tensor& dy = grad[0];                                      // [..., out]
    const torch::Tensor dlow = batch_invariant_matmul(dy, b).mul_(scale);   // [..., R]
    auto* adapter = reinterpret_cast<LoraAdapterImpl*>(ctx->saved_data["adapter"].toInt());
    add_token_sum(adapter->gradient_sum_B, dy, low * scale);
    add_token_sum(adapter->gradient_sum_A, dlow, h);
    if (adapter->gradient_sums_added) adapter->gradient_sums_added();
    const torch::Tensor dh = ctx->needs_input_grad(1) ? batch_invariant_matmul(dlow, a) : torch::Tensor();
    return {grad[0], dh, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

double lora_scale(const LoraOptions& options) {
  const double r = static_cast<double>(options.r);
  return options.rslora ? options.alpha / std::sqrt(r) : options.alpha / r;
}

const std::vector<std::string>& lora_projection_names() {
  static const std::vector<std::string> names = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
  return names;
}

void validate_lora_options(const LoraOptions& o) {
  if (o.r <= 0) input_error("lora_r: must be a positive integer, got {}", o.r);
  if (!(o.alpha >= 0) || !std::isfinite(o.alpha)) input_error("lora_alpha: must be a finite number >= 0, got {}", o.alpha);
  if (!(o.dropout >= 0 && o.dropout < 1)) input_error("lora_dropout: must be in [0, 1), got {}", o.dropout);
  if (o.init != "kaiming" && o.init != "gaussian") input_error("lora_init: '{}' is not supported (use kaiming or gaussian)", o.init);
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
  std::vector<std::string> names = all ? lora_projection_names() : o.target_modules;
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

std::vector<std::string> lora_target_modules(const ModelConfig& config, const LoraOptions& options) {
  const auto targets = lora_target_names(options);
  std::vector<std::string> modules;
  for (const auto& spec : hf_weight_specs(config)) {
    if (!spec.decoder_projection) continue;
    const std::string module = spec.name.substr(0, spec.name.size() - std::string(".weight").size());
    if (std::binary_search(targets.begin(), targets.end(), last_component(module))) modules.push_back(module);
  }
  return modules;
}

LoraAdapterImpl::LoraAdapterImpl(int64_t in_features, int64_t out_features, const LoraOptions& options, uint64_t seed,
                                 const std::string& module_name, const torch::Device& device)
    : scale_(lora_scale(options)), dropout_(options.dropout) {
  validate_lora_options(options);
  const int64_t R = options.r;
  auto generator = at::make_generator<at::CPUGeneratorImpl>(Fnv1a64().add_u64(seed).add(module_name).value());
  torch::Tensor a;  // [R, in] drawn in float32 (the same values whatever the master dtype), then cast
  if (options.init == "gaussian") {
    // PEFT "gaussian": nn.init.normal_(A, std=1/R).
    a = at::normal(0.0, 1.0 / static_cast<double>(R), {R, in_features}, generator);
  } else {
    // PEFT default: nn.init.kaiming_uniform_(A, a=sqrt(5)) (= nn.Linear's default weight init), fan_in = in:
    //   gain = sqrt(2 / (1 + a²)) = sqrt(1/3),  std = gain / sqrt(fan_in),  bound = sqrt(3)·std = 1 / sqrt(in).
    const double bound = 1.0 / std::sqrt(static_cast<double>(in_features));
    a = torch::empty({R, in_features}, torch::kFloat).uniform_(-bound, bound, generator);
  }
  auto to = torch::TensorOptions().dtype(options.dtype).device(device);
  lora_A = register_parameter("lora_A", a.to(to));
  lora_B = register_parameter("lora_B", torch::zeros({out_features, R}, to));
}

torch::Tensor LoraAdapterImpl::dropped(const torch::Tensor& x) {
  return (dropout_ > 0 && is_training()) ? at::dropout(x, dropout_, /*train=*/true) : x;
}

torch::Tensor LoraAdapterImpl::delta(const torch::Tensor& x) {
  const at::ScalarType dtype = x.scalar_type();
  const torch::Tensor low = batch_invariant_matmul(dropped(x), lora_A.to(dtype).t());  // [..., R]
  return batch_invariant_matmul(low, lora_B.to(dtype).t()) * scale_;                  // [..., out]
}

torch::Tensor LoraAdapterImpl::add_delta(torch::Tensor y, const torch::Tensor& x) {
  if (y.is_view()) y = y.clone();  // never write through a view into someone else's tensor
  if (torch::GradMode::is_enabled() && gradient_sums_) return LoraDeltaIntoSums::apply(y, dropped(x), lora_A, lora_B, scale_, this);
  if (torch::GradMode::is_enabled()) return y + delta(x);  // autograd's own gradients (.grad), as PEFT
  const at::ScalarType dtype = x.scalar_type();
  add_low_rank_product_(y, batch_invariant_matmul(dropped(x), lora_A.to(dtype).t()), lora_B.to(dtype), scale_);
  return y;
}

void LoraAdapterImpl::use_gradient_sums(at::ScalarType dtype) {
  gradient_sums_ = true;
  gradient_sum_A = torch::zeros(lora_A.sizes(), lora_A.options().dtype(dtype));
  gradient_sum_B = torch::zeros(lora_B.sizes(), lora_B.options().dtype(dtype));
}

void LoraAdapterImpl::keep_reference_copy() {
  torch::NoGradGuard no_grad;
  reference_A = register_buffer("reference_A", lora_A.detach().clone());
  reference_B = register_buffer("reference_B", lora_B.detach().clone());
}

torch::Tensor LoraAdapterImpl::reference_delta(const torch::Tensor& x) {
  if (!reference_A.defined()) return {};
  const at::ScalarType dtype = x.scalar_type();
  return batch_invariant_matmul(batch_invariant_matmul(x, reference_A.to(dtype).t()), reference_B.to(dtype).t()) * scale_;
}

torch::Tensor LoraAdapterImpl::delta_weight() const {
  torch::NoGradGuard no_grad;
  return torch::matmul(lora_B.to(torch::kFloat), lora_A.to(torch::kFloat)) * scale_;  // [out, in]
}

std::vector<std::string> inject_lora(CausalLM& model, const LoraOptions& options, uint64_t seed) {
  const auto targets = lora_target_names(options);
  std::vector<std::string> adapted;
  for (auto& [name, linear] : model->projections()) {
    if (!std::binary_search(targets.begin(), targets.end(), last_component(name))) continue;
    TORCH_CHECK(!linear->adapter(), name, " already has an adapter; call remove_lora first");
    LoraAdapter adapter(linear->weight().in_features(), linear->weight().out_features(), options, seed, name, model->device());
    adapter->train(model->is_training());  // a new module starts in training mode; follow the model's
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

std::vector<LoraAdapterImpl*> use_gradient_sums(CausalLM& model, at::ScalarType dtype) {
  std::vector<LoraAdapterImpl*> adapters;
  for (auto& [name, linear] : model->projections())
    if (LoraAdapterImpl* lora = lora_of(linear)) {
      lora->use_gradient_sums(dtype);
      adapters.push_back(lora);
    }
  return adapters;
}

LoraAdapterImpl* lora_of(const FrozenLinear& linear) { return dynamic_cast<LoraAdapterImpl*>(linear->adapter().get()); }

std::string peft_tensor_name(const std::string& module, char which) {
  return "base_model.model." + module + ".lora_" + std::string(1, which) + ".weight";
}

std::vector<std::pair<std::string, torch::Tensor>> lora_state(CausalLM& model) {
  std::vector<std::pair<std::string, torch::Tensor>> state;
  for (auto& [name, linear] : model->projections()) {
    LoraAdapterImpl* lora = lora_of(linear);
    if (lora == nullptr) continue;
    state.emplace_back(peft_tensor_name(name, 'A'), lora->lora_A);
    state.emplace_back(peft_tensor_name(name, 'B'), lora->lora_B);
  }
  return state;
}

}  // namespace qtune
