// The memory plan's arithmetic.
#include "trainer/memory_plan.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

#include "adapters/lora.h"
#include "core/error.h"
#include "models/architecture.h"

namespace qtune {
namespace {

constexpr int64_t kLossChunkBytes = int64_t{128} << 20;  // float32 logits of one chunk (models/chunked_log_probs)
constexpr int64_t kLoraBytesPerParameter = 20;          // float32 weight, gradient, gradient sum, two AdamW moments

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The shapes the plan needs, per decoder layer (all layers alike in this family).
struct LayerShapes {
  int64_t projection_numel = 0, largest_projection = 0, four_bit_bytes = 0;
  int64_t lora_parameters = 0, adapted = 0, adapted_inputs = 0;  // LoRA on this layer; Σ in over adapted projections
};

struct Settings {
  bool checkpointing, offload_base, activation_offloading;
  int64_t micro_batch, accumulation;
};

struct Sizes {
  LayerShapes layer;
  int64_t other_bytes = 0;  // embeddings, lm_head, norms, biases on the device
};

// What autograd keeps of one micro-batch of `rows` rows (a preference pair is two): per layer the norms'
// outputs, q/k/v, attention output, the MLP's gate, up and product; LoRA's low-rank inputs (and dropout's
// masked copies); eager attention's fp32 scores (Gemma 2's soft-capped attention is eager everywhere); the loss chunk; gradients in flight in the backward.
// Returns the device bytes and sets `inputs` to the checkpointed layer inputs (all layers).
int64_t activation_bytes(const ModelConfig& m, const TrainConfig& config, const DeviceFacts& facts, const Sizes& s, const Settings& on,
                         int64_t rows, int64_t& inputs) {
  const int64_t L = m.num_layers, D = m.hidden_size, F = m.intermediate_size, c = facts.compute_bytes, T = config.sequence_len, N = rows * T;
  const int64_t attention_width = m.num_heads * m.head_dim, kv_width = m.num_kv_heads * m.head_dim;
  const int64_t norm_outputs = m.sandwich_norms ? 6 * D : 4 * D;  // Gemma: norms after attention and MLP too
  int64_t per_layer = N * c * (norm_outputs + attention_width + 2 * kv_width + attention_width + 3 * F) + N * c * config.lora_r * s.layer.adapted;
  if (config.lora_dropout > 0) per_layer += N * (c + 1) * s.layer.adapted_inputs;
  // Eager attention keeps the scores and the fp32 probabilities; soft-capping (Gemma 2, always eager) the capped
  // scores and their tanh too.
  if (m.attn_logit_softcapping) per_layer += rows * m.num_heads * T * T * (4 + 3 * c);
  else if (!facts.fused_attention) per_layer += rows * m.num_heads * T * T * (4 + c);
  const int64_t backward_working = 2 * N * std::max(F, D) * c + 2 * s.layer.largest_projection * c;  // gradients in flight, dequantized weight
  const int64_t loss = std::min(N * m.vocab_size * 4, kLossChunkBytes) * 3 + 4 * N * D * c;
  inputs = L * N * D * c;
  if (!on.checkpointing) return loss + backward_working + L * per_layer;
  return loss + backward_working + per_layer + (on.activation_offloading ? 0 : inputs);
}

// Host→device bytes and the step time. Per micro-batch: a forward streams every layer but the two the last
// backward left in the slots, the backward every layer but the two the forward left (LayerStream); DPO's
// reference forward comes first and leaves the wrong two, so it adds L. Offloaded inputs go out and back.
// FLOPs per token: projections 2·P forward, 2·P backward (no weight gradients for the frozen base), one more
// forward when recomputing; causal attention 2·T·width forward, twice that backward; lm_head forward and backward.
void add_traffic_and_time(MemoryPlan& plan, const ModelConfig& m, const TrainConfig& config, const Sizes& s, const Settings& on, int64_t rows,
                          int64_t layer_bytes, int64_t inputs) {
  const DeviceFacts& facts = plan.facts;
  const int64_t L = m.num_layers, N = rows * config.sequence_len;
  const bool reference_pass = (config.rl == "dpo" || config.rl == "ipo") && !config.precompute_ref_log_probs;
  int64_t transfer = on.offload_base ? (2 * std::max<int64_t>(L - 2, 0) + (reference_pass ? L : 0)) * layer_bytes : 0;
  if (on.activation_offloading) transfer += 2 * inputs;
  plan.transfer_bytes_per_step = transfer * on.accumulation;
  const double P = static_cast<double>(L * s.layer.projection_numel);
  const double attention = 2.0 * static_cast<double>(L) * static_cast<double>(config.sequence_len) * static_cast<double>(m.num_heads * m.head_dim);
  const double forward = 2 * P + attention, backward = 2 * P + 2 * attention, head = 4.0 * static_cast<double>(m.vocab_size * m.hidden_size);
  const double passes = forward + backward + (on.checkpointing ? forward : 0) + (reference_pass ? forward : 0);
  const double flops = static_cast<double>(N * on.accumulation) * (passes + head);
  if (facts.matmul_flops_per_s > 0) plan.compute_seconds_per_step = flops / facts.matmul_flops_per_s;
  if (facts.host_to_device_bytes_per_s > 0) plan.transfer_seconds_per_step = static_cast<double>(plan.transfer_bytes_per_step) / facts.host_to_device_bytes_per_s;
}

void fill(MemoryPlan& plan, const ModelConfig& m, const TrainConfig& config, const DeviceFacts& facts, const Sizes& s, bool four_bit,
          Settings on) {
  on.checkpointing = on.checkpointing || on.offload_base || on.activation_offloading;  // both need the recompute
  const int64_t rows = on.micro_batch * (config.rl.empty() ? 1 : 2);  // preference rows come as chosen + rejected
  const int64_t L = m.num_layers, layer_bytes = four_bit ? s.layer.four_bit_bytes : s.layer.projection_numel * facts.compute_bytes;
  plan = MemoryPlan{};
  plan.facts = facts;
  plan.gradient_checkpointing = on.checkpointing;
  plan.offload_base = on.offload_base;
  plan.activation_offloading = on.activation_offloading;
  plan.micro_batch_size = on.micro_batch;
  plan.gradient_accumulation_steps = on.accumulation;
  plan.device.push_back({"embeddings, lm_head, norms and biases", s.other_bytes});
  if (on.offload_base) {
    plan.device.push_back({"2 slots for the streamed decoder layers (offload_base)", 2 * layer_bytes});
    plan.host.push_back({fmt::format("{} decoder layers, 4-bit{}", L, facts.cuda ? " (pinned)" : ""), L * layer_bytes});
    plan.layer_copy_bytes = layer_bytes;
  } else {
    plan.device.push_back({fmt::format("{} decoder layers{}", L, four_bit ? ", 4-bit" : ""), L * layer_bytes});
  }
  const int64_t lora = L * s.layer.lora_parameters;
  const std::string count = lora < 1000000 ? std::to_string(lora) : fmt::format("{:.1f}M", static_cast<double>(lora) / 1e6);
  plan.device.push_back({fmt::format("LoRA r={}: {} parameters with gradients and AdamW moments", config.lora_r, count),
                         lora * kLoraBytesPerParameter});
  int64_t inputs = 0;
  const int64_t activations = activation_bytes(m, config, facts, s, on, rows, inputs);
  if (on.checkpointing && on.activation_offloading) plan.host.push_back({"checkpointed layer inputs (activation_offloading)", inputs});
  plan.device.push_back({fmt::format("activations of a micro-batch of {} tokens{}", rows * config.sequence_len,
                                     on.checkpointing ? on.activation_offloading ? ", checkpointed, inputs on the host" : ", checkpointed" : ""),
                         activations});
  add_traffic_and_time(plan, m, config, s, on, rows, layer_bytes, inputs);
  plan.fits = facts.budget_bytes <= 0 || plan.device_bytes() <= facts.budget_bytes;
}

std::string bytes_text(int64_t bytes) { return format_byte_size(static_cast<double>(bytes)); }

}  // namespace

int64_t four_bit_weight_bytes(int64_t numel, int64_t blocksize, bool double_quant) {
  const int64_t blocks = ceil_div(numel, blocksize);
  const int64_t absmax = double_quant ? blocks + ceil_div(blocks, 256) * 4 + 256 * 4 : blocks * 4;
  return ceil_div(numel, 2) + absmax + 16 * 4;
}

int64_t MemoryPlan::device_bytes() const {
  int64_t total = 0;
  for (const auto& item : device) total += item.bytes;
  return total;
}

int64_t MemoryPlan::host_bytes() const {
  int64_t total = 0;
  for (const auto& item : host) total += item.bytes;
  return total;
}

namespace {

// The shapes of one decoder layer (all alike) and the rest of the model, with LoRA as the config injects it.
Sizes sizes_of(const ModelConfig& model, const std::optional<QuantizeOptions>& four_bit, const TrainConfig& config, const DeviceFacts& facts) {
  Sizes s;
  const std::vector<std::string> adapted = lora_target_modules(model, config.lora_options());  // "model.layers.0.self_attn.q_proj", ...
  const std::string first_layer = "model.layers.0.";
  for (const WeightSpec& spec : hf_weight_specs(model)) {
    const int64_t numel = spec.shape[0] * (spec.shape.size() > 1 ? spec.shape[1] : 1);
    if (!spec.decoder_projection) {
      s.other_bytes += numel * facts.compute_bytes;
      continue;
    }
    if (spec.name.compare(0, first_layer.size(), first_layer) != 0) continue;  // every layer is like layer 0
    LayerShapes& l = s.layer;
    l.projection_numel += numel;
    l.largest_projection = std::max(l.largest_projection, numel);
    if (four_bit) l.four_bit_bytes += four_bit_weight_bytes(numel, four_bit->blocksize, four_bit->double_quant);
    if (std::find(adapted.begin(), adapted.end(), spec.name.substr(0, spec.name.rfind('.'))) != adapted.end()) {
      l.lora_parameters += config.lora_r * (spec.shape[0] + spec.shape[1]);
      l.adapted += 1;
      l.adapted_inputs += spec.shape[1];
    }
  }
  return s;
}

}  // namespace

MemoryPlan plan_memory(const ModelConfig& model, std::optional<QuantizeOptions> four_bit, const TrainConfig& config, const DeviceFacts& facts) {
  const bool stream = config.offload_base == TriState::on;
  if (stream && !four_bit)
    input_error("{}: offload_base streams 4-bit layers from host memory; set load_in_4bit: true (or use a bnb-4bit checkpoint)", config.source);
  const Sizes s = sizes_of(model, four_bit, config, facts);
  Settings on{config.gradient_checkpointing || config.activation_offloading || stream, stream, config.activation_offloading,
              config.micro_batch_size, config.gradient_accumulation_steps};
  MemoryPlan plan;
  fill(plan, model, config, facts, s, four_bit.has_value(), on);
  // Under a budget, switch on what fits the run, cheapest first; offload_base only where the config leaves
  // it to the plan (auto).
  auto try_on = [&](bool& setting, const char* name, bool allowed) {
    if (plan.fits || setting || !allowed) return;
    setting = true;
    std::vector<std::string> turned = plan.turned_on;
    fill(plan, model, config, facts, s, four_bit.has_value(), on);
    turned.push_back(name);
    plan.turned_on = turned;
  };
  try_on(on.checkpointing, "gradient_checkpointing", true);
  try_on(on.offload_base, "offload_base", config.offload_base == TriState::automatic && four_bit.has_value());
  try_on(on.activation_offloading, "activation_offloading", true);
  // Still over: the largest divisor of the micro-batch that fits, with as many more accumulation steps.
  for (int64_t rows = on.micro_batch - 1; !plan.fits && rows >= 1; --rows) {
    if (config.micro_batch_size % rows != 0) continue;
    std::vector<std::string> turned = plan.turned_on;
    on.micro_batch = rows;
    on.accumulation = config.gradient_accumulation_steps * (config.micro_batch_size / rows);
    fill(plan, model, config, facts, s, four_bit.has_value(), on);
    if (plan.fits || rows == 1)
      turned.push_back(fmt::format("micro_batch_size {} -> {} with gradient_accumulation_steps {} -> {}", config.micro_batch_size, rows,
                                   config.gradient_accumulation_steps, on.accumulation));
    plan.turned_on = turned;
  }
  return plan;
}

TrainConfig planned_config(TrainConfig config, const MemoryPlan& plan) {
  config.gradient_checkpointing = plan.gradient_checkpointing;
  config.activation_offloading = plan.activation_offloading;
  config.offload_base = plan.offload_base ? TriState::on : TriState::off;
  config.micro_batch_size = plan.micro_batch_size;
  config.gradient_accumulation_steps = plan.gradient_accumulation_steps;
  return config;
}

std::string MemoryPlan::describe() const {
  std::string out = fmt::format("memory plan on {} (estimate{})\n", facts.name,
                                facts.budget_bytes > 0 ? fmt::format("; budget {} from {}", bytes_text(facts.budget_bytes), facts.budget_source) : "");
  for (const auto& item : device) out += fmt::format("  device {:>11}  {}\n", bytes_text(item.bytes), item.what);
  out += fmt::format("  device {:>11}  total{}\n", bytes_text(device_bytes()), fits ? "" : " — over the budget: lower micro_batch_size or sequence_len");
  for (const auto& item : host) out += fmt::format("  host   {:>11}  {}\n", bytes_text(item.bytes), item.what);
  if (facts.host_available_bytes > 0 && host_bytes() > facts.host_available_bytes)
    out += fmt::format("  host memory: the plan keeps {} there but only {} is available: the run would be killed; free memory or "
                       "lower what is offloaded\n",
                       bytes_text(host_bytes()), bytes_text(facts.host_available_bytes));
  if (!turned_on.empty()) out += fmt::format("  turned on to fit: {}\n", fmt::join(turned_on, ", "));
  if (transfer_bytes_per_step > 0)
    out += fmt::format("  host→device {:.1f} GB per step{}\n", static_cast<double>(transfer_bytes_per_step) / 1e9,
                       layer_copy_bytes > 0 ? fmt::format(" ({:.0f} MB per layer copy)", static_cast<double>(layer_copy_bytes) / 1e6) : "");
  if (compute_seconds_per_step > 0) {
    std::string line = fmt::format("  step time ≈ {:.2f} s of compute at {:.1f} TFLOP/s (measured matmul)", compute_seconds_per_step,
                                   facts.matmul_flops_per_s / 1e12);
    if (transfer_seconds_per_step > 0)
      line += fmt::format("; copies {:.2f} s at {:.1f} GB/s (measured){}", transfer_seconds_per_step, facts.host_to_device_bytes_per_s / 1e9,
                          transfer_seconds_per_step > compute_seconds_per_step
                              ? ": copy-bound, more tokens per micro-batch (micro_batch_size, sequence_len) would hide them"
                              : ", hidden behind compute");
    out += line + "\n";
  }
  return out;
}

}  // namespace qtune
