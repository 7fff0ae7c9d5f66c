// Llama-family decoder implementation; the math matches transformers' eager attention path
// (softmax in fp32, GQA by sharing each kv head across H/KV query heads).
#include "models/transformer.h"

#include <torch/version.h>

#include "models/layer_checkpoint.h"
#include "models/linear4bit.h"
#include "models/swiglu.h"

#include <cmath>

namespace qtune {
namespace {

FrozenLinear projection(ModelWeights& weights, const std::string& name, bool has_bias) {
  auto it = weights.projections.find(name);
  TORCH_CHECK(it != weights.projections.end(), "missing projection ", name);
  torch::Tensor bias = has_bias ? weights.take(name + ".bias") : torch::Tensor();
  FrozenLinear linear(it->second, bias);
  weights.projections.erase(it);
  return linear;
}

std::string layer_prefix(int64_t layer) { return "model.layers." + std::to_string(layer) + "."; }


// Rows that are one whole sequence each (segment 1 everywhere): causal attention needs no mask.
bool one_sequence_per_row(const SequenceLayout& layout) { return layout.segment_ids.eq(1).all().item<bool>(); }

// k/v [B, KV, Tk, Dh] repeated for each query head of their group: [B, H, Tk, Dh].
torch::Tensor per_query_head(const torch::Tensor& kv, int64_t group) {
  if (group == 1) return kv;
  const auto s = kv.sizes();
  return kv.unsqueeze(2).expand({s[0], s[1], group, s[2], s[3]}).reshape({s[0], s[1] * group, s[2], s[3]});
}
}  // namespace

bool fused_attention_available(const torch::Device& device) { return device.is_cuda() || device.is_cpu(); }

torch::Tensor attend(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, const torch::Tensor& visible, bool causal) {
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), Dh = q.size(3), KV = k.size(1), Tk = k.size(2), group = H / KV;
  TORCH_CHECK(causal || visible.defined(), "attend: a mask or causal");
  if (fused_attention_available(q.device())) {
    if (causal)
      return at::scaled_dot_product_attention(q, k, v, /*attn_mask=*/{}, 0.0, /*is_causal=*/true, /*scale=*/std::nullopt, /*enable_gqa=*/true);
    // With a mask: on CUDA the memory-efficient kernel, which wants as many kv heads as query heads; the CPU's
    // flash kernel shares them itself.
    if (q.is_cpu())
      return at::scaled_dot_product_attention(q, k, v, visible.squeeze(2), 0.0, false, std::nullopt, /*enable_gqa=*/true);
    return at::scaled_dot_product_attention(q, per_query_head(k, group), per_query_head(v, group), visible.squeeze(2), 0.0, false);
  }
  // Query heads h = kv * group + g share kv head `kv`: view q as [B, KV, group, T, Dh] and broadcast k/v.
  const torch::Tensor qg = q.reshape({B, KV, group, T, Dh});
  torch::Tensor scores = torch::matmul(qg, k.unsqueeze(2).transpose(-1, -2)) / std::sqrt(static_cast<double>(Dh));
  const torch::Tensor mask = visible.defined() ? visible : torch::ones({T, Tk}, q.options().dtype(torch::kBool)).tril(Tk - T).view({1, 1, 1, T, Tk});
  scores = scores.masked_fill(mask.logical_not(), -std::numeric_limits<float>::infinity());
  const auto softmax_dtype = q.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;  // fp32 at least, as transformers
  const torch::Tensor probs = torch::softmax(scores, -1, softmax_dtype).to(q.scalar_type());      // [B, KV, group, T, Tk]
  return torch::matmul(probs, v.unsqueeze(2)).reshape({B, H, T, Dh});
}

torch::Tensor ModelWeights::take(const std::string& name) {
  auto it = tensors.find(name);
  TORCH_CHECK(it != tensors.end(), "missing tensor ", name);
  torch::Tensor t = it->second;
  tensors.erase(it);
  t.set_requires_grad(false);
  return t;
}

AttentionImpl::AttentionImpl(const ModelConfig& config, int64_t layer, ModelWeights& weights)
    : layer_(layer),
      num_heads_(config.num_heads),
      num_kv_heads_(config.num_kv_heads),
      head_dim_(config.head_dim),
      windowed_(config.sliding_window_for_layer(layer).has_value()) {
  const std::string p = layer_prefix(layer) + "self_attn.";
  q_proj = register_module("q_proj", projection(weights, p + "q_proj", config.qkv_bias));
  k_proj = register_module("k_proj", projection(weights, p + "k_proj", config.qkv_bias));
  v_proj = register_module("v_proj", projection(weights, p + "v_proj", config.qkv_bias));
  o_proj = register_module("o_proj", projection(weights, p + "o_proj", config.o_bias));
  if (config.qk_norm) {
    q_norm = register_module("q_norm", RmsNorm(weights.take(p + "q_norm.weight"), config.rms_norm_eps));
    k_norm = register_module("k_norm", RmsNorm(weights.take(p + "k_norm.weight"), config.rms_norm_eps));
  }
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x, const AttentionContext& context, KVCache* cache) {
  const int64_t B = x.size(0), T = x.size(1);
  torch::Tensor q = q_proj->forward(x);  // [B, T, H·Dh]
  torch::Tensor k = k_proj->forward(x);  // [B, T, KV·Dh]
  torch::Tensor v = v_proj->forward(x).view({B, T, num_kv_heads_, head_dim_}).transpose(1, 2);  // [B, KV, T, Dh]
  if (!q_norm.is_empty()) {
    q = q_norm->forward(q.view({B, T, num_heads_, head_dim_}));
    k = k_norm->forward(k.view({B, T, num_kv_heads_, head_dim_}));
  }
  // Rotated in place: the projections' outputs are fresh tensors nothing else holds.
  q = apply_rope_(q, context.rope, head_dim_).view({B, T, num_heads_, head_dim_}).transpose(1, 2);     // [B, H, T, Dh]
  k = apply_rope_(k, context.rope, head_dim_).view({B, T, num_kv_heads_, head_dim_}).transpose(1, 2);  // [B, KV, T, Dh]
  if (cache != nullptr) {
    auto& ck = cache->keys[layer_];
    auto& cv = cache->values[layer_];
    k = ck.defined() ? torch::cat({ck, k}, 2) : k;
    v = cv.defined() ? torch::cat({cv, v}, 2) : v;
    ck = k;
    cv = v;
  }
  const torch::Tensor& visible = windowed_ ? context.visible_window : context.visible_full;  // [B, 1, 1, T, Tk]
  const torch::Tensor out = attend(q, k, v, visible, context.causal);                         // [B, H, T, Dh]
  return o_proj->forward(out.transpose(1, 2).reshape({B, T, num_heads_ * head_dim_}));
}

MlpImpl::MlpImpl(const ModelConfig& config, int64_t layer, ModelWeights& weights) {
  const std::string p = layer_prefix(layer) + "mlp.";
  gate_proj = register_module("gate_proj", projection(weights, p + "gate_proj", config.mlp_bias));
  up_proj = register_module("up_proj", projection(weights, p + "up_proj", config.mlp_bias));
  down_proj = register_module("down_proj", projection(weights, p + "down_proj", config.mlp_bias));
}

torch::Tensor MlpImpl::forward(const torch::Tensor& x) {
  return down_proj->forward(swiglu(gate_proj->forward(x), up_proj->forward(x)));
}

DecoderLayerImpl::DecoderLayerImpl(const ModelConfig& config, int64_t layer, ModelWeights& weights) {
  const std::string p = layer_prefix(layer);
  input_layernorm = register_module("input_layernorm", RmsNorm(weights.take(p + "input_layernorm.weight"), config.rms_norm_eps));
  self_attn = register_module("self_attn", Attention(config, layer, weights));
  post_attention_layernorm = register_module(
      "post_attention_layernorm", RmsNorm(weights.take(p + "post_attention_layernorm.weight"), config.rms_norm_eps));
  mlp = register_module("mlp", Mlp(config, layer, weights));
}

torch::Tensor DecoderLayerImpl::forward(const torch::Tensor& x, const AttentionContext& context, KVCache* cache) {
  torch::Tensor h = x + self_attn->forward(input_layernorm->forward(x), context, cache);
  return h + mlp->forward(post_attention_layernorm->forward(h));
}

CausalLMImpl::CausalLMImpl(ModelConfig config, ModelWeights weights) : config_(std::move(config)) {
  embed_tokens_ = weights.take("model.embed_tokens.weight");
  register_buffer("embed_tokens", embed_tokens_);
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < config_.num_layers; ++i) layers->push_back(DecoderLayer(config_, i, weights));
  norm = register_module("norm", RmsNorm(weights.take("model.norm.weight"), config_.rms_norm_eps));
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
  inv_freq_ = rope_inverse_frequencies(config_.head_dim, config_.rope_theta, config_.rope_scaling).to(embed_tokens_.device());
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
  context.rope = rope_tables(inv_freq_, layout.position_ids, dtype());
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
  torch::Tensor h = torch::embedding(embed_tokens_, input_ids);  // [B, T, D]
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
  auto& m = *mlp;
  return {{"self_attn.q_proj", a.q_proj}, {"self_attn.k_proj", a.k_proj}, {"self_attn.v_proj", a.v_proj}, {"self_attn.o_proj", a.o_proj},
          {"mlp.gate_proj", m.gate_proj},  {"mlp.up_proj", m.up_proj},    {"mlp.down_proj", m.down_proj}};
}

void CausalLMImpl::stream_layers_from_host() {
  TORCH_CHECK(!layer_stream_, "the layers are streamed already");
  std::vector<std::vector<QuantizedWeight*>> weights;
  for (std::size_t i = 0; i < layers->size(); ++i) {
    weights.emplace_back();
    for (auto& [name, linear] : layers[i]->as<DecoderLayer>()->projections()) {
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
