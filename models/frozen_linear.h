// FrozenLinear: the one projection module of the transformer, y = x·Wᵀ (+ b) over a frozen weight held
// behind the FrozenWeight interface (DenseWeight here, Linear4bit's NF4/FP4 in models/linear4bit.h).
// Shape legend: B batch, T tokens, D hidden, in/out the projection's features.
#pragma once

#include "core/torch.h"

#include <memory>
#include <string>

namespace qtune {

// A frozen [out, in] weight in some storage format. Never trained: matmul() is differentiable with
// respect to x only.
class FrozenWeight {
 public:
  virtual ~FrozenWeight() = default;
  virtual int64_t in_features() const = 0;
  virtual int64_t out_features() const = 0;
  virtual torch::Tensor matmul(const torch::Tensor& x) const = 0;  // x [..., in] -> [..., out], x's dtype
  virtual torch::Tensor dequantize() const = 0;                    // W [out, in] in the compute dtype
  virtual std::string format() const = 0;                          // "f32", "bf16", "nf4", ...
  virtual int64_t storage_bytes() const = 0;                       // bytes held on its device
};

// x [..., in] · m [in, out] -> [..., out], every projection's product. On the CPU a [B, T, in] batch is
// multiplied one sequence at a time (a 2-D GEMM each): BLAS picks its blocking, and with it the order of
// each dot product's additions, from the matrix sizes, so in one [B·T, in] GEMM a token's result would
// depend on how many sequences share its batch. This way 2 ranks × b sequences compute what 1 rank × 2b
// does, to the bit. Same speed on the CPU at T in the hundreds; GPUs keep the single GEMM.
torch::Tensor batch_invariant_matmul(const torch::Tensor& x, const torch::Tensor& m);

// A weight stored as a plain tensor in the compute dtype.
class DenseWeight final : public FrozenWeight {
 public:
  explicit DenseWeight(torch::Tensor weight);  // [out, in]
  int64_t in_features() const override { return weight_.size(1); }
  int64_t out_features() const override { return weight_.size(0); }
  torch::Tensor matmul(const torch::Tensor& x) const override { return batch_invariant_matmul(x, weight_.t()); }
  torch::Tensor dequantize() const override { return weight_; }
  std::string format() const override;
  int64_t storage_bytes() const override { return weight_.numel() * static_cast<int64_t>(weight_.element_size()); }
  const torch::Tensor& tensor() const { return weight_; }

 private:
  torch::Tensor weight_;  // [out, in], requires_grad = false
};

class FrozenLinearImpl;

// A trainable addition to a frozen projection (LoRA and its variants live in adapters/).
class LinearAdapter : public torch::nn::Module {
 public:
  // y (= x·Wᵀ + b of `layer`: a fresh tensor the adapter may update in place) plus the adapter's term for x.
  virtual torch::Tensor add_to(const FrozenLinearImpl& layer, torch::Tensor y, const torch::Tensor& x) = 0;
};

class FrozenLinearImpl : public torch::nn::Module {
 public:
  FrozenLinearImpl(std::shared_ptr<FrozenWeight> weight, torch::Tensor bias /* [out] or undefined */);
  // x·Wᵀ (+ b) (+ the adapter's term): [..., in] -> [..., out]
  torch::Tensor forward(const torch::Tensor& x);

  const FrozenWeight& weight() const { return *weight_; }
  const std::shared_ptr<FrozenWeight>& weight_ptr() const { return weight_; }
  // Replaces the weight by one of the same shape (PiSSA / OLoRA leave a residual weight in the base).
  void set_weight(std::shared_ptr<FrozenWeight> weight);
  const torch::Tensor& bias() const { return bias_; }

  // Registers `adapter` as the submodule "adapter" (its parameters become this module's); nullptr removes it.
  void set_adapter(std::shared_ptr<LinearAdapter> adapter);
  const std::shared_ptr<LinearAdapter>& adapter() const { return adapter_; }

 private:
  std::shared_ptr<FrozenWeight> weight_;
  torch::Tensor bias_;  // [out] or undefined; a buffer (frozen)
  std::shared_ptr<LinearAdapter> adapter_;
};
TORCH_MODULE(FrozenLinear);

std::string dtype_short_name(at::ScalarType dtype);  // "f32", "bf16", "f16", ...

}  // namespace qtune
