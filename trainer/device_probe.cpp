// Device probes.
#include "trainer/device_probe.h"

#include <torch/cuda.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <functional>
#include <string>

namespace qtune {
namespace {

// The fastest of three timed runs of `work` after one warm-up, waiting for the device each time.
double best_seconds(torch::Device device, const std::function<void()>& work) {
  auto finish = [&] {
    if (device.is_cuda()) torch::cuda::synchronize(device.has_index() ? device.index() : -1);
  };
  work();
  finish();
  double best = 1e30;
  for (int i = 0; i < 3; ++i) {
    const auto start = std::chrono::steady_clock::now();
    work();
    finish();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return best;
}

}  // namespace

double measure_matmul_flops(torch::Device device, at::ScalarType dtype) {
  torch::NoGradGuard no_grad;
  const int64_t n = device.is_cuda() ? 4096 : 384;
  const auto options = torch::TensorOptions().device(device).dtype(dtype);
  const torch::Tensor a = torch::full({n, n}, 0.5, options), b = torch::full({n, n}, 0.25, options);
  torch::Tensor c = torch::empty({n, n}, options);
  const double seconds = best_seconds(device, [&] { at::mm_out(c, a, b); });
  return 2.0 * static_cast<double>(n * n * n) / seconds;
}

double measure_host_to_device_bandwidth(torch::Device device) {
  if (!device.is_cuda()) return 0;
  const int64_t bytes = int64_t{256} << 20;
  const torch::Tensor host = torch::empty({bytes}, torch::TensorOptions().dtype(torch::kByte).pinned_memory(true));
  torch::Tensor target = torch::empty({bytes}, torch::TensorOptions().dtype(torch::kByte).device(device));
  const double seconds = best_seconds(device, [&] { target.copy_(host, /*non_blocking=*/true); });
  return static_cast<double>(bytes) / seconds;
}

int64_t available_host_memory_bytes() {
  std::ifstream meminfo("/proc/meminfo");
  std::string key, unit;
  int64_t kib = 0;
  while (meminfo >> key >> kib >> unit)
    if (key == "MemAvailable:") return kib * 1024;
  return 0;
}

}  // namespace qtune
