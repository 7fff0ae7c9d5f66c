// The decoder layers, the MLP and the causal LM around them (attention is in attention.cpp).
#include "models/transformer.h"

#include "models/layer_checkpoint.h"
#include "models/linear4bit.h"
#include "models/swiglu.h"
#include "models/transformer_parts.h"

#include <cmath>

namespace qtune {

FrozenLinear take_projection(ModelWeights& weights, const std::string& name, bool has_bias) {
  auto it = weights.projections.find(name);
  TORCH_CHECK(it != weights.projections.end(), "missing projection ", name);
  torch::Tensor bias = has_bias ? weights.take(name + ".bias") : torch::Tensor();
  FrozenLinear linear(it->second, bias);
  weights.projections.erase(it);
  return linear;
}

std::string layer_prefix(int64_t layer) { return "model.layers." + std::to_string(layer) + "."; }

namespace {

// Rows that are one whole sequence each (segment 1 everywhere): causal attention needs no mask.
bool one_sequence_per_row(const SequenceLayout& layout) { return layout.segment_ids.eq(1).all().item<bool>(); }

}  // namespace

torch::Tensor ModelWeights::take(const std::string& name) {
  auto it = tensors.find(name);
  TORCH_CHECK(it != tensors.end(), "missing tensor ", name);
  torch::Tensor t = it->second;
  tensors.erase(it);
  t.set_requires_grad(false);
  return t;
}

MlpImpl::MlpImpl(const ModelConfig& config, int64_t layer, ModelWeights& weights) : gelu_(config.hidden_act == "gelu_pytorch_tanh") {
  const std::string p = layer_prefix(layer) + "mlp.";
  if (config.fused_projections) {
    gate_up_proj = register_module("gate_up_proj", take_projection(weights, p + "gate_up_proj", config.mlp_bias));
    names_ = {"gate_up_proj", "down_proj"};
  } else {
    gate_proj = register_module("gate_proj", take_projection(weights, p + "gate_proj", config.mlp_bias));
    up_proj = register_module("up_proj", take_projection(weights, p + "up_proj", config.mlp_bias));
    names_ = {"gate_proj", "up_proj", "down_proj"};
  }
  down_proj = register_module("down_proj", take_projection(weights, p + "down_proj", config.mlp_bias));
}

MlpImpl::MlpImpl(const ModelConfig& config, const std::string& prefix, const std::vector<std::string>& names, ModelWeights& weights)
    : gelu_(config.hidden_act == "gelu_pytorch_tanh"), names_(names) {
  gate_proj = register_module(names[0], take_projection(weights, prefix + names[0], false));
  up_proj = register_module(names[1], take_projection(weights, prefix + names[1], false));
  down_proj = register_module(names[2], take_projection(weights, prefix + names[2], false));
}

std::vector<std::pair<std::string, FrozenLinear>> MlpImpl::projections() {
  if (!gate_up_proj.is_empty()) return {{names_[0], gate_up_proj}, {names_[1], down_proj}};
  return {{names_[0], gate_proj}, {names_[1], up_proj}, {names_[2], down_proj}};
}

torch::Tensor MlpImpl::forward(const torch::Tensor& x) {
  torch::Tensor gate, up;
  if (gate_up_proj.is_empty()) {
    gate = gate_proj->forward(x), up = up_proj->forward(x);
  } else {
    const torch::Tensor both = gate_up_proj->forward(x);  // [B, T, 2F]: gate rows first
    const int64_t F = both.size(-1) / 2;
    gate = both.slice(-1, 0, F), up = both.slice(-1, F);
  }
  return down_proj->forward(gelu_ ? geglu(gate, up) : swiglu(gate, up));
}

namespace {
RmsNorm layer_norm(ModelWeights& weights, const ModelConfig& config, const std::string& name) {
  return RmsNorm(weights.take(name + ".weight"), config.rms_norm_eps, config.norm_unit_offset);
}
}  // namespace

DecoderLayerImpl::DecoderLayerImpl(const ModelConfig& config, int64_t layer, ModelWeights& weights) {
  const std::string p = layer_prefix(layer);
  input_layernorm = register_module("input_layernorm", layer_norm(weights, config, p + "input_layernorm"));
  self_attn = register_module("self_attn", Attention(config, layer, weights));
  post_attention_layernorm = register_module("post_attention_layernorm", layer_norm(weights, config, p + "post_attention_layernorm"));
  if (config.sandwich_norms) {
    pre_feedforward_layernorm = register_module("pre_feedforward_layernorm", layer_norm(weights, config, p + "pre_feedforward_layernorm"));
    post_feedforward_layernorm = register_module("post_feedforward_layernorm", layer_norm(weights, config, p + "post_feedforward_layernorm"));
  }
  if (config.is_sparse_layer(layer)) {
    moe_name = config.moe_block_name();
    moe = register_module(moe_name, MoeBlock(config, layer, weights));
  } else {
    mlp = register_module("mlp", Mlp(config, layer, weights));
  }
}

torch::Tensor DecoderLayerImpl::feed_forward(const torch::Tensor& x) { return moe.is_empty() ? mlp->forward(x) : moe->forward(x); }

torch::Tensor DecoderLayerImpl::forward(const torch::Tensor& x, const AttentionContext& context, KVCache* cache) {
  const torch::Tensor attended = self_attn->forward(input_layernorm->forward(x), context, cache);
  if (pre_feedforward_layernorm.is_empty()) {  // Llama: norm before each block only
    const torch::Tensor h = x + attended;
    return h + feed_forward(post_attention_layernorm->forward(h));
  }
  const torch::Tensor h = x + post_attention_layernorm->forward(attended);  // Gemma: norms after each block too
  return h + post_feedforward_layernorm->forward(feed_forward(pre_feedforward_layernorm->forward(h)));
}

CausalLMImpl::CausalLMImpl(ModelConfig config, ModelWeights weights) : config_(std::move(config)) {
  embed_tokens_ = weights.take("model.embed_tokens.weight");
  register_buffer("embed_tokens", embed_tokens_);
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < config_.num_layers; ++i) layers->push_back(DecoderLayer(config_, i, weights));
  norm = register_module("norm", layer_norm(weights, config_, "model.norm"));
  std::shared_ptr<FrozenWeight> head;
  if (config_.tie_word_embeddings) {
    head = std::make_shared<DenseWeight>(embed_tokens_);
  } else {
    auto it = weights.projections.find("lm_head");
    TORCH_CHECK(it != weights.projections.end(), "missing lm_head");
    head = it->second;
    weights.projections.erase(it);
  }
  lm_head = register_module("lm_head", FrozenLinear(head, torch::Tensor()));
  TORCH_CHECK(weights.projections.empty() && weights.tensors.empty(), "unused model weights were passed in");
  if (config_.num_experts > 0) {
    router_balance_ = std::make_shared<RouterBalance>();
    for (std::size_t i = 0; i < layers->size(); ++i)
      if (auto& moe = layers[i]->as<DecoderLayer>()->moe; !moe.is_empty()) moe->balance = router_balance_;
  }
  const torch::Device device = embed_tokens_.device();
  const int64_t rotary = config_.rotary_dim();
  inv_freq_ = rope_inverse_frequencies(rotary, config_.rope_theta, config_.rope_scaling).to(device);
  if (config_.rope_scaling.type == "longrope")
    inv_freq_long_ = rope_inverse_frequencies(rotary, config_.rope_theta, config_.rope_scaling, /*long_factors=*/true).to(device);
  if (config_.local_rope_theta) inv_freq_local_ = rope_inverse_frequencies(rotary, *config_.local_rope_theta, RopeScaling{}).to(device);
}

// longrope turns every position of a forward with the long factors once any position passes the original
// context, as transformers does (per call, so a cache keeps keys turned either way).
RopeTables CausalLMImpl::rope_for(const torch::Tensor& position_ids, bool local) const {
  if (local) return rope_tables(inv_freq_local_, position_ids, dtype());
  const RopeScaling& scaling = config_.rope_scaling;
  if (scaling.type != "longrope") return rope_tables(inv_freq_, position_ids, dtype());
  const bool long_context = position_ids.max().item<int64_t>() + 1 > scaling.original_max_position_embeddings;
  return rope_tables(long_context ? inv_freq_long_ : inv_freq_, position_ids, dtype(), scaling.attention_factor);
}

torch::Tensor CausalLMImpl::logits(const torch::Tensor& hidden) {
  const torch::Tensor z = lm_head->forward(hidden);
  if (!config_.final_logit_softcapping) return z;
  const double cap = *config_.final_logit_softcapping;
  return torch::tanh(z / cap) * cap;
}

torch::Tensor CausalLMImpl::hidden_states(const torch::Tensor& input_ids, const SequenceLayout& layout, KVCache* cache) {
  TORCH_CHECK(input_ids.dim() == 2, "input_ids must be [B, T], got ", input_ids.sizes());
  TORCH_CHECK(layout.segment_ids.sizes() == input_ids.sizes() && layout.position_ids.sizes() == input_ids.sizes(),
              "segment_ids and position_ids must have the shape of input_ids");
  const int64_t offset = cache != nullptr ? cache->length() : 0;
  torch::Tensor key_segments = layout.segment_ids;
  if (cache != nullptr) {
    if (cache->keys.empty()) cache->keys.resize(config_.num_layers), cache->values.resize(config_.num_layers);
    key_segments = offset > 0 ? torch::cat({cache->segments, layout.segment_ids}, 1) : layout.segment_ids;
    cache->segments = key_segments;
  }
  AttentionContext context;
  context.rope = rope_for(layout.position_ids, false);
  if (inv_freq_local_.defined()) context.rope_local = rope_for(layout.position_ids, true);
  const int64_t T = input_ids.size(1);
  const bool window_shorter = config_.sliding_window && *config_.sliding_window < T;
  context.causal = offset == 0 && !window_shorter && one_sequence_per_row(layout);
  if (!context.causal) {
    context.visible_full = attention_visibility(layout.segment_ids, key_segments, offset, std::nullopt);
    if (config_.sliding_window)
      context.visible_window = attention_visibility(layout.segment_ids, key_segments, offset, config_.sliding_window);
  }

  const bool checkpoint = gradient_checkpointing_ && cache == nullptr && torch::GradMode::is_enabled();
  LayerStream* stream = layer_stream_.get();
  // Without checkpointing the graph would keep views of a slot that later layers overwrite.
  TORCH_CHECK(stream == nullptr || checkpoint || !torch::GradMode::is_enabled(), "streamed layers (offload_base) need gradient checkpointing to train");
  if (stream != nullptr) stream->prefetch(0);
  ActivationOffload* activations = checkpoint ? activation_offload_.get() : nullptr;
  if (activations != nullptr) activations->begin_forward();
  const bool balance = router_balance_ && router_balance_->pending();
  if (balance) router_balance_->begin_forward(layout.segment_ids.reshape(-1).gt(0));
  torch::Tensor h = torch::embedding(embed_tokens_, input_ids);  // [B, T, D]
  if (config_.scale_embeddings)  // √D rounded to the compute dtype first, as transformers does
    h = h * torch::scalar_tensor(std::sqrt(static_cast<double>(config_.hidden_size)), torch::kFloat).to(dtype()).item();
  for (std::size_t i = 0; i < layers->size(); ++i) {
    DecoderLayerImpl* decoder = layers[i]->as<DecoderLayer>();
    const auto index = static_cast<int64_t>(i);
    if (stream != nullptr) {
      stream->begin(index);
      stream->prefetch(index + 1);  // copied while this layer computes
    }
    h = checkpoint ? checkpointed_layer(*decoder, h, context, {activations, stream, index}) : decoder->forward(h, context, cache);
    if (stream != nullptr) stream->end(index);
  }
  if (balance) router_balance_->end_forward();
  return norm->forward(h);
}

torch::Tensor CausalLMImpl::forward(const torch::Tensor& input_ids, const std::optional<SequenceLayout>& layout,
                                    KVCache* cache) {
  SequenceLayout l = layout ? *layout : SequenceLayout::dense(input_ids.size(0), input_ids.size(1), input_ids.device());
  if (!layout && cache != nullptr && cache->length() > 0) l.position_ids = l.position_ids + cache->length();
  return logits(hidden_states(input_ids, l, cache));
}

std::vector<std::pair<std::string, FrozenLinear>> DecoderLayerImpl::projections() {
  auto& a = *self_attn;
  std::vector<std::pair<std::string, FrozenLinear>> present;  // the ones this family has
  for (auto& entry : std::vector<std::pair<std::string, FrozenLinear>>{
           {"self_attn.q_proj", a.q_proj}, {"self_attn.k_proj", a.k_proj}, {"self_attn.v_proj", a.v_proj}, {"self_attn.qkv_proj", a.qkv_proj}, {"self_attn.o_proj", a.o_proj}})
    if (!entry.second.is_empty()) present.push_back(entry);
  const std::string block = moe.is_empty() ? "mlp." : moe_name + ".";
  for (auto& [name, linear] : moe.is_empty() ? mlp->projections() : moe->projections()) present.emplace_back(block + name, linear);
  return present;
}

void CausalLMImpl::stream_layers_from_host() {
  TORCH_CHECK(!layer_stream_, "the layers are streamed already");
  std::vector<std::vector<QuantizedWeight*>> weights;
  for (std::size_t i = 0; i < layers->size(); ++i) {
    weights.emplace_back();
    DecoderLayerImpl* decoder = layers[i]->as<DecoderLayer>();
    for (auto& [name, linear] : decoder->projections()) {
      if (!decoder->moe.is_empty() && linear.ptr() == decoder->moe->gate.ptr()) continue;  // the router stays resident
      auto* q = dynamic_cast<QuantizedWeight*>(linear->weight_ptr().get());
      TORCH_CHECK(q != nullptr, "offload_base streams 4-bit layers, but layer ", i, " ", name, " is ", linear->weight().format());
      weights.back().push_back(q);
    }
  }
  layer_stream_ = std::make_shared<LayerStream>(weights, device());
}

std::vector<std::pair<std::string, FrozenLinear>> CausalLMImpl::projections() {
  std::vector<std::pair<std::string, FrozenLinear>> out;
  for (std::size_t i = 0; i < layers->size(); ++i)
    for (auto& [name, linear] : layers[i]->as<DecoderLayer>()->projections()) out.emplace_back(layer_prefix(static_cast<int64_t>(i)) + name, linear);
  return out;
}

}  // namespace qtune
