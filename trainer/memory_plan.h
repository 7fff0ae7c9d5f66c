// The memory plan of a training run, made before the model is loaded: what lives on the device and what
// in host memory, the host→device traffic per step and the expected step time. Under a device budget
// (gpu_memory_limit, or the GPU's memory) it turns on what the run needs to fit, cheapest first:
// gradient checkpointing, then streaming the 4-bit layers from host memory (offload_base), then
// activation offloading. Figures are estimates from the shapes (the allocator's peaks in metrics.jsonl
// are the measurement).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "models/model_config.h"
#include "trainer/train_config.h"

namespace qtune {

// What the run's device is like; zeros where unknown (the CPU has no budget and no host link).
struct DeviceFacts {
  std::string name = "cpu";
  bool cuda = false;                     // host buffers are then pinned
  int64_t budget_bytes = 0;              // what the run may hold on the device (0: no limit)
  std::string budget_source;             // "gpu_memory_limit", "GPU memory"
  int compute_bytes = 4;                 // element size of the compute dtype
  bool fused_attention = false;          // scaled_dot_product_attention: no [T, T] scores kept
  double matmul_flops_per_s = 0;         // measured in the compute dtype
  double host_to_device_bytes_per_s = 0; // measured from pinned memory
  int64_t host_available_bytes = 0;      // MemAvailable of /proc/meminfo (0: unknown)
};

struct MemoryPlan {
  struct Item {
    std::string what;
    int64_t bytes = 0;
  };
  std::vector<Item> device;  // on the GPU (or, on the CPU, in the process)
  std::vector<Item> host;    // kept in host memory instead
  bool gradient_checkpointing = false, offload_base = false, activation_offloading = false;
  int64_t micro_batch_size = 1, gradient_accumulation_steps = 1;  // the same rows per step, maybe split finer
  std::vector<std::string> turned_on;  // settings the plan changed to fit the budget
  int64_t layer_copy_bytes = 0;        // one streamed layer
  int64_t transfer_bytes_per_step = 0; // host→device per optimizer step (streamed layers, offloaded inputs)
  double compute_seconds_per_step = 0; // FLOPs / measured matmul rate (0 when unmeasured)
  double transfer_seconds_per_step = 0;
  bool fits = true;                    // the device total is within the budget (always true without one)
  DeviceFacts facts;                   // what the plan was made for

  int64_t device_bytes() const;
  int64_t host_bytes() const;
  std::string describe() const;  // the lines printed at the start of training
};

// Bytes of one weight of `numel` elements in bitsandbytes' 4-bit layout: codes, absmax (fp32, or 8-bit
// with an fp32 scale per 256 and the 256-entry map under double quantization) and the 16-value code map.
int64_t four_bit_weight_bytes(int64_t numel, int64_t blocksize, bool double_quant);

// four_bit: the base's 4-bit format (nullopt: a 16-bit base). InputError when offload_base is asked for a
// 16-bit base. When nothing else fits, the plan splits each micro-batch into smaller ones accumulated in
// the same step (micro_batch_size 8 -> 2 with 4× the accumulation steps): the step's rows and, with the
// loss normalized over the whole step, its gradient stay the same.
MemoryPlan plan_memory(const ModelConfig& model, std::optional<QuantizeOptions> four_bit, const TrainConfig& config, const DeviceFacts& facts);

// `config` as the plan runs it: gradient_checkpointing, activation_offloading, offload_base (true/false),
// micro_batch_size and gradient_accumulation_steps set from the plan.
TrainConfig planned_config(TrainConfig config, const MemoryPlan& plan);

}  // namespace qtune
