// LoRA adapters on the decoder projections: LoraOptions (Axolotl/PEFT knobs), LoraAdapter (the
// trainable low-rank addition hooked into a FrozenLinear), injection into a CausalLM, PEFT-named state.
//
// Legend: R LoRA rank, in/out the projection's features.
// Forward (as PEFT):  y = x·Wᵀ (+ b) + s · (dropout(x) · Aᵀ) · Bᵀ,  s = α/R (α/√R with rsLoRA)
// Backward:           dA = s · Bᵀ · gᵀ·dropout(x),  dB = s · gᵀ · (dropout(x)·Aᵀ)  (autograd; W gets none)
#pragma once

#include "core/torch.h"

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "models/frozen_linear.h"
#include "models/model_config.h"
#include "models/transformer.h"

namespace qtune {

struct LoraOptions {
  int64_t r = 16;                           // R
  double alpha = 32;                        // lora_alpha
  double dropout = 0.05;                    // on the adapter's input, training mode only
  bool rslora = false;                      // scale α/√R instead of α/R
  std::string init = "kaiming";             // "kaiming" (PEFT's default) or "gaussian"
  std::vector<std::string> target_modules;  // last name components: q_proj, v_proj, ...
  bool target_linear = false;               // all 7 decoder projections
  at::ScalarType dtype = at::kFloat;        // of the master weights lora_A / lora_B
};

// α/R, or α/√R with rsLoRA.
double lora_scale(const LoraOptions& options);

// The projection names LoRA can target, in model order: q_proj k_proj v_proj o_proj gate_proj up_proj down_proj.
const std::vector<std::string>& lora_projection_names();

// InputError (naming the Axolotl key) for r <= 0, a negative alpha, dropout outside [0, 1), an unknown
// init, a non-float dtype, no targets, or a target that is not a decoder projection.
void validate_lora_options(const LoraOptions& options);

// The sorted, de-duplicated last-component names `options` targets ("all-linear" and target_linear
// expand to all 7). Validates first.
std::vector<std::string> lora_target_names(const LoraOptions& options);

// The module names inject_lora adapts for a model with `config`, in model order
// ("model.layers.0.self_attn.q_proj", ...), computed from the config alone.
std::vector<std::string> lora_target_modules(const ModelConfig& config, const LoraOptions& options);

class LoraAdapterImpl : public LinearAdapter {
 public:
  // A [R, in] as PEFT initializes it (see lora.cpp), B [out, R] zeros; drawn from a generator seeded
  // by (seed, module_name), so the result depends on nothing else. Created on the CPU, then moved to `device`.
  LoraAdapterImpl(int64_t in_features, int64_t out_features, const LoraOptions& options, uint64_t seed,
                  const std::string& module_name, const torch::Device& device = torch::kCPU);

  // s · (dropout(x) · Aᵀ) · Bᵀ : [..., in] -> [..., out], in x's dtype (A and B are cast to it).
  torch::Tensor delta(const torch::Tensor& x) override;
  // y + delta(x) with the product added into y in place (y: the base projection's fresh output), when
  // training with gradient sums or without autograd; otherwise out of place.
  torch::Tensor add_delta(torch::Tensor y, const torch::Tensor& x) override;
  // s · B · A : [out, in] in float32 (what a merge adds to the base weight).
  torch::Tensor delta_weight() const;

  // Freezes a copy of the current A and B as this adapter's reference: under ReferenceModel the layer
  // adds the copy's delta (no dropout) instead of nothing. DPO started from an SFT adapter uses it so
  // its reference model is base + that adapter while the trained copy moves.
  void keep_reference_copy();
  torch::Tensor reference_delta(const torch::Tensor& x) override;

  // Gradient sums (the trainer's): training backwards add A's and B's gradients into gradient_sum_A/B
  // of `dtype` instead of .grad, then call gradient_sums_added (the trainer starts summing them across
  // ranks while the backward goes on). A gradient is a sum over every token; in one float32 sum its value
  // depends on how the tokens were split (micro-batches, ranks) and Adam amplifies such differences. On
  // the CPU each sequence's part is its own GEMM and with dtype float64 every split gives the same sums.
  void use_gradient_sums(at::ScalarType dtype);
  torch::Tensor gradient_sum_A, gradient_sum_B;  // shaped as A and B; undefined until use_gradient_sums()
  std::function<void()> gradient_sums_added;

  double scale() const { return scale_; }
  void set_dropout(double p) { dropout_ = p; }
  int64_t rank() const { return lora_A.size(0); }
  int64_t in_features() const { return lora_A.size(1); }
  int64_t out_features() const { return lora_B.size(0); }

  torch::Tensor lora_A;  // [R, in], parameter "lora_A"
  torch::Tensor lora_B;  // [out, R], parameter "lora_B"
  torch::Tensor reference_A, reference_B;  // frozen buffers after keep_reference_copy(), else undefined

 private:
  torch::Tensor dropped(const torch::Tensor& x);  // dropout(x) in training mode, else x
  double scale_;
  double dropout_;
  bool gradient_sums_ = false;
};
TORCH_MODULE(LoraAdapter);

// Attaches a LoRA adapter to every targeted projection of `model` (on the model's device), each
// initialized from (seed, module name). Returns the adapted module names in model order. Afterwards
// model->parameters() are exactly the LoRA parameters (the base weights are buffers).
// InputError for invalid options (see validate_lora_options); TORCH_CHECK if a projection already has an adapter.
std::vector<std::string> inject_lora(CausalLM& model, const LoraOptions& options, uint64_t seed);

// Removes every adapter from `model`.
void remove_lora(CausalLM& model);

// use_gradient_sums(dtype) on every adapter of `model`; returns the adapters in model order.
std::vector<LoraAdapterImpl*> use_gradient_sums(CausalLM& model, at::ScalarType dtype);

// keep_reference_copy() on every adapter of `model`.
void keep_reference_copies(CausalLM& model);

// The LoRA adapter of `linear`, or nullptr.
LoraAdapterImpl* lora_of(const FrozenLinear& linear);

// Every adapter's A and B with PEFT names, in model order:
// "base_model.model.<module>.lora_A.weight" [R, in], "base_model.model.<module>.lora_B.weight" [out, R].
// The tensors are the parameters themselves (not copies).
std::vector<std::pair<std::string, torch::Tensor>> lora_state(CausalLM& model);

// "base_model.model.<module>.lora_<A|B>.weight"
std::string peft_tensor_name(const std::string& module, char which);

}  // namespace qtune
