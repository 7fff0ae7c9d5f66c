// GPU memory limit and peaks through c10's CUDA caching allocator. Kept apart so that only this file needs
// the CUDA headers (compiled with them only under QTUNE_WITH_CUDA).
#include "trainer/device_memory.h"

#include <algorithm>

#ifdef QTUNE_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_runtime_api.h>
#endif

namespace qtune {

#ifdef QTUNE_WITH_CUDA
namespace {

c10::DeviceIndex index_of(torch::Device device) {
  // The allocator's per-device state exists only once CUDA is initialized; LibTorch does that lazily at
  // the first CUDA tensor, so make one before asking the allocator anything.
  at::empty({1}, at::TensorOptions().device(device).dtype(at::kByte));
  return device.has_index() ? device.index() : c10::cuda::current_device();
}

}  // namespace

int64_t device_total_memory_bytes(torch::Device device) {
  if (!device.is_cuda()) return 0;
  c10::cuda::CUDAGuard guard(index_of(device));
  size_t free = 0, total = 0;
  C10_CUDA_CHECK(cudaMemGetInfo(&free, &total));
  return static_cast<int64_t>(total);
}

void limit_device_memory(torch::Device device, int64_t bytes) {
  if (!device.is_cuda()) return;
  const int64_t total = device_total_memory_bytes(device);
  const double fraction = std::min(1.0, static_cast<double>(bytes) / static_cast<double>(total));
  c10::cuda::CUDACachingAllocator::setMemoryFraction(fraction, index_of(device));
}

DeviceMemoryPeak peak_device_memory_bytes(torch::Device device) {
  if (!device.is_cuda()) return {};
  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(index_of(device));
  // Index 0 of each StatArray is StatType::AGGREGATE (small and large pools together); the enum moved
  // between namespaces across LibTorch versions, the layout did not.
  return {stats.allocated_bytes[0].peak, stats.reserved_bytes[0].peak};
}

void reset_peak_device_memory(torch::Device device) {
  if (device.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(index_of(device));
}
#else
int64_t device_total_memory_bytes(torch::Device) { return 0; }
void limit_device_memory(torch::Device, int64_t) {}
DeviceMemoryPeak peak_device_memory_bytes(torch::Device) { return {}; }
void reset_peak_device_memory(torch::Device) {}
#endif

}  // namespace qtune
