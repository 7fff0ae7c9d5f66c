// LoRA adapters on the decoder projections: LoraOptions (Axolotl/PEFT knobs), LoraAdapter (the
// trainable addition hooked into a FrozenLinear, its math a LoraVariant: plain LoRA or DoRA), injection
// into a CausalLM, PEFT-named state, and the reference-model switch DPO uses.
//
// Legend: R LoRA rank, in/out the projection's features.
// Forward (as PEFT):  y = x·Wᵀ (+ b) + s · (dropout(x) · Aᵀ) · Bᵀ,  s = α/R (α/√R with rsLoRA); DoRA: lora_variant.h
// Backward:           dA = s · Bᵀ · gᵀ·dropout(x),  dB = s · gᵀ · (dropout(x)·Aᵀ)  (W gets none)
#pragma once

#include "core/torch.h"

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "adapters/lora_variant.h"
#include "models/frozen_linear.h"
#include "models/model_config.h"
#include "models/transformer.h"

namespace qtune {

struct LoraOptions {
  int64_t r = 16;                           // R
  double alpha = 32;                        // lora_alpha
  double dropout = 0.05;                    // on the adapter's input, training mode only
  bool rslora = false;                      // scale α/√R instead of α/R
  std::string init = "kaiming";             // kaiming (PEFT's default) | gaussian | pissa | pissa_niter_N | olora
  bool use_dora = false;                    // DoRA: a trained magnitude per output row (PEFT's use_dora)
  std::vector<std::string> target_modules;  // last name components: q_proj, v_proj, ... (MoE: w1 w3 w2, gate = router)
  bool target_linear = false;               // every decoder projection (experts' too), not an MoE router
  at::ScalarType dtype = at::kFloat;        // of the master weights lora_A / lora_B
};

// α/R, or α/√R with rsLoRA.
double lora_scale(const LoraOptions& options);

// The projection names LoRA can target, in model order, over all families: q_proj k_proj v_proj qkv_proj o_proj
// gate_proj up_proj gate_up_proj down_proj (a model has the fused or the separate ones), Mixtral's experts' w1 w3 w2
// (Qwen3-MoE's experts use gate_proj up_proj down_proj) and an MoE router's gate.
const std::vector<std::string>& lora_projection_names();

// InputError (naming the Axolotl key) for r <= 0, a negative alpha, dropout outside [0, 1), an unknown
// init, PiSSA / OLoRA with DoRA, a non-float dtype, no targets, or a target that is not a decoder projection.
void validate_lora_options(const LoraOptions& options);

// The sorted, de-duplicated last-component names `options` targets ("all-linear" and target_linear
// expand to all of them but the router's "gate"). Validates first.
std::vector<std::string> lora_target_names(const LoraOptions& options);

// The module names inject_lora adapts for a model with `config`, in model order
// ("model.layers.0.self_attn.q_proj", ...), computed from the config alone. As in PEFT, listed names the family
// lacks are skipped; InputError when nothing matches (q_proj alone on Phi-3, whose attention has one qkv_proj).
std::vector<std::string> lora_target_modules(const ModelConfig& config, const LoraOptions& options);

// New adapters on an MoE model: LoRA on experts or a router trains without dropout, as PEFT does there (transformers 5
// fuses the experts and PEFT's adapters on them refuse dropout, so a file with it would not load in PEFT).
// InputError naming lora_dropout otherwise.
void check_expert_lora_dropout(const ModelConfig& config, const LoraOptions& options);

class LoraAdapterImpl : public LinearAdapter {
 public:
  // A [R, in] drawn as PEFT's kaiming / gaussian init (adapters/lora_init.h), B [out, R] zeros, from a
  // generator seeded by (seed, module_name), so the result depends on nothing else; created on the CPU,
  // then moved to `device`. PiSSA / OLoRA and DoRA take their start values from the base: start_from().
  LoraAdapterImpl(int64_t in_features, int64_t out_features, const LoraOptions& options, uint64_t seed,
                  const std::string& module_name, const torch::Device& device = torch::kCPU);

  // The start values that depend on `layer`'s weight W: PiSSA / OLoRA take A and B from W and make the layer's
  // weight the residual W − s·B·A (re-quantized on a 4-bit base, as PEFT); DoRA's magnitude is ‖W + s·B·A‖.
  // inject_lora calls it; a no-op (W not even dequantized) for plain LoRA with a random start.
  void start_from(FrozenLinearImpl& layer);

  // y + the variant's term (adapters/lora_variant.h) for x; under ReferenceModel the frozen reference copy's
  // term, or nothing without one.
  torch::Tensor add_to(const FrozenLinearImpl& layer, torch::Tensor y, const torch::Tensor& x) override;
  // s · (dropout(x) · Aᵀ) · Bᵀ alone : [..., in] -> [..., out], in x's dtype (plain LoRA's term without a layer).
  torch::Tensor delta(const torch::Tensor& x);
  // The merged weight, float32 [out, in], for the base weight `base` (W as training computed with it).
  torch::Tensor merged_weight(const torch::Tensor& base) const;

  // Freezes a copy of the current tensors as this adapter's reference: under ReferenceModel the layer
  // adds the copy's term (no dropout) instead of nothing. DPO started from an SFT adapter uses it so
  // its reference model is base + that adapter while the trained copy moves.
  void keep_reference_copy();

  // Training backwards add the gradients into `sums` (shaped as A, B and m; see LoraGradientSums) instead
  // of .grad, and call its `added`; nullptr: .grad again. The owner (the trainer's GradientReducer) keeps
  // them alive meanwhile. A gradient is a sum over every token; in one float32 sum its value depends on how
  // the tokens were split (micro-batches, ranks) and Adam amplifies such differences. On the CPU each
  // sequence's part is its own GEMM and with float64 sums every split gives the same sums.
  void sum_gradients_into(LoraGradientSums* sums) { sums_ = sums; }

  LoraTensors trained() const { return {lora_A, lora_B, magnitude}; }
  const LoraVariant& variant() const { return *variant_; }
  double scale() const { return scale_; }
  void set_dropout(double p) { dropout_ = p; }
  int64_t rank() const { return lora_A.size(0); }
  int64_t in_features() const { return lora_A.size(1); }
  int64_t out_features() const { return lora_B.size(0); }

  torch::Tensor lora_A;     // [R, in], parameter "lora_A"
  torch::Tensor lora_B;     // [out, R], parameter "lora_B"
  torch::Tensor magnitude;  // DoRA's m [out], parameter "lora_magnitude_vector"; undefined without DoRA
  LoraTensors reference;    // frozen buffers after keep_reference_copy(), else undefined
  // PiSSA / OLoRA: A and B as they started (buffers): the saved adapter is converted with them (see peft_format.h).
  torch::Tensor initial_A, initial_B;

 private:
  torch::Tensor dropped(const torch::Tensor& x);  // dropout(x) in training mode, else x
  std::string init_;
  uint64_t seed_;
  double scale_;
  double dropout_;
  const LoraVariant* variant_;
  LoraGradientSums* sums_ = nullptr;
};
TORCH_MODULE(LoraAdapter);

// While alive, the model computes as DPO's reference model: every adapter adds its frozen reference copy's
// term instead of its own, so adapters without one drop out (the base alone). Scoped to the current thread
// (the reference pass runs without autograd, so no backward thread ever needs it).
class ReferenceModel {
 public:
  ReferenceModel();
  ~ReferenceModel();
  ReferenceModel(const ReferenceModel&) = delete;
  ReferenceModel& operator=(const ReferenceModel&) = delete;
  static bool active();

 private:
  bool previous_;
};

// Attaches a LoRA adapter to every targeted projection of `model` (on the model's device), each
// initialized from (seed, module name). Returns the adapted module names in model order. Afterwards
// model->parameters() are exactly the LoRA parameters (the base weights are buffers).
// InputError for invalid options (see validate_lora_options); TORCH_CHECK if a projection already has an adapter.
std::vector<std::string> inject_lora(CausalLM& model, const LoraOptions& options, uint64_t seed);

// Removes every adapter from `model`.
void remove_lora(CausalLM& model);

// The adapters of `model`, in model order.
std::vector<LoraAdapterImpl*> lora_adapters(CausalLM& model);

// keep_reference_copy() on every adapter of `model`.
void keep_reference_copies(CausalLM& model);

// The LoRA adapter of `linear`, or nullptr.
LoraAdapterImpl* lora_of(const FrozenLinear& linear);

// Every adapter's trained tensors with PEFT names, in model order:
// "base_model.model.<module>.lora_A.weight" [R, in], "base_model.model.<module>.lora_B.weight" [out, R] and,
// with DoRA, "base_model.model.<module>.lora_magnitude_vector" [out]. The tensors are the parameters themselves.
std::vector<std::pair<std::string, torch::Tensor>> lora_state(CausalLM& model);

// "base_model.model.<module>.lora_<A|B>.weight"
std::string peft_tensor_name(const std::string& module, char which);
// "base_model.model.<module>.lora_magnitude_vector" (PEFT's name for DoRA's m, without ".weight")
std::string peft_magnitude_name(const std::string& module);

}  // namespace qtune
