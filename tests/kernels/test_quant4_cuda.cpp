// The CUDA 4-bit kernels against the CPU implementation, bit for bit: codes, absmax (single and double
// quantization) and dequantized values in every dtype. Skipped on machines without a GPU or without a
// CUDA build.
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include "kernels/blockwise_quant.h"
#include "tests/support/test_support.h"

namespace qtune {
namespace {

TEST(Quant4Cuda, KernelsMatchTheCpuBitForBit) {
  QTUNE_SKIP_WITHOUT_GPU();
  at::manual_seed(0);
  for (int64_t n : {int64_t(1) << 20, int64_t(4096 * 3 + 17)}) {
    at::Tensor w = at::randn({n}) * 0.02;
    w.slice(0, 64, 128).zero_();  // an all-zero block
    for (at::ScalarType dtype : {at::kFloat, at::kBFloat16, at::kHalf}) {
      for (QuantType type : {QuantType::NF4, QuantType::FP4}) {
        for (int64_t blocksize : {64, 256, 4096}) {
          for (bool nested : {false, true}) {
            SCOPED_TRACE(std::to_string(n) + " " + c10::toString(dtype) + " " + quant_type_name(type) + " " + std::to_string(blocksize));
            const at::Tensor typed = w.to(dtype);
            Quantized4bit cpu = quantize_4bit(typed, type, blocksize, nested, "w");
            Quantized4bit gpu = quantize_4bit(typed.cuda(), type, blocksize, nested, "w");
            EXPECT_TRUE(gpu.packed.cpu().equal(cpu.packed));
            EXPECT_TRUE(gpu.scales.absmax.cpu().equal(cpu.scales.absmax));
            EXPECT_EQ(gpu.scales.offset, cpu.scales.offset);
            for (at::ScalarType out : {at::kFloat, at::kBFloat16, at::kHalf})
              EXPECT_TRUE(dequantize_4bit(gpu, out).cpu().equal(dequantize_4bit(cpu, out)));
          }
        }
      }
    }
  }
}

#ifdef QTUNE_WITH_CUDA
TEST(Quant4Cuda, GemvMatchesTheDequantizedProduct) {
  QTUNE_SKIP_WITHOUT_GPU();
  at::manual_seed(1);
  for (at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
    Quantized4bit q = to_device(quantize_4bit(at::randn({1024, 4096}) * 0.02, QuantType::NF4, 64, true, "w"), at::kCUDA);
    at::Tensor x = at::randn({4096}).to(dtype).cuda();
    at::Tensor expected = at::matmul(dequantize_4bit(q, at::kFloat), x.to(at::kFloat));
    at::Tensor got = gemv_4bit_cuda(x, q).to(at::kFloat);
    EXPECT_LT(((got - expected).abs().max() / expected.abs().max()).item<float>(), dtype == at::kFloat ? 1e-5 : 1e-2);
  }
}
#endif

}  // namespace
}  // namespace qtune
