// Plain LoRA and DoRA behind LoraVariant, and the autograd function both train through.
#include "adapters/lora_variant.h"

#include <optional>

namespace qtune {
namespace {

// aᵀ·b for a [T, p], b [T, q]: the GEMM transposes the smaller operand (in bf16 LibTorch copies a
// transposed operand first, and a [T, out] one is the size of an activation).
torch::Tensor transposed_product(const torch::Tensor& a, const torch::Tensor& b) {
  return a.size(-1) <= b.size(-1) ? torch::matmul(a.t(), b) : torch::matmul(b.t(), a).t();
}

// Adds Σ over tokens of aᵀ·b for a [..., p], b [..., q] into sum [p, q]. On the CPU (batch_invariant_matmul's
// rule) a [B, T, ·] batch gives one GEMM per sequence, added in the sum's dtype: a sequence's part then does
// not depend on its batch, and a float64 total hardly on the order of the parts.
void add_token_sum(torch::Tensor& sum, const torch::Tensor& a, const torch::Tensor& b) {
  if (a.is_cpu() && a.dim() == 3) {
    for (int64_t i = 0; i < a.size(0); ++i) sum.add_(transposed_product(a[i], b[i]).to(sum.scalar_type()));
    return;
  }
  sum.add_(transposed_product(a.reshape({-1, a.size(-1)}), b.reshape({-1, b.size(-1)})).to(sum.scalar_type()));
}

// Adds Σ over tokens of a⊙b for a, b [..., out] into sum [out], per sequence on the CPU as add_token_sum.
void add_row_sum(torch::Tensor& sum, const torch::Tensor& a, const torch::Tensor& b) {
  if (a.is_cpu() && a.dim() == 3) {
    for (int64_t i = 0; i < a.size(0); ++i) sum.add_((a[i] * b[i]).sum(0).to(sum.scalar_type()));
    return;
  }
  sum.add_((a * b).reshape({-1, a.size(-1)}).sum(0).to(sum.scalar_type()));
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

// y + (g − 1)⊙base + g⊙s·(x·Aᵀ)·Bᵀ added into y in place (plain LoRA: no gain, no base term). The backward
// passes y's gradient through, returns x's and base's, and adds A's, B's and m's into the sums instead of
// .grad. DoRA's g = m/n and 1/n come in detached (the norm is a constant of the backward).
struct LowRankIntoSums : public torch::autograd::Function<LowRankIntoSums> {
  // base, gain and inverse_norm: DoRA's, absent for plain LoRA (optional: autograd refuses undefined tensor inputs).
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, torch::Tensor y, const torch::Tensor& x, const torch::Tensor& A,
                               const torch::Tensor& B, const std::optional<torch::Tensor>& base, const std::optional<torch::Tensor>& gain,
                               const std::optional<torch::Tensor>& inverse_norm, double scale, LoraGradientSums* sums) {
    const torch::Tensor a = A.to(x.scalar_type()), b = B.to(x.scalar_type());
    const torch::Tensor low = batch_invariant_matmul(x, a.t());  // [..., R]
    const torch::Tensor g = gain ? gain->to(x.scalar_type()) : torch::Tensor();
    if (g.defined()) {
      y.add_(*base * (g - 1));
      y.add_(batch_invariant_matmul(low, b.t()).mul_(g), scale);
    } else {
      add_low_rank_product_(y, low, b, scale);
    }
    ctx->save_for_backward({x, low, a, b, base.value_or(torch::Tensor()), g, inverse_norm.value_or(torch::Tensor())});
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["sums"] = reinterpret_cast<int64_t>(sums);  // the adapter's: outlives the graph
    ctx->mark_dirty({y});
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grad) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor &x = saved[0], &low = saved[1], &a = saved[2], &b = saved[3], &base = saved[4], &g = saved[5];
    const double scale = ctx->saved_data["scale"].toDouble();
    auto* sums = reinterpret_cast<LoraGradientSums*>(ctx->saved_data["sums"].toInt());
    const torch::Tensor& dy = grad[0];  // [..., out]
    torch::Tensor dlora = dy, dbase;
    if (g.defined()) {
      dlora = dy * g;
      dbase = dy * (g - 1);
      // dm = Σ dy⊙(base + s·lora)/n, the 1/n applied per token so that every split of the tokens sums alike.
      const torch::Tensor lora = batch_invariant_matmul(low, b.t());
      add_row_sum(sums->magnitude, dy, (base + lora * scale) * saved[6].to(dy.scalar_type()));
    }
    // The scale goes on the [..., R] factors, not on the [..., out] gradient (one full-size product fewer).
    const torch::Tensor dlow = batch_invariant_matmul(dlora, b).mul_(scale);  // [..., R]
    add_token_sum(sums->B, dlora, low * scale);
    add_token_sum(sums->A, dlow, x);
    if (sums->added) sums->added();
    const torch::Tensor dx = ctx->needs_input_grad(1) ? batch_invariant_matmul(dlow, a) : torch::Tensor();
    return {dy, dx, torch::Tensor(), torch::Tensor(), dbase, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

class PlainLora final : public LoraVariant {
 public:
  void init(LoraTensors&, const torch::Tensor&, double) const override {}

  torch::Tensor forward(const LoraTensors& t, LoraInput in) const override {
    if (in.sums != nullptr) return LowRankIntoSums::apply(in.y, in.x, t.A, t.B, std::nullopt, std::nullopt, std::nullopt, in.scale, in.sums);
    if (torch::GradMode::is_enabled()) return in.y + low_rank_term(in.x, t.A, t.B, in.scale);  // autograd's .grad, as PEFT
    const at::ScalarType dtype = in.x.scalar_type();
    add_low_rank_product_(in.y, batch_invariant_matmul(in.x, t.A.to(dtype).t()), t.B.to(dtype), in.scale);
    return in.y;
  }

  // In float32, or in float64 for a float64 base.
  torch::Tensor merged_weight(const LoraTensors& t, const torch::Tensor& base, double scale) const override {
    torch::NoGradGuard no_grad;
    const at::ScalarType dtype = at::promote_types(torch::kFloat, base.scalar_type());
    const torch::Tensor w = base.to(dtype);
    return w + torch::matmul(t.B.to(w.device(), dtype), t.A.to(w.device(), dtype)) * scale;
  }
};

class Dora final : public LoraVariant {
 public:
  // m starts as ‖W + s·B·A‖ per row, so that g = 1 and the layer computes W + s·B·A at first.
  void init(LoraTensors& t, const torch::Tensor& base, double scale) const override {
    t.magnitude = row_norms(plain_.merged_weight(t, base, scale)).to(t.A.options());
  }

  torch::Tensor forward(const LoraTensors& t, LoraInput in) const override {
    const FrozenWeight& weight = in.layer.weight();
    // n, without gradient, from deq(W) rounded to the compute dtype as the layer multiplies by it (and PEFT).
    const torch::Tensor w = weight.dequantize().to(in.x.scalar_type());
    const torch::Tensor norm = row_norms(plain_.merged_weight(t, w, in.scale)).to(t.magnitude.device());
    // x·Wᵀ: the base output without its bias, or, when dropout changed x, the product for the dropped x.
    // (The sums path adds into y in place, so there base must not be y itself.)
    torch::Tensor base = in.dropped                      ? weight.matmul(in.x)
                         : in.layer.bias().defined()     ? in.y - in.layer.bias()
                         : in.sums != nullptr            ? in.y.clone()
                                                         : in.y;
    if (in.sums != nullptr) {
      const torch::Tensor gain = t.magnitude.detach() / norm;
      return LowRankIntoSums::apply(in.y, in.x, t.A, t.B, std::optional<torch::Tensor>(base), std::optional<torch::Tensor>(gain),
                                    std::optional<torch::Tensor>(norm.reciprocal()), in.scale, in.sums);
    }
    const torch::Tensor gain = (t.magnitude / norm).to(in.x.scalar_type());  // m's gradient by autograd, as PEFT
    return in.y + base * (gain - 1) + low_rank_term(in.x, t.A, t.B, in.scale) * gain;
  }

  torch::Tensor merged_weight(const LoraTensors& t, const torch::Tensor& base, double scale) const override {
    torch::NoGradGuard no_grad;
    const torch::Tensor w = plain_.merged_weight(t, base, scale);
    return w * (t.magnitude.to(w.device(), torch::kFloat) / row_norms(w)).unsqueeze(1);
  }

 private:
  static torch::Tensor row_norms(const torch::Tensor& w) { return w.norm(2, {1}); }  // PEFT: linalg.norm(W', dim=1)
  PlainLora plain_;
};

}  // namespace

torch::Tensor low_rank_term(const torch::Tensor& x, const torch::Tensor& A, const torch::Tensor& B, double scale) {
  const at::ScalarType dtype = x.scalar_type();
  return batch_invariant_matmul(batch_invariant_matmul(x, A.to(dtype).t()), B.to(dtype).t()) * scale;
}

const LoraVariant& lora_variant(bool use_dora) {
  static const PlainLora plain;
  static const Dora dora;
  if (use_dora) return dora;
  return plain;
}

}  // namespace qtune
