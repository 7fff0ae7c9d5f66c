// RMSNorm, RoPE and SwiGLU with their own backwards (kernels/fused_ops.h, the models' autograd functions)
// against autograd through the plain ATen composition, forward + backward at Llama-3-8B shapes for one
// sequence: time per call and the bytes autograd keeps between forward and backward. Runs on CUDA when a
// GPU is there (bf16), else on the CPU (f32, 512 tokens). Prints one JSON line per op.
// Usage: qtune_bench_fused_ops
#include <torch/cuda.h>

#include <chrono>
#include <cstdio>
#include <functional>

#include "models/rms_norm.h"
#include "models/rope.h"
#include "models/swiglu.h"

#ifdef QTUNE_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

namespace {

using qtune::RopeTables;

void synchronize(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize();
}

double seconds_per_call(const std::function<void()>& call, const torch::Device& device, int repeats) {
  for (int i = 0; i < 2; ++i) call();
  synchronize(device);
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < repeats; ++i) call();
  synchronize(device);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / repeats;
}

// The memory a forward leaves allocated for its backward: allocated bytes after the forward (inputs
// excluded) on CUDA; not measurable this way on the CPU (reported as -1).
int64_t kept_bytes(const std::function<torch::Tensor()>& forward, const torch::Device& device) {
#ifdef QTUNE_WITH_CUDA
  if (device.is_cuda()) {
    synchronize(device);
    const int64_t before = static_cast<int64_t>(c10::cuda::CUDACachingAllocator::getDeviceStats(device.index()).allocated_bytes[0].current);
    torch::Tensor out = forward();
    synchronize(device);
    const int64_t after = static_cast<int64_t>(c10::cuda::CUDACachingAllocator::getDeviceStats(device.index()).allocated_bytes[0].current);
    return after - before - static_cast<int64_t>(out.numel() * out.element_size());
  }
#endif
  (void)forward;
  (void)device;
  return -1;
}

// Forward + backward of sum(f() ⊙ probe) for the fused and the plain version (each with its output's layout).
void report(const char* op, const torch::Device& device, const std::function<torch::Tensor()>& fused, const torch::Tensor& fused_probe,
            const std::function<torch::Tensor()>& plain, const torch::Tensor& plain_probe, int repeats) {
  const double fused_s = seconds_per_call([&] { (fused() * fused_probe).sum().backward(); }, device, repeats);
  const double plain_s = seconds_per_call([&] { (plain() * plain_probe).sum().backward(); }, device, repeats);
  std::printf("{\"op\": \"%s\", \"device\": \"%s\", \"fused_ms\": %.4f, \"plain_ms\": %.4f, \"speedup\": %.3f, \"fused_kept_bytes\": %lld, "
              "\"plain_kept_bytes\": %lld}\n",
              op, device.str().c_str(), fused_s * 1e3, plain_s * 1e3, plain_s / fused_s, static_cast<long long>(kept_bytes(fused, device)),
              static_cast<long long>(kept_bytes(plain, device)));
}

}  // namespace

int main() {
  const bool gpu = torch::cuda::is_available();
  const torch::Device device = gpu ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  const auto dtype = gpu ? torch::kBFloat16 : torch::kFloat;
  const int64_t T = gpu ? 2048 : 512, D = 4096, F = 14336, H = 32, Dh = 128;
  const int repeats = gpu ? 50 : 5;
  const auto options = torch::TensorOptions().dtype(dtype).device(device);
  torch::manual_seed(0);

  const torch::Tensor x = torch::randn({1, T, D}, options).requires_grad_(true), w = torch::rand({D}, options) + 0.5;
  qtune::RmsNorm norm(w, 1e-5);
  const torch::Tensor norm_probe = torch::randn({1, T, D}, options);
  report("rms_norm", device, [&] { return norm->forward(x); }, norm_probe,
         [&] {
           const torch::Tensor x32 = x.to(torch::kFloat);
           return w * (x32 * torch::rsqrt(x32.pow(2).mean(-1, true) + 1e-5)).to(dtype);
         },
         norm_probe, repeats);

  const RopeTables tables = qtune::rope_tables(qtune::rope_inverse_frequencies(Dh, 500000.0, {}).to(device),
                                               torch::arange(T, options.dtype(torch::kLong)).unsqueeze(0), dtype);
  const torch::Tensor q = torch::randn({1, T, H * Dh}, options).requires_grad_(true);
  const torch::Tensor rope_probe = torch::randn({1, T, H * Dh}, options);
  report("rope", device, [&] { return qtune::apply_rope_(q * 1, tables, Dh); }, rope_probe,  // q·1: a fresh tensor, as a projection's output
         [&] { return qtune::apply_rope((q * 1).view({1, T, H, Dh}).transpose(1, 2), tables); }, rope_probe.view({1, T, H, Dh}).transpose(1, 2),
         repeats);

  const torch::Tensor gate = torch::randn({1, T, F}, options).requires_grad_(true), up = torch::randn({1, T, F}, options).requires_grad_(true);
  const torch::Tensor mlp_probe = torch::randn({1, T, F}, options);
  report("swiglu", device, [&] { return qtune::swiglu(gate * 1, up * 1); }, mlp_probe, [&] { return torch::silu(gate * 1) * (up * 1); }, mlp_probe,
         repeats);
  return 0;
}
