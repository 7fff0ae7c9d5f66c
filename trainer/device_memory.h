// GPU memory of a training run: capping the CUDA caching allocator (gpu_memory_limit) and reading its
// peaks. Everything is a no-op returning 0 on the CPU and in builds without CUDA, so callers need no #ifdef.
#pragma once

#include <cstdint>

#include "core/torch.h"

namespace qtune {

// Total memory of a CUDA device in bytes (0 on the CPU).
int64_t device_total_memory_bytes(torch::Device device);

// Lets the caching allocator hold at most `bytes` on `device` (setMemoryFraction of the total); an
// allocation past it fails as a CUDA out-of-memory error would. Nothing on the CPU.
void limit_device_memory(torch::Device device, int64_t bytes);

// Peaks of the caching allocator since the start or the last reset: bytes in tensors (allocated) and
// bytes taken from the driver (reserved, what nvidia-smi sees of the allocator). Both 0 on the CPU.
struct DeviceMemoryPeak {
  int64_t allocated = 0;
  int64_t reserved = 0;
};
DeviceMemoryPeak peak_device_memory_bytes(torch::Device device);
void reset_peak_device_memory(torch::Device device);

}  // namespace qtune
