// The fused CUDA kernels (RMSNorm, RoPE, SwiGLU; kernels/cuda/fused_kernels.cu) against the CPU
// implementations of kernels/fused_ops.h, forward and backward, in f32, bf16 and f16, at the models' shapes
// plus sizes that take the other paths (one warp per row, element by element, tails, unaligned pointers).
// Errors are relative to the largest magnitude: at most 1e-5 in f32 (a wrong formula or constant is far
// above), about two rounding steps in bf16/f16 (the CPU rounds intermediate products to the dtype, the
// kernels round once). Skipped without a CUDA build or a GPU.
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include <cmath>
#include <string>

#include "kernels/fused_ops.h"
#include "models/rope.h"
#include "tests/support/test_support.h"

namespace qtune {
namespace {

#ifdef QTUNE_WITH_CUDA

constexpr at::ScalarType kTypes[] = {at::kFloat, at::kBFloat16, at::kHalf};

// Relative to the largest |expected|: f32 rounding noise is ~1e-7; one bf16 (f16) step at the top is at
// most 2^-7 (2^-10) of it, and the CPU's extra roundings can add about one more.
double tolerance(at::ScalarType dtype) { return dtype == at::kFloat ? 1e-5 : dtype == at::kHalf ? 3e-3 : 2e-2; }

::testing::AssertionResult close(const at::Tensor& got, const at::Tensor& expected, at::ScalarType dtype) {
  if (got.sizes() != expected.sizes() || got.scalar_type() != expected.scalar_type())
    return ::testing::AssertionFailure() << "got " << got.scalar_type() << " " << got.sizes() << ", expected " << expected.scalar_type() << " "
                                         << expected.sizes();
  const at::Tensor g = got.cpu().to(at::kDouble), e = expected.cpu().to(at::kDouble);
  const double error = ((g - e).abs().max() / e.abs().max().clamp_min(1e-30)).item<double>();
  if (!(error <= tolerance(dtype)))  // NaN fails too
    return ::testing::AssertionFailure() << "relative error " << error << " > " << tolerance(dtype);
  return ::testing::AssertionSuccess();
}

std::string name(at::ScalarType dtype) { return c10::toString(dtype); }

TEST(FusedOpsCuda, RmsNormMatchesTheCpu) {
  QTUNE_SKIP_WITHOUT_GPU();
  at::manual_seed(0);
  const double eps = 1e-5;
  // 4096: packs, one CUDA block per row; 4100 and 4097: elements one by one in bf16/f16 (4100 still packs in
  // f32); 128 and 33: one warp per row.
  for (int64_t n : {4096, 4100, 4097, 128, 33}) {
    // Row scales from 3e-3 (mean(x²) ≈ eps, so eps matters) to 3; one row all zeros.
    const at::Tensor scale = at::exp(at::linspace(std::log(3e-3), std::log(3.0), 2 * 37)).view({2, 37, 1});
    at::Tensor x32 = (at::randn({2, 37, n}) + 0.5) * scale;
    x32[1][5].zero_();
    for (at::ScalarType dtype : kTypes) {
      SCOPED_TRACE(std::to_string(n) + " " + name(dtype));
      const at::Tensor x = x32.to(dtype), w = (1 + 0.1 * at::randn({n})).to(dtype), grad_y = at::randn({2, 37, n}).to(dtype);
      const RmsNormResult cpu = rms_norm_forward(x, w, eps);
      const RmsNormResult gpu = rms_norm_forward_cuda(x.cuda(), w.cuda(), eps);
      EXPECT_TRUE(close(gpu.y, cpu.y, dtype));
      EXPECT_TRUE(close(gpu.rstd, cpu.rstd, at::kFloat));  // float32 on both sides
      EXPECT_EQ(gpu.rstd.dim(), 1);
      EXPECT_EQ(gpu.rstd.size(0), 2 * 37);
      EXPECT_TRUE(close(rms_norm_backward_cuda(grad_y.cuda(), x.cuda(), w.cuda(), gpu.rstd), rms_norm_backward(grad_y, x, w, cpu.rstd), dtype));
    }
  }
}

TEST(FusedOpsCuda, RmsNormTakesStridedInputs) {
  QTUNE_SKIP_WITHOUT_GPU();
  at::manual_seed(1);
  const at::Tensor x = at::randn({64, 3, 40}).cuda().transpose(0, 2);  // [40, 3, 64], not contiguous
  const at::Tensor w = at::randn({64}).cuda();
  const RmsNormResult strided = rms_norm_forward_cuda(x, w, 1e-6), packed = rms_norm_forward_cuda(x.contiguous(), w, 1e-6);
  EXPECT_TRUE(strided.y.equal(packed.y));
  EXPECT_TRUE(strided.rstd.equal(packed.rstd));
}

TEST(FusedOpsCuda, RopeMatchesTheCpu) {
  QTUNE_SKIP_WITHOUT_GPU();
  at::manual_seed(2);
  const int64_t B = 2, T = 33, H = 8;
  // Batch 0 at positions 0..32, batch 1 further on (a later window): the tables differ per batch.
  const at::Tensor positions = at::arange(T, at::kLong).unsqueeze(0) + at::tensor({int64_t(0), int64_t(1000)}).unsqueeze(1);  // [B, T]
  for (int64_t Dh : {128, 64, 6}) {  // 6: an odd half
    const at::Tensor inv_freq = rope_inverse_frequencies(Dh, 10000.0, RopeScaling{});
    for (at::ScalarType dtype : kTypes) {
      SCOPED_TRACE(std::to_string(Dh) + " " + name(dtype));
      const RopeTables tables = rope_tables(inv_freq, positions, dtype);
      const at::Tensor cos = tables.cos.squeeze(1).contiguous(), sin = tables.sin.squeeze(1).contiguous();  // [B, T, Dh]
      const at::Tensor cos_gpu = cos.cuda(), sin_gpu = sin.cuda();
      for (bool split_heads : {true, false}) {
        const std::vector<int64_t> shape = split_heads ? std::vector<int64_t>{B, T, H, Dh} : std::vector<int64_t>{B, T, H * Dh};
        const at::Tensor x = at::randn(shape).to(dtype), grad_y = at::randn(shape).to(dtype);
        at::Tensor cpu = x.clone(), gpu = x.cuda();
        rope_forward_(cpu, cos, sin, Dh);
        rope_forward_cuda_(gpu, cos_gpu, sin_gpu, Dh);
        EXPECT_TRUE(close(gpu, cpu, dtype));
        EXPECT_TRUE(close(rope_backward_cuda(grad_y.cuda(), cos_gpu, sin_gpu, Dh), rope_backward(grad_y, cos, sin, Dh), dtype));
        // The backward is the rotation by −angle: it undoes the forward (cos² + sin² = 1 up to the tables' rounding).
        if (dtype == at::kFloat) {
          EXPECT_TRUE(close(rope_backward_cuda(gpu, cos_gpu, sin_gpu, Dh), x, dtype));
        }
      }
    }
  }
}

TEST(FusedOpsCuda, SwigluMatchesTheCpu) {
  QTUNE_SKIP_WITHOUT_GPU();
  at::manual_seed(3);
  // [2, 33, 11008]: the MLP of a 7B model; [1001]: a tail after the packs.
  for (const std::vector<int64_t>& shape : {std::vector<int64_t>{2, 33, 11008}, std::vector<int64_t>{1001}}) {
    at::Tensor gate32 = at::randn(shape) * 3;
    gate32.view({-1}).slice(0, 0, 4).copy_(at::tensor({-100.0f, -20.0f, 20.0f, 100.0f}));  // saturated sigmoid, e^−g overflowing
    const at::Tensor up32 = at::randn(shape), grad32 = at::randn(shape);
    for (at::ScalarType dtype : kTypes) {
      const at::Tensor gate = gate32.to(dtype), up = up32.to(dtype), grad_h = grad32.to(dtype);
      // f16: the reference is the float32 result rounded once, as the kernel computes in float32.
      const at::Tensor h = dtype == at::kHalf ? swiglu_forward(gate.to(at::kFloat), up.to(at::kFloat)).to(dtype) : swiglu_forward(gate, up);
      const auto [grad_gate, grad_up] = swiglu_backward(grad_h, gate, up);
      for (bool aligned : {true, false}) {
        SCOPED_TRACE(std::to_string(gate.numel()) + " " + name(dtype) + (aligned ? "" : " unaligned"));
        // Unaligned: views one element into a larger buffer, so the kernels go element by element.
        const auto on_gpu = [&](const at::Tensor& t) {
          if (aligned) return t.cuda();
          at::Tensor buffer = at::empty({t.numel() + 1}, t.options().device(at::kCUDA));
          at::Tensor view = buffer.slice(0, 1).view(t.sizes());
          view.copy_(t);
          return view;
        };
        const at::Tensor gate_gpu = on_gpu(gate), up_gpu = on_gpu(up), grad_gpu = on_gpu(grad_h);
        EXPECT_TRUE(close(swiglu_forward_cuda(gate_gpu, up_gpu), h, dtype));
        const auto [grad_gate_gpu, grad_up_gpu] = swiglu_backward_cuda(grad_gpu, gate_gpu, up_gpu);
        EXPECT_TRUE(close(grad_gate_gpu, grad_gate, dtype));
        EXPECT_TRUE(close(grad_up_gpu, grad_up, dtype));
      }
    }
  }
}

TEST(FusedOpsCuda, BadInputsAreRejected) {
  QTUNE_SKIP_WITHOUT_GPU();
  const auto cuda = at::TensorOptions().device(at::kCUDA);
  const at::Tensor x = at::randn({2, 3, 16}, cuda), w = at::ones({16}, cuda);
  EXPECT_THROW(rms_norm_forward_cuda(x.to(at::kDouble), w.to(at::kDouble), 1e-5), c10::Error);  // float64 stays on the ATen path
  EXPECT_THROW(rms_norm_forward_cuda(x.cpu(), w.cpu(), 1e-5), c10::Error);
  EXPECT_THROW(rms_norm_forward_cuda(x, w.to(at::kBFloat16), 1e-5), c10::Error);
  EXPECT_THROW(rms_norm_forward_cuda(x, at::ones({15}, cuda), 1e-5), c10::Error);
  const RmsNormResult r = rms_norm_forward_cuda(x, w, 1e-5);
  EXPECT_THROW(rms_norm_backward_cuda(x, x, w, r.rstd.to(at::kDouble)), c10::Error);
  EXPECT_THROW(rms_norm_backward_cuda(x, x, w, r.rstd.slice(0, 1)), c10::Error);

  const at::Tensor cos = at::ones({2, 3, 8}, cuda), sin = at::zeros({2, 3, 8}, cuda);
  at::Tensor q = at::randn({2, 3, 16}, cuda);
  EXPECT_NO_THROW(rope_forward_cuda_(q, cos, sin, 8));
  EXPECT_THROW(rope_forward_cuda_(q, cos, sin, 7), c10::Error);  // odd head dim
  EXPECT_THROW(rope_forward_cuda_(q, cos.slice(1, 0, 2), sin.slice(1, 0, 2), 8), c10::Error);
  at::Tensor strided = at::randn({3, 2, 16}, cuda).transpose(0, 1);
  EXPECT_THROW(rope_forward_cuda_(strided, cos, sin, 8), c10::Error);  // rotated in place: must be contiguous

  EXPECT_THROW(swiglu_forward_cuda(x, x.slice(2, 0, 8)), c10::Error);
  EXPECT_THROW(swiglu_backward_cuda(x.to(at::kHalf), x, x), c10::Error);
}

#else

TEST(FusedOpsCuda, NeedsACudaBuild) { QTUNE_SKIP_WITHOUT_GPU(); }

#endif

}  // namespace
}  // namespace qtune
