// RoPE implementation. The llama3 rule (Llama 3.1 release): wavelengths above
// original_max/low_freq_factor are divided by `factor`, those below original_max/high_freq_factor kept,
// and the band between interpolated smoothly.
#include "models/rope.h"

#include <cmath>

#include "kernels/fused_ops.h"

namespace qtune {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// cos/sin [B, 1, T, Dh] as the [B, T, Dh] the fused op takes (a view: the tables are contiguous).
torch::Tensor per_token(const torch::Tensor& table) { return table.squeeze(1); }

struct RopeFunction : public torch::autograd::Function<RopeFunction> {
  static torch::Tensor forward(AutogradContext* ctx, torch::Tensor x, const torch::Tensor& cos, const torch::Tensor& sin, int64_t head_dim) {
    rope_forward_(x, cos, sin, head_dim);
    ctx->mark_dirty({x});
    ctx->save_for_backward({cos, sin});
    ctx->saved_data["head_dim"] = head_dim;
    return x;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad_output) {
    const auto saved = ctx->get_saved_variables();
    return {rope_backward(grad_output[0], saved[0], saved[1], ctx->saved_data["head_dim"].toInt()), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor rope_inverse_frequencies(int64_t rotary_dim, double theta, const RopeScaling& scaling, bool long_factors) {
  auto exponents = torch::arange(0, rotary_dim, 2, torch::kLong).to(torch::kFloat) / static_cast<double>(rotary_dim);
  if (scaling.type == "longrope") {
    const auto& factors = long_factors ? scaling.long_factor : scaling.short_factor;
    const torch::Tensor ext = torch::tensor(std::vector<float>(factors.begin(), factors.end()));
    return 1.0 / (ext * torch::pow(theta, exponents));
  }
  torch::Tensor inv_freq = 1.0 / torch::pow(theta, exponents);
  if (scaling.type == "linear") return inv_freq / scaling.factor;
  if (scaling.type != "llama3") return inv_freq;

  const double old_len = static_cast<double>(scaling.original_max_position_embeddings);
  const double low_freq_wavelen = old_len / scaling.low_freq_factor;
  const double high_freq_wavelen = old_len / scaling.high_freq_factor;
  torch::Tensor wavelen = 2 * M_PI / inv_freq;
  torch::Tensor scaled = torch::where(wavelen > low_freq_wavelen, inv_freq / scaling.factor, inv_freq);
  torch::Tensor smooth = (old_len / wavelen - scaling.low_freq_factor) / (scaling.high_freq_factor - scaling.low_freq_factor);
  torch::Tensor smoothed = (1 - smooth) * scaled / scaling.factor + smooth * scaled;
  torch::Tensor medium = (wavelen >= high_freq_wavelen).logical_and(wavelen <= low_freq_wavelen);
  return torch::where(medium, smoothed, scaled);
}

RopeTables rope_tables(const torch::Tensor& inv_freq, const torch::Tensor& position_ids, at::ScalarType dtype, double factor) {
  torch::Tensor angles = position_ids.to(torch::kFloat).unsqueeze(-1) * inv_freq.to(position_ids.device());  // [B, T, Dh/2]
  torch::Tensor emb = torch::cat({angles, angles}, -1).unsqueeze(1);                                       // [B, 1, T, Dh]
  if (factor != 1.0) return {(emb.cos() * factor).to(dtype), (emb.sin() * factor).to(dtype)};
  return {emb.cos().to(dtype), emb.sin().to(dtype)};
}

torch::Tensor apply_rope(const torch::Tensor& x, const RopeTables& tables) {
  const int64_t half = x.size(-1) / 2;
  torch::Tensor rotated = torch::cat({-x.slice(-1, half), x.slice(-1, 0, half)}, -1);
  return x * tables.cos + rotated * tables.sin;
}

// Partial rotation of x [B, T, H·Dh] or [B, T, H, Dh]: the first rotary_dim dims of each head turn.
torch::Tensor apply_partial_rope(const torch::Tensor& x, const RopeTables& tables, int64_t head_dim) {
  const int64_t rotary_dim = tables.cos.size(-1);
  const torch::Tensor heads = x.reshape({x.size(0), x.size(1), -1, head_dim});              // [B, T, H, Dh]
  const RopeTables per_token{tables.cos.transpose(1, 2), tables.sin.transpose(1, 2)};        // [B, T, 1, rotary_dim]
  const torch::Tensor turned = apply_rope(heads.slice(-1, 0, rotary_dim), per_token);
  return torch::cat({turned, heads.slice(-1, rotary_dim)}, -1).view(x.sizes());
}

torch::Tensor apply_rope_(torch::Tensor x, const RopeTables& tables, int64_t head_dim) {
  if (tables.cos.size(-1) != head_dim) return apply_partial_rope(x, tables, head_dim);
  if (x.is_view() || !x.is_contiguous() || (x.is_leaf() && x.requires_grad())) x = x.clone(at::MemoryFormat::Contiguous);
  const torch::Tensor cos = per_token(tables.cos), sin = per_token(tables.sin);
  if (torch::GradMode::is_enabled() && x.requires_grad()) return RopeFunction::apply(x, cos, sin, head_dim);
  rope_forward_(x, cos, sin, head_dim);
  return x;
}

}  // namespace qtune
