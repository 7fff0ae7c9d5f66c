// The memory plan's arithmetic.
#include "trainer/memory_plan.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <unordered_set>

#include "adapters/lora.h"
#include "core/error.h"
#include "models/architecture.h"

namespace qtune {
namespace {

constexpr int64_t kLossChunkBytes = int64_t{128} << 20;  // float32 logits of one chunk (models/chunked_log_probs)
constexpr int64_t kLoraBytesPerParameter = 20;          // float32 weight, gradient, gradient sum, two AdamW moments

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The shapes the plan needs of one decoder layer (an MoE model's dense and sparse layers differ).
struct LayerShapes {
  int64_t projection_numel = 0, largest_projection = 0, four_bit_bytes = 0;  // every expert's projections too
  int64_t active_numel = 0;    // the projection weights one token multiplies: k of the E experts (FLOPs)
  int64_t lora_parameters = 0;
  // LoRA's adapted projections and Σ of their inputs, each weighted by the share of the tokens it sees (an expert's: k/E).
  double adapted = 0, adapted_inputs = 0;
};

struct Settings {
  bool checkpointing, offload_base, activation_offloading;
  int64_t micro_batch, accumulation;
};

struct Sizes {
  std::vector<LayerShapes> layers;
  int64_t other_bytes = 0;  // embeddings, lm_head, norms, biases (and MoE routers) on the device

  int64_t layer_bytes(const LayerShapes& l, bool four_bit, int64_t compute_bytes) const {
    return four_bit ? l.four_bit_bytes : l.projection_numel * compute_bytes;
  }
  int64_t sum(int64_t LayerShapes::*field) const {
    int64_t total = 0;
    for (const auto& l : layers) total += l.*field;
    return total;
  }
  int64_t largest_projection() const {
    int64_t largest = 0;
    for (const auto& l : layers) largest = std::max(largest, l.largest_projection);
    return largest;
  }
};

// A dense MLP keeps gate, up and their product per token. A sparse one keeps the same for the N·k token-rows its
// experts run (moe_intermediate_size wide), the gathered rows and the experts' outputs [N·k, D] (the routing weights
// multiply them), and the router's [N, E] logits and their float32 softmax.
int64_t mlp_activation_bytes(const ModelConfig& m, int64_t layer, int64_t N, int64_t c) {
  if (!m.is_sparse_layer(layer)) return N * c * 3 * m.intermediate_size;
  const int64_t rows = N * m.num_experts_per_tok;
  return rows * c * (3 * m.moe_intermediate_size + 2 * m.hidden_size) + N * m.num_experts * (c + 4);
}

// The widest gradient of an MLP in the backward: [N, F] of a dense layer, [N·k, Fe] of a sparse one (or [.., D]).
int64_t widest_mlp_gradient(const ModelConfig& m, int64_t N) {
  int64_t widest = 0;
  for (int64_t i = 0; i < m.num_layers; ++i)
    widest = std::max(widest, m.is_sparse_layer(i) ? N * m.num_experts_per_tok * std::max(m.moe_intermediate_size, m.hidden_size)
                                                   : N * std::max(m.intermediate_size, m.hidden_size));
  return widest;
}

// What autograd keeps of decoder layer `i` for `rows` rows (see activation_bytes).
int64_t layer_activation_bytes(const ModelConfig& m, int64_t i, const TrainConfig& config, const DeviceFacts& facts, const LayerShapes& l, int64_t rows) {
  const int64_t D = m.hidden_size, c = facts.compute_bytes, T = config.sequence_len, N = rows * T;
  const int64_t attention_width = m.num_heads * m.head_dim, kv_width = m.num_kv_heads * m.head_dim;
  const int64_t norm_outputs = m.sandwich_norms ? 6 * D : 4 * D;  // Gemma: norms after attention and MLP too
  int64_t bytes = N * c * (norm_outputs + attention_width + 2 * kv_width + attention_width) + mlp_activation_bytes(m, i, N, c);
  bytes += static_cast<int64_t>(static_cast<double>(N * c * config.lora_r) * l.adapted);
  if (config.lora_dropout > 0) bytes += static_cast<int64_t>(static_cast<double>(N * (c + 1)) * l.adapted_inputs);
  // Eager attention keeps the scores and the fp32 probabilities; soft-capping (Gemma 2, always eager) the capped
  // scores and their tanh too.
  if (m.attn_logit_softcapping) bytes += rows * m.num_heads * T * T * (4 + 3 * c);
  else if (!facts.fused_attention) bytes += rows * m.num_heads * T * T * (4 + c);
  return bytes;
}

// What autograd keeps of one micro-batch of `rows` rows (a preference pair is two): per layer the norms'
// outputs, q/k/v, attention output, the MLP's (mlp_activation_bytes); LoRA's low-rank inputs (and dropout's
// masked copies); eager attention's fp32 scores (Gemma 2's soft-capped attention is eager everywhere); the loss chunk; gradients in flight in the backward.
// Returns the device bytes and sets `inputs` to the checkpointed layer inputs (all layers).
int64_t activation_bytes(const ModelConfig& m, const TrainConfig& config, const DeviceFacts& facts, const Sizes& s, const Settings& on,
                         int64_t rows, int64_t& inputs) {
  const int64_t L = m.num_layers, D = m.hidden_size, c = facts.compute_bytes, N = rows * config.sequence_len;
  int64_t all_layers = 0, largest_layer = 0;  // checkpointed, one layer's activations live at a time
  for (int64_t i = 0; i < L; ++i) {
    const int64_t bytes = layer_activation_bytes(m, i, config, facts, s.layers[static_cast<std::size_t>(i)], rows);
    all_layers += bytes;
    largest_layer = std::max(largest_layer, bytes);
  }
  const int64_t backward_working = 2 * widest_mlp_gradient(m, N) * c + 2 * s.largest_projection() * c;  // gradients in flight, dequantized weight
  const int64_t loss = std::min(N * m.vocab_size * 4, kLossChunkBytes) * 3 + 4 * N * D * c;
  inputs = L * N * D * c;
  if (!on.checkpointing) return loss + backward_working + all_layers;
  return loss + backward_working + largest_layer + (on.activation_offloading ? 0 : inputs);
}

// Host→device bytes and the step time. Per micro-batch: a forward streams every layer but the two the last
// backward left in the slots, the backward every layer but the two the forward left (LayerStream); DPO's
// reference forward comes first and leaves the wrong two, so it adds L (layer_bytes: the mean layer's). Offloaded
// inputs go out and back. FLOPs per token: projections 2·P forward, 2·P backward (no weight gradients for the frozen
// base; P counts the k experts a token runs, not all E), one more forward when recomputing; causal attention
// 2·T·width forward, twice that backward; lm_head forward and backward.
void add_traffic_and_time(MemoryPlan& plan, const ModelConfig& m, const TrainConfig& config, const Sizes& s, const Settings& on, int64_t rows,
                          int64_t layer_bytes, int64_t inputs) {
  const DeviceFacts& facts = plan.facts;
  const int64_t L = m.num_layers, N = rows * config.sequence_len;
  const bool reference_pass = (config.rl == "dpo" || config.rl == "ipo") && !config.precompute_ref_log_probs;
  int64_t transfer = on.offload_base ? (2 * std::max<int64_t>(L - 2, 0) + (reference_pass ? L : 0)) * layer_bytes : 0;
  if (on.activation_offloading) transfer += 2 * inputs;
  plan.transfer_bytes_per_step = transfer * on.accumulation;
  const double P = static_cast<double>(s.sum(&LayerShapes::active_numel));
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
  const int64_t L = m.num_layers;
  int64_t all_layer_bytes = 0, largest_layer_bytes = 0;
  for (const auto& l : s.layers) {
    all_layer_bytes += s.layer_bytes(l, four_bit, facts.compute_bytes);
    largest_layer_bytes = std::max(largest_layer_bytes, s.layer_bytes(l, four_bit, facts.compute_bytes));
  }
  plan = MemoryPlan{};
  plan.facts = facts;
  plan.gradient_checkpointing = on.checkpointing;
  plan.offload_base = on.offload_base;
  plan.activation_offloading = on.activation_offloading;
  plan.micro_batch_size = on.micro_batch;
  plan.gradient_accumulation_steps = on.accumulation;
  plan.device.push_back({m.num_experts > 0 ? "embeddings, lm_head, norms, biases and routers" : "embeddings, lm_head, norms and biases", s.other_bytes});
  if (on.offload_base) {  // the slots take the largest layer
    plan.device.push_back({"2 slots for the streamed decoder layers (offload_base)", 2 * largest_layer_bytes});
    plan.host.push_back({fmt::format("{} decoder layers, 4-bit{}", L, facts.cuda ? " (pinned)" : ""), all_layer_bytes});
    plan.layer_copy_bytes = largest_layer_bytes;
  } else {
    plan.device.push_back({fmt::format("{} decoder layers{}", L, four_bit ? ", 4-bit" : ""), all_layer_bytes});
  }
  const int64_t lora = s.sum(&LayerShapes::lora_parameters);
  const std::string count = lora < 1000000 ? std::to_string(lora) : fmt::format("{:.1f}M", static_cast<double>(lora) / 1e6);
  plan.device.push_back({fmt::format("LoRA r={}: {} parameters with gradients and AdamW moments", config.lora_r, count),
                         lora * kLoraBytesPerParameter});
  int64_t inputs = 0;
  const int64_t activations = activation_bytes(m, config, facts, s, on, rows, inputs);
  if (on.checkpointing && on.activation_offloading) plan.host.push_back({"checkpointed layer inputs (activation_offloading)", inputs});
  plan.device.push_back({fmt::format("activations of a micro-batch of {} tokens{}", rows * config.sequence_len,
                                     on.checkpointing ? on.activation_offloading ? ", checkpointed, inputs on the host" : ", checkpointed" : ""),
                         activations});
  add_traffic_and_time(plan, m, config, s, on, rows, all_layer_bytes / L, inputs);
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

// The decoder layer of a tensor ("model.layers.12.…" -> 12), -1 for the others.
int64_t layer_of(const std::string& name) {
  static const std::string prefix = "model.layers.";
  if (name.compare(0, prefix.size(), prefix) != 0) return -1;
  return std::stoll(name.substr(prefix.size()));
}

// The shapes of each decoder layer and of the rest of the model, with LoRA as the config injects it. The routers are
// dense and stay on the device with the embeddings; an expert sees k/E of the tokens.
Sizes sizes_of(const ModelConfig& model, const std::optional<QuantizeOptions>& four_bit, const TrainConfig& config, const DeviceFacts& facts) {
  Sizes s;
  s.layers.resize(static_cast<std::size_t>(model.num_layers));
  const std::vector<std::string> targets = lora_target_modules(model, config.lora_options());  // "model.layers.0.self_attn.q_proj", ...
  const std::unordered_set<std::string> adapted(targets.begin(), targets.end());
  const double expert_share = model.num_experts > 0 ? static_cast<double>(model.num_experts_per_tok) / static_cast<double>(model.num_experts) : 1.0;
  for (const WeightSpec& spec : hf_weight_specs(model)) {
    const int64_t numel = spec.shape[0] * (spec.shape.size() > 1 ? spec.shape[1] : 1);
    if (!spec.decoder_projection) s.other_bytes += numel * facts.compute_bytes;
    if (!spec.decoder_projection && !spec.router) continue;
    LayerShapes& l = s.layers[static_cast<std::size_t>(layer_of(spec.name))];
    const bool expert = spec.name.find(".experts.") != std::string::npos;
    if (spec.decoder_projection) {
      l.projection_numel += numel;
      l.largest_projection = std::max(l.largest_projection, numel);
      if (four_bit) l.four_bit_bytes += four_bit_weight_bytes(numel, four_bit->blocksize, four_bit->double_quant);
    }
    l.active_numel += expert ? 0 : numel;  // the experts' share is added below
    if (adapted.count(spec.name.substr(0, spec.name.rfind('.')))) {
      const double share = expert ? expert_share : 1.0;
      l.lora_parameters += config.lora_r * (spec.shape[0] + spec.shape[1]);
      l.adapted += share;
      l.adapted_inputs += share * static_cast<double>(spec.shape[1]);
    }
  }
  // A token runs k experts of each sparse layer, all alike: k gate, up and down projections of moe_intermediate_size.
  const int64_t active_experts = model.num_experts_per_tok * 3 * model.hidden_size * model.moe_intermediate_size;
  for (int64_t i = 0; i < model.num_layers; ++i)
    if (model.is_sparse_layer(i)) s.layers[static_cast<std::size_t>(i)].active_numel += active_experts;
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
