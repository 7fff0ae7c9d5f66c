// The grouped expert function (see expert_bank.h).
#include "models/expert_bank.h"

#include <array>

#include "kernels/blockwise_quant.h"
#include "kernels/fused_ops.h"
#include "models/linear4bit.h"
#include "models/transformer.h"

namespace qtune {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// One frozen weight as fixed at the forward: the 4-bit codes in use (a streamed layer's bound copy), or the dense tensor.
struct WeightSnapshot {
  Quantized4bit q;
  torch::Tensor dense;
};

// The experts' weights (gate, up, down) and row counts, kept by the autograd node for the backward.
struct ExpertBank : torch::CustomClassHolder {
  std::vector<int64_t> sizes;
  std::vector<std::array<WeightSnapshot, 3>> weights;
};

int64_t out_features(const WeightSnapshot& w) { return w.q.packed.defined() ? w.q.shape[0] : w.dense.size(0); }

WeightSnapshot snapshot(const FrozenLinear& linear) {
  if (const auto* q = dynamic_cast<const QuantizedWeight*>(&linear->weight())) return {q->compute_copy(), {}};
  return {{}, dynamic_cast<const DenseWeight&>(linear->weight()).tensor()};
}

// W [out, in] in `dtype`; on the CPU a 4-bit weight is decoded into `buffer`, grown when too small and reused.
torch::Tensor weight_in(const WeightSnapshot& w, at::ScalarType dtype, torch::Tensor& buffer) {
  if (!w.q.packed.defined()) return w.dense.to(dtype);
  if (!w.q.packed.is_cpu()) return dequantize_4bit(w.q, dtype);
  const int64_t n = w.q.numel();
  if (!buffer.defined() || buffer.numel() < n || buffer.scalar_type() != dtype) buffer = torch::empty({n}, torch::dtype(dtype));
  const torch::Tensor decoded = buffer.narrow(0, 0, n);
  dequantize_4bit_into(w.q, decoded);
  return decoded.view(w.q.shape);
}

// dst = a · b, written in place (dst: a slice of a larger result).
void mm_into(torch::Tensor dst, const torch::Tensor& a, const torch::Tensor& b) { at::mm_out(dst, a, b); }

// f(e, first_row, rows) for every expert with rows, in expert order.
template <typename F>
void for_each_expert(const ExpertBank& bank, F f) {
  int64_t first = 0;
  for (std::size_t e = 0; e < bank.sizes.size(); ++e) {
    if (bank.sizes[e] > 0) f(bank.weights[e], first, bank.sizes[e]);
    first += bank.sizes[e];
  }
}

struct GroupedExpertsFunction : public torch::autograd::Function<GroupedExpertsFunction> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& rows, const c10::intrusive_ptr<ExpertBank>& bank) {
    const at::ScalarType dtype = rows.scalar_type();
    const int64_t S = rows.size(0), I = out_features(bank->weights.front()[0]);
    torch::Tensor gate = torch::empty({S, I}, rows.options()), up = torch::empty({S, I}, rows.options()), buffer;
    for_each_expert(*bank, [&](const auto& w, int64_t first, int64_t n) {
      const torch::Tensor x = rows.narrow(0, first, n);
      mm_into(gate.narrow(0, first, n), x, weight_in(w[0], dtype, buffer).t());
      mm_into(up.narrow(0, first, n), x, weight_in(w[1], dtype, buffer).t());
    });
    const torch::Tensor act = swiglu_forward(gate, up);
    torch::Tensor out = torch::empty_like(rows);
    for_each_expert(*bank, [&](const auto& w, int64_t first, int64_t n) {
      mm_into(out.narrow(0, first, n), act.narrow(0, first, n), weight_in(w[2], dtype, buffer).t());
    });
    ctx->save_for_backward({gate, up});
    ctx->saved_data["bank"] = c10::IValue::make_capsule(bank);
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_output) {
    const auto saved = ctx->get_saved_variables();
    const auto bank = c10::static_intrusive_pointer_cast<ExpertBank>(ctx->saved_data["bank"].toCapsule());
    const torch::Tensor grad_out = grad_output[0].contiguous();
    const at::ScalarType dtype = grad_out.scalar_type();
    torch::Tensor grad_act = torch::empty_like(saved[0]), buffer;
    for_each_expert(*bank, [&](const auto& w, int64_t first, int64_t n) {
      mm_into(grad_act.narrow(0, first, n), grad_out.narrow(0, first, n), weight_in(w[2], dtype, buffer));
    });
    const auto [grad_gate, grad_up] = swiglu_backward(grad_act, saved[0], saved[1]);
    torch::Tensor grad_rows = torch::empty_like(grad_out);
    for_each_expert(*bank, [&](const auto& w, int64_t first, int64_t n) {
      const torch::Tensor g = grad_rows.narrow(0, first, n);
      mm_into(g, grad_gate.narrow(0, first, n), weight_in(w[0], dtype, buffer));
      g.add_(at::mm(grad_up.narrow(0, first, n), weight_in(w[1], dtype, buffer)));  // what autograd adds for x's two uses
    });
    return {grad_rows, torch::Tensor()};
  }
};

bool plain_frozen(const FrozenLinear& linear) {
  const FrozenWeight* w = &linear->weight();
  return !linear->adapter() && !linear->bias().defined() &&
         (dynamic_cast<const QuantizedWeight*>(w) != nullptr || dynamic_cast<const DenseWeight*>(w) != nullptr);
}

}  // namespace

bool can_group_experts(const torch::nn::ModuleList& experts) {
  for (const auto& module : *experts) {
    const auto* mlp = module->as<Mlp>();
    if (mlp == nullptr || mlp->uses_gelu() || mlp->gate_proj.is_empty()) return false;
    if (!plain_frozen(mlp->gate_proj) || !plain_frozen(mlp->up_proj) || !plain_frozen(mlp->down_proj)) return false;
  }
  return !experts->is_empty();
}

torch::Tensor grouped_experts(const torch::Tensor& rows, const std::vector<int64_t>& sizes, const torch::nn::ModuleList& experts) {
  auto bank = c10::make_intrusive<ExpertBank>();
  bank->sizes = sizes;
  for (const auto& module : *experts) {
    const auto* mlp = module->as<Mlp>();
    bank->weights.push_back({snapshot(mlp->gate_proj), snapshot(mlp->up_proj), snapshot(mlp->down_proj)});
  }
  return GroupedExpertsFunction::apply(rows.contiguous(), bank);
}

}  // namespace qtune
