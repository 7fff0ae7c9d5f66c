// Attention: the projections, q/k norms, RoPE, the KV cache and attend(). The math matches transformers' eager
// attention (softmax in fp32, GQA by sharing each kv head across H/KV query heads, Gemma's capping before the mask).
#include "models/transformer.h"

#include <cmath>

#include "models/transformer_parts.h"

namespace qtune {
namespace {

// k/v [B, KV, Tk, Dh] repeated for each query head of their group: [B, H, Tk, Dh].
torch::Tensor per_query_head(const torch::Tensor& kv, int64_t group) {
  if (group == 1) return kv;
  const auto s = kv.sizes();
  return kv.unsqueeze(2).expand({s[0], s[1], group, s[2], s[3]}).reshape({s[0], s[1] * group, s[2], s[3]});
}

// The eager path: scores in q's dtype, capped, masked, softmax in float32 at least.
torch::Tensor attend_eager(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, const torch::Tensor& visible,
                           const ScoreOptions& options) {
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), Dh = q.size(3), KV = k.size(1), Tk = k.size(2), group = H / KV;
  // Query heads h = kv * group + g share kv head `kv`: view q as [B, KV, group, T, Dh] and broadcast k/v.
  const torch::Tensor qg = q.reshape({B, KV, group, T, Dh});
  const double scale = options.scale.value_or(1.0 / std::sqrt(static_cast<double>(Dh)));
  torch::Tensor scores = torch::matmul(qg, k.unsqueeze(2).transpose(-1, -2)) * scale;
  if (options.softcap) scores = torch::tanh(scores / *options.softcap) * *options.softcap;
  const torch::Tensor mask = visible.defined() ? visible : torch::ones({T, Tk}, q.options().dtype(torch::kBool)).tril(Tk - T).view({1, 1, 1, T, Tk});
  scores = scores.masked_fill(mask.logical_not(), -std::numeric_limits<float>::infinity());
  const auto softmax_dtype = q.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;  // fp32 at least, as transformers
  const torch::Tensor probs = torch::softmax(scores, -1, softmax_dtype).to(q.scalar_type());      // [B, KV, group, T, Tk]
  return torch::matmul(probs, v.unsqueeze(2)).reshape({B, H, T, Dh});
}

}  // namespace

bool fused_attention_available(const torch::Device& device) { return device.is_cuda() || device.is_cpu(); }

torch::Tensor attend(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, const torch::Tensor& visible, bool causal,
                     const ScoreOptions& options) {
  TORCH_CHECK(causal || visible.defined(), "attend: a mask or causal");
  if (!fused_attention_available(q.device()) || options.softcap) return attend_eager(q, k, v, visible, options);
  if (causal) return at::scaled_dot_product_attention(q, k, v, /*attn_mask=*/{}, 0.0, /*is_causal=*/true, options.scale, /*enable_gqa=*/true);
  // With a mask: on CUDA the memory-efficient kernel, which wants as many kv heads as query heads; the CPU's
  // flash kernel shares them itself.
  if (q.is_cpu()) return at::scaled_dot_product_attention(q, k, v, visible.squeeze(2), 0.0, false, options.scale, /*enable_gqa=*/true);
  const int64_t group = q.size(1) / k.size(1);
  return at::scaled_dot_product_attention(q, per_query_head(k, group), per_query_head(v, group), visible.squeeze(2), 0.0, false, options.scale);
}

AttentionImpl::AttentionImpl(const ModelConfig& config, int64_t layer, ModelWeights& weights)
    : layer_(layer),
      num_heads_(config.num_heads),
      num_kv_heads_(config.num_kv_heads),
      head_dim_(config.head_dim),
      windowed_(config.sliding_window_for_layer(layer).has_value()),
      local_rope_(windowed_ && config.local_rope_theta.has_value()),
      scores_{config.attention_scale(), config.attn_logit_softcapping} {
  const std::string p = layer_prefix(layer) + "self_attn.";
  if (config.fused_projections) {
    qkv_proj = register_module("qkv_proj", take_projection(weights, p + "qkv_proj", config.qkv_bias));
  } else {
    q_proj = register_module("q_proj", take_projection(weights, p + "q_proj", config.qkv_bias));
    k_proj = register_module("k_proj", take_projection(weights, p + "k_proj", config.qkv_bias));
    v_proj = register_module("v_proj", take_projection(weights, p + "v_proj", config.qkv_bias));
  }
  o_proj = register_module("o_proj", take_projection(weights, p + "o_proj", config.o_bias));
  if (config.qk_norm) {
    q_norm = register_module("q_norm", RmsNorm(weights.take(p + "q_norm.weight"), config.rms_norm_eps, config.norm_unit_offset));
    k_norm = register_module("k_norm", RmsNorm(weights.take(p + "k_norm.weight"), config.rms_norm_eps, config.norm_unit_offset));
  }
}

std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> AttentionImpl::project(const torch::Tensor& x) {
  if (qkv_proj.is_empty()) return {q_proj->forward(x), k_proj->forward(x), v_proj->forward(x)};
  const torch::Tensor qkv = qkv_proj->forward(x);  // [B, T, (H + 2·KV)·Dh]
  const int64_t q_size = num_heads_ * head_dim_, kv_size = num_kv_heads_ * head_dim_;
  // Contiguous copies: RoPE turns q and k in place.
  return {qkv.slice(-1, 0, q_size).contiguous(), qkv.slice(-1, q_size, q_size + kv_size).contiguous(), qkv.slice(-1, q_size + kv_size)};
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x, const AttentionContext& context, KVCache* cache) {
  const int64_t B = x.size(0), T = x.size(1);
  auto [q, k, v] = project(x);  // [B, T, H·Dh], [B, T, KV·Dh] x2
  v = v.reshape({B, T, num_kv_heads_, head_dim_}).transpose(1, 2);  // [B, KV, T, Dh]
  if (!q_norm.is_empty()) {
    q = q_norm->forward(q.view({B, T, num_heads_, head_dim_}));
    k = k_norm->forward(k.view({B, T, num_kv_heads_, head_dim_}));
  }
  // Rotated in place: the projections' outputs are fresh tensors nothing else holds.
  const RopeTables& rope = local_rope_ ? context.rope_local : context.rope;
  q = apply_rope_(q, rope, head_dim_).view({B, T, num_heads_, head_dim_}).transpose(1, 2);     // [B, H, T, Dh]
  k = apply_rope_(k, rope, head_dim_).view({B, T, num_kv_heads_, head_dim_}).transpose(1, 2);  // [B, KV, T, Dh]
  if (cache != nullptr) {
    auto& ck = cache->keys[layer_];
    auto& cv = cache->values[layer_];
    k = ck.defined() ? torch::cat({ck, k}, 2) : k;
    v = cv.defined() ? torch::cat({cv, v}, 2) : v;
    ck = k;
    cv = v;
  }
  const torch::Tensor& visible = windowed_ ? context.visible_window : context.visible_full;  // [B, 1, 1, T, Tk]
  const torch::Tensor out = attend(q, k, v, visible, context.causal, scores_);                // [B, H, T, Dh]
  return o_proj->forward(out.transpose(1, 2).reshape({B, T, num_heads_ * head_dim_}));
}

}  // namespace qtune
