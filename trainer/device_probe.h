// Quick measurements of the training device for the memory plan (trainer/memory_plan.h): its matmul rate
// in the compute dtype, the host→device copy rate from pinned memory (tens of milliseconds each), and the
// host memory available.
#pragma once

#include "core/torch.h"

namespace qtune {

// FLOP/s of a square matmul in `dtype` on `device` (4096 on a GPU, 384 on the CPU), best of three.
double measure_matmul_flops(torch::Device device, at::ScalarType dtype);

// Bytes/s of a 256 MiB copy from pinned host memory to a CUDA `device`, best of three; 0 on the CPU.
double measure_host_to_device_bandwidth(torch::Device device);

// The host memory available to new allocations (MemAvailable of /proc/meminfo), 0 where unknown.
int64_t available_host_memory_bytes();

}  // namespace qtune
