// GPU figures of the 4-bit base: device copy bandwidth, NF4 dequantization throughput as a fraction of it,
// and the 4-bit linear's forward+backward against a bf16 linear at Llama-3-8B shapes (4096 tokens).
// Usage: qtune_bench_quant4_gpu (prints JSON lines).
#include <torch/cuda.h>

#include <chrono>
#include <cstdio>
#include <functional>

#include "models/linear4bit.h"

namespace {

// Median-free simple timing: warm up, then the mean of `repeats` runs, synchronized.
double seconds_per_run(const std::function<void()>& run, int repeats) {
  for (int i = 0; i < 3; ++i) run();
  torch::cuda::synchronize();
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < repeats; ++i) run();
  torch::cuda::synchronize();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / repeats;
}

}  // namespace

int main() {
  if (!torch::cuda::is_available()) {
    std::printf("{\"error\":\"no CUDA device\"}\n");
    return 1;
  }
  torch::NoGradGuard no_grad;
  const auto cuda = at::TensorOptions().device(at::kCUDA);
  // Copy bandwidth: bytes read + written by a device-to-device copy of 1 GiB.
  at::Tensor src = at::empty({int64_t(1) << 30}, cuda.dtype(at::kByte)), dst = at::empty_like(src);
  const double copy = seconds_per_run([&] { dst.copy_(src); }, 20);
  const double copy_gbs = 2.0 * src.numel() / copy / 1e9;
  std::printf("{\"what\":\"copy\",\"gb_per_s\":%.1f}\n", copy_gbs);

  // Dequantization of an 8192 x 8192 NF4 weight (double-quantized) to bf16: bytes = codes + scales + output.
  qtune::Quantized4bit q = qtune::to_device(qtune::quantize_4bit(at::randn({8192, 8192}) * 0.02, qtune::QuantType::NF4, 64, true, "w"), at::kCUDA);
  const double deq = seconds_per_run([&] { qtune::dequantize_4bit(q, at::kBFloat16); }, 50);
  const double bytes = static_cast<double>(q.storage_bytes()) + 2.0 * q.numel();
  std::printf("{\"what\":\"dequantize_nf4_dq_to_bf16\",\"elements\":%lld,\"gb_per_s\":%.1f,\"fraction_of_copy\":%.3f}\n",
              static_cast<long long>(q.numel()), bytes / deq / 1e9, bytes / deq / 1e9 / copy_gbs);

  // Forward + backward (input gradient only) at Llama-3-8B projection shapes, 4096 tokens, bf16.
  torch::AutoGradMode grad(true);
  for (const auto& [name, out, in] : {std::tuple<const char*, int64_t, int64_t>{"q_proj", 4096, 4096}, {"k_proj", 1024, 4096}, {"gate_proj", 14336, 4096},
                                      {"down_proj", 4096, 14336}}) {
    at::Tensor weight = at::randn({out, in}, cuda) * 0.02;
    qtune::QuantizedWeight four_bit(qtune::quantize_4bit(weight.to(at::kBFloat16), qtune::QuantType::NF4, 64, true, name));
    at::Tensor dense = weight.to(at::kBFloat16);
    at::Tensor x = at::randn({4096, in}, cuda.dtype(at::kBFloat16)).requires_grad_(true);
    at::Tensor g = at::randn({4096, out}, cuda.dtype(at::kBFloat16));
    const double t4 = seconds_per_run([&] { four_bit.matmul(x).backward(g); }, 20);
    const double t16 = seconds_per_run([&] { at::matmul(x, dense.t()).backward(g); }, 20);
    std::printf("{\"what\":\"linear_fwd_bwd\",\"projection\":\"%s\",\"shape\":[%lld,%lld],\"tokens\":4096,\"nf4_ms\":%.3f,\"bf16_ms\":%.3f,\"ratio\":%.3f}\n", name,
                static_cast<long long>(out), static_cast<long long>(in), t4 * 1e3, t16 * 1e3, t4 / t16);
  }
  return 0;
}
