// The 4-bit linear: forward and backward against the dense product with the dequantized weight, the
// input gradient against central finite differences (float64), and the format bookkeeping.
#include <gtest/gtest.h>

#include "models/linear4bit.h"
#include "tests/support/test_support.h"

namespace qtune {
namespace {

TEST(Linear4bit, ForwardAndBackwardUseTheDequantizedWeight) {
  torch::manual_seed(0);
  for (at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
    at::Tensor dense = torch::randn({48, 96}) * 0.05;
    QuantizedWeight w(quantize_4bit(dense.to(dtype), QuantType::NF4, 64, true, "w"));
    at::Tensor deq = w.dequantize();
    EXPECT_EQ(deq.scalar_type(), dtype);
    at::Tensor x = torch::randn({2, 5, 96}).to(dtype).set_requires_grad(true);
    at::Tensor y = w.matmul(x);
    EXPECT_EQ(y.sizes(), (std::vector<int64_t>{2, 5, 48}));
    at::Tensor g = torch::randn_like(y);
    y.backward(g);
    for (int64_t b = 0; b < 2; ++b) {  // on the CPU each sequence is its own GEMM (batch_invariant_matmul)
      EXPECT_TRUE(y[b].equal(torch::matmul(x[b].detach(), deq.t())));
      EXPECT_TRUE(x.grad()[b].equal(torch::matmul(g[b], deq)));
    }
  }
}

TEST(Linear4bit, InputGradientMatchesFiniteDifferences) {
  torch::manual_seed(1);
  QuantizedWeight w(quantize_4bit((torch::randn({16, 64}) * 0.1).to(at::kDouble), QuantType::FP4, 32, false, "w"));
  at::Tensor x = torch::randn({3, 64}, at::kDouble).set_requires_grad(true);
  at::Tensor probe = torch::randn({3, 16}, at::kDouble);
  (w.matmul(x) * probe).sum().backward();
  const double h = 1e-6;
  for (int64_t i = 0; i < 3; ++i) {
    for (int64_t j = 0; j < 64; j += 7) {
      at::Tensor plus = x.detach().clone(), minus = x.detach().clone();
      plus[i][j] += h;
      minus[i][j] -= h;
      const double numeric = ((w.matmul(plus) * probe).sum() - (w.matmul(minus) * probe).sum()).item<double>() / (2 * h);
      EXPECT_NEAR(x.grad()[i][j].item<double>(), numeric, 1e-6) << i << "," << j;
    }
  }
}

TEST(Linear4bit, FormatAndStorage) {
  at::Tensor dense = torch::randn({64, 128}).to(at::kBFloat16);
  QuantizedWeight plain(quantize_4bit(dense, QuantType::NF4, 64, false, "w"));
  QuantizedWeight nested(quantize_4bit(dense, QuantType::NF4, 64, true, "w"));
  EXPECT_EQ(plain.format(), "nf4");
  EXPECT_EQ(nested.format(), "nf4-dq");
  EXPECT_EQ(plain.in_features(), 128);
  EXPECT_EQ(plain.out_features(), 64);
  // 4 bits per weight plus one float32 absmax per 64 (or one byte, plus the second level).
  EXPECT_EQ(plain.storage_bytes(), 64 * 128 / 2 + 128 * 4 + 16 * 4);
  EXPECT_EQ(nested.storage_bytes(), 64 * 128 / 2 + 128 + 1 * 4 + 256 * 4 + 16 * 4);
}

TEST(Linear4bit, AtenDequantizationEqualsTheCpuLoop) {
  // The ATen-ops path (values[code] * absmax in float32, rounded once by ATen) is independent of the CPU loop and its
  // AVX-512 blocks (kernels/dequant4_simd.h): they must agree exactly, for every block size, a partial last block
  // (33 x 70 is no multiple of 32), scales from 1e-30 (bfloat16 rounding near the subnormals) to 1e30.
  torch::manual_seed(2);
  at::Tensor dense = torch::randn({33, 70}) * 0.03;
  dense[0] *= 1e-30;
  dense[1] *= 1e30;
  for (int64_t blocksize : {32, 64, 256, 4096}) {
    for (bool nested : {false, true}) {
      for (QuantType type : {QuantType::NF4, QuantType::FP4}) {
        Quantized4bit q = quantize_4bit(dense, type, blocksize, nested, "w");
        for (at::ScalarType dtype : {at::kFloat, at::kBFloat16, at::kHalf})
          EXPECT_TRUE(dequantize_4bit(q, dtype).equal(dequantize_4bit_aten(q, dtype))) << blocksize << " " << nested << " " << c10::toString(dtype);
      }
    }
  }
}

}  // namespace
}  // namespace qtune
