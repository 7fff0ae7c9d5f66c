// Peak memory of one optimizer step of a training config, above the loaded model and data: loads
// everything as `qtune train` does, resets the kernel's peak-RSS mark (/proc/self/clear_refs), runs the
// step's forward and backward (the recipe's accumulate), and reads the mark again (VmHWM). On CUDA also the
// caching allocator's peak. Prints one JSON line. Run SFT and DPO configs in separate processes.
// Usage: qtune_bench_step_memory CONFIG.yaml [key=value ...]
#include <torch/cuda.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "trainer/trainer.h"
#include "trainer/training_task.h"

#ifdef QTUNE_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

namespace {

// A field of /proc/self/status in bytes ("VmHWM", "VmRSS").
int64_t status_bytes(const std::string& field) {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind(field + ":", 0) == 0) return std::stoll(line.substr(field.size() + 1)) * 1024;
  return -1;
}

}  // namespace

int main(int argc, char** argv) try {
  if (argc < 2) {
    std::fprintf(stderr, "usage: qtune_bench_step_memory CONFIG.yaml [key=value ...]\n");
    return 2;
  }
  using namespace qtune;
  TrainConfig config = TrainConfig::load(argv[1], std::vector<std::string>(argv + 2, argv + argc));
  const torch::Device device = pick_device(config);
  torch::manual_seed(static_cast<uint64_t>(config.seed));
  PreparedData data = prepare_data(config.data_config(), config.tokenizer_dir());
  auto task = config.rl.empty() ? make_sft_task(data, config, device) : make_preference_task(data, config, device);
  TrainingModel trained = load_training_model(planned_config(config, plan_training_memory(config, device)), device);
  task->prepare(trained.model);

  std::ofstream("/proc/self/clear_refs") << "5";  // VmHWM := VmRSS
  const int64_t before = status_bytes("VmRSS");
#ifdef QTUNE_WITH_CUDA
  if (device.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(device.index() < 0 ? 0 : device.index());
#endif
  const auto start = std::chrono::steady_clock::now();
  StepResult step = task->accumulate(trained.model, 0, config.gradient_accumulation_steps);
  if (device.is_cuda()) torch::cuda::synchronize();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const int64_t peak = status_bytes("VmHWM");
  int64_t gpu_peak = -1;
#ifdef QTUNE_WITH_CUDA
  if (device.is_cuda()) {
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index() < 0 ? 0 : device.index());
    gpu_peak = stats.allocated_bytes[static_cast<std::size_t>(c10::CachingAllocator::StatType::AGGREGATE)].peak;
  }
#endif
  std::printf("{\"recipe\":\"%s\",\"device\":\"%s\",\"tokens\":%lld,\"loss\":%.6f,\"step_s\":%.3f,\"rss_before_step\":%lld,\"rss_peak\":%lld,"
              "\"rss_step_increase\":%lld,\"gpu_peak_allocated\":%lld}\n",
              config.rl.empty() ? "sft" : config.rl.c_str(), device.str().c_str(), static_cast<long long>(step.tokens), step.loss, seconds,
              static_cast<long long>(before), static_cast<long long>(peak), static_cast<long long>(peak - before),
              static_cast<long long>(gpu_peak));
  return 0;
} catch (const qtune::InputError& e) {
  std::fprintf(stderr, "error: %s\n", e.what());
  return 2;
}
