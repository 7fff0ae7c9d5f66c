// The 4-bit linear's autograd function.
#include "models/linear4bit.h"

namespace qtune {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Stores q in the context as tensors and plain values only, so the graph holds nothing else.
void save(AutogradContext* ctx, const Quantized4bit& q) {
  auto& d = ctx->saved_data;
  d["packed"] = q.packed;
  d["code_map"] = q.code_map;
  d["absmax"] = q.scales.absmax;
  d["nested"] = q.scales.nested;
  if (q.scales.nested) {
    d["nested_absmax"] = q.scales.nested_absmax;
    d["nested_map"] = q.scales.nested_map;
    d["nested_blocksize"] = q.scales.nested_blocksize;
    d["offset"] = static_cast<double>(q.scales.offset);
  }
  d["type"] = static_cast<int64_t>(q.type);
  d["blocksize"] = q.blocksize;
  d["shape"] = q.shape;
  d["dtype"] = static_cast<int64_t>(q.dtype);
}

Quantized4bit restore(AutogradContext* ctx) {
  auto& d = ctx->saved_data;
  Quantized4bit q;
  q.packed = d["packed"].toTensor();
  q.code_map = d["code_map"].toTensor();
  q.scales.absmax = d["absmax"].toTensor();
  q.scales.nested = d["nested"].toBool();
  if (q.scales.nested) {
    q.scales.nested_absmax = d["nested_absmax"].toTensor();
    q.scales.nested_map = d["nested_map"].toTensor();
    q.scales.nested_blocksize = d["nested_blocksize"].toInt();
    q.scales.offset = static_cast<float>(d["offset"].toDouble());
  }
  q.type = static_cast<QuantType>(d["type"].toInt());
  q.blocksize = d["blocksize"].toInt();
  q.shape = d["shape"].toIntVector();
  q.dtype = static_cast<at::ScalarType>(d["dtype"].toInt());
  return q;
}

struct Linear4bitFunction : public torch::autograd::Function<Linear4bitFunction> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, const Quantized4bit* q) {
    save(ctx, *q);
    return batch_invariant_matmul(x, dequantize_4bit(*q, x.scalar_type()).t());
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad_output) {
    const torch::Tensor& grad_y = grad_output[0];
    const torch::Tensor weight = dequantize_4bit(restore(ctx), grad_y.scalar_type());
    return {batch_invariant_matmul(grad_y, weight), torch::Tensor()};
  }
};

}  // namespace

QuantizedWeight::QuantizedWeight(Quantized4bit q) : q_(std::move(q)) {
  TORCH_CHECK(q_.shape.size() == 2, "QuantizedWeight expects an [out, in] weight");
}

void QuantizedWeight::stream_from_host(Quantized4bit host_copy) {
  TORCH_CHECK(host_copy.shape == q_.shape && host_copy.type == q_.type, "stream_from_host: another weight");
  q_ = std::move(host_copy);
  streamed_ = true;
}

const Quantized4bit& QuantizedWeight::compute_copy() const {
  if (!streamed_) return q_;
  TORCH_CHECK(bound_.packed.defined(), "a streamed 4-bit weight was used outside its layer's turn (offload_base)");
  return bound_;
}

torch::Tensor QuantizedWeight::matmul(const torch::Tensor& x) const {
  const Quantized4bit& q = compute_copy();
#ifdef QTUNE_WITH_CUDA
  // One token without gradient (generation): the GEMV kernel reads the codes directly.
  if (x.is_cuda() && !x.requires_grad() && x.numel() == in_features() && q.packed.is_cuda()) {
    auto shape = x.sizes().vec();
    shape.back() = out_features();
    return gemv_4bit_cuda(x.reshape({-1}), q).view(shape);
  }
#endif
  return Linear4bitFunction::apply(x, &q);
}

std::string QuantizedWeight::format() const {
  return std::string(quant_type_name(q_.type)) + (q_.scales.nested ? "-dq" : "");
}

}  // namespace qtune
