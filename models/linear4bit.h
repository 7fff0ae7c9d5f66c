// QuantizedWeight: a frozen [out, in] projection stored in 4 bits (NF4/FP4, bitsandbytes layout), used
// through the FrozenWeight interface, and Linear4bitFunction, its autograd function.
//
// Forward:  y = x · deq(W)ᵀ                     x [..., in], deq(W) [out, in] in x's dtype
// Backward: grad_x = grad_y · deq(W)            no gradient for W (it is frozen)
// The autograd graph keeps only the packed codes and the scales; deq(W) is rebuilt in backward.
#pragma once

#include "core/torch.h"
#include "kernels/blockwise_quant.h"
#include "models/frozen_linear.h"

namespace qtune {

class QuantizedWeight final : public FrozenWeight {
 public:
  explicit QuantizedWeight(Quantized4bit q);  // q.shape = [out, in]
  int64_t in_features() const override { return q_.shape[1]; }
  int64_t out_features() const override { return q_.shape[0]; }
  torch::Tensor matmul(const torch::Tensor& x) const override;
  // deq(W) in the original dtype; streamed, from the device copy while its layer runs.
  torch::Tensor dequantize() const override { return dequantize_4bit(streamed_ && bound_.packed.defined() ? bound_ : q_); }
  std::string format() const override;  // "nf4", "fp4", "nf4-dq" (double-quantized absmax)
  int64_t storage_bytes() const override { return q_.storage_bytes(); }
  const Quantized4bit& quantized() const { return q_; }
  // The copy matmul() computes from: q_, or while streamed the bound device copy (throws when none is bound).
  const Quantized4bit& compute_copy() const;

  // Streaming (models/layer_stream.h): q_ becomes `host_copy` (in host memory) and the weight computes only
  // from the device copy bound while its layer runs; matmul() without one throws.
  void stream_from_host(Quantized4bit host_copy);
  void bind(Quantized4bit device_copy) { bound_ = std::move(device_copy); }
  void unbind() { bound_ = Quantized4bit(); }

 private:
  Quantized4bit q_;
  bool streamed_ = false;
  Quantized4bit bound_;  // streamed: the device copy of the running layer, or empty
};

}  // namespace qtune
