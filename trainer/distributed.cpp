// c10d rendezvous and collectives.
#include "trainer/distributed.h"

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/cuda.h>
#ifdef QTUNE_WITH_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#ifdef QTUNE_WITH_CUDA
#include <c10/cuda/CUDAFunctions.h>
#endif

#include <cstdlib>
#include <stdexcept>

#include "core/error.h"

namespace qtune {
namespace {

// The integer value of environment variable `name`, or `fallback` when unset.
int env_int(const char* name, int fallback, int min, int max) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return fallback;
  char* end = nullptr;
  const long value = std::strtol(text, &end, 10);
  if (*end != '\0' || value < min || value > max) input_error("environment variable {}='{}' must be a whole number from {} to {}", name, text, min, max);
  return static_cast<int>(value);
}

// Waits for a collective; InputError naming this rank when another does not answer within `timeout`.
void wait(const c10::intrusive_ptr<c10d::Work>& work, const LaunchEnvironment& e, std::chrono::milliseconds timeout, const char* what) {
  try {
    work->wait(timeout);
  } catch (const std::exception& error) {
    input_error("rank {} of {}: another rank stopped answering ({} waited up to {} s): {}", e.rank, e.world_size, what,
                timeout.count() / 1000.0, error.what());
  }
}

}  // namespace

LaunchEnvironment launch_environment() {
  LaunchEnvironment e;
  e.world_size = env_int("WORLD_SIZE", 1, 1, 65536);
  if (e.world_size == 1) return e;
  if (std::getenv("RANK") == nullptr) input_error("environment variable WORLD_SIZE={} but RANK is not set (launch with torchrun or qtune train --nproc)", e.world_size);
  e.rank = env_int("RANK", 0, 0, e.world_size - 1);
  e.local_rank = env_int("LOCAL_RANK", e.rank, 0, e.world_size - 1);
  e.master_port = env_int("MASTER_PORT", e.master_port, 1, 65535);
  if (const char* addr = std::getenv("MASTER_ADDR"); addr != nullptr && *addr != '\0') e.master_addr = addr;
  return e;
}

torch::Device rank_device(const LaunchEnvironment& e, torch::Device chosen) {
  if (!chosen.is_cuda() || e.world_size == 1) return chosen;
  const auto gpus = static_cast<int>(torch::cuda::device_count());
  if (e.local_rank >= gpus)
    input_error("rank {} has LOCAL_RANK {} but this node has {} GPU(s): start at most {} ranks per node (or set CUDA_VISIBLE_DEVICES)", e.rank,
                e.local_rank, gpus, gpus);
#ifdef QTUNE_WITH_CUDA
  c10::cuda::set_device(static_cast<c10::DeviceIndex>(e.local_rank));  // tensors made "on the GPU" land on this rank's
#endif
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(e.local_rank));
}

bool nccl_available() {
#ifdef QTUNE_WITH_NCCL
  return true;
#else
  return false;
#endif
}

struct Distributed::Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> started;  // start_sum()'s own group (CPU tensors)
#ifdef QTUNE_WITH_NCCL
  c10::intrusive_ptr<c10d::ProcessGroupNCCL> nccl;  // start_sum()'s group for GPU tensors
#endif
  std::vector<c10::intrusive_ptr<c10d::Work>> in_flight;
};

Distributed::Distributed(const LaunchEnvironment& environment, std::chrono::milliseconds timeout, bool nccl)
    : environment_(environment), timeout_(timeout), nccl_(nccl && environment.world_size > 1 && nccl_available()) {
  if (environment_.world_size == 1) return;
  const std::string where = fmt::format("rank {} of {}", environment_.rank, environment_.world_size);
  try {
    c10d::TCPStoreOptions options;
    options.port = static_cast<std::uint16_t>(environment_.master_port);
    options.isServer = environment_.rank == 0;
    options.numWorkers = static_cast<std::size_t>(environment_.world_size);
    options.timeout = timeout;
    group_ = std::make_unique<Group>();
    group_->store = c10::make_intrusive<c10d::TCPStore>(environment_.master_addr, options);
    auto gloo_options = c10d::ProcessGroupGloo::Options::create(timeout);
    gloo_options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(environment_.master_addr));
    group_->gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(group_->store, environment_.rank, environment_.world_size, gloo_options);
    group_->started = c10::make_intrusive<c10d::ProcessGroupGloo>(c10::make_intrusive<c10d::PrefixStore>("started", group_->store),
                                                                  environment_.rank, environment_.world_size, gloo_options);
#ifdef QTUNE_WITH_NCCL
    if (nccl_) {
      auto nccl_options = c10d::ProcessGroupNCCL::Options::create();
      nccl_options->timeout = timeout;
      group_->nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(c10::make_intrusive<c10d::PrefixStore>("nccl", group_->store),
                                                                 environment_.rank, environment_.world_size, nccl_options);
    }
#endif
  } catch (const std::exception& e) {
    input_error("{}: the other ranks did not join at {}:{} within {} s ({}); check that every rank was started with the same "
                "MASTER_ADDR, MASTER_PORT and WORLD_SIZE",
                where, environment_.master_addr, environment_.master_port, timeout.count() / 1000.0, e.what());
  }
}

Distributed::~Distributed() = default;

void Distributed::all_reduce_sum(std::vector<double>& values) {
  if (!group_ || values.empty()) return;
  std::vector<torch::Tensor> tensor = {torch::tensor(values, torch::kDouble)};
  all_reduce_sum(tensor);
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = tensor[0][static_cast<int64_t>(i)].item<double>();
}

void Distributed::barrier() {
  std::vector<double> token = {0};
  all_reduce_sum(token);
}

std::vector<torch::Tensor> Distributed::all_gather(const torch::Tensor& tensor) {
  if (!group_) return {tensor};
  std::vector<torch::Tensor> input = {tensor.contiguous()};
  std::vector<std::vector<torch::Tensor>> output(1);
  for (int r = 0; r < environment_.world_size; ++r) output[0].push_back(torch::empty_like(input[0]));
  wait(group_->gloo->allgather(output, input), environment_, timeout_, "all-gather");
  return output[0];
}

void Distributed::start_sum(torch::Tensor flat) {
  if (!group_) return;
  std::vector<torch::Tensor> tensors = {std::move(flat)};
#ifdef QTUNE_WITH_NCCL
  if (group_->nccl && tensors[0].is_cuda()) {
    group_->in_flight.push_back(group_->nccl->allreduce(tensors));
    return;
  }
#endif
  group_->in_flight.push_back(group_->started->allreduce(tensors));
}

void Distributed::wait_started_sums() {
  if (!group_) return;
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
  works.swap(group_->in_flight);
  for (const auto& work : works) wait(work, environment_, timeout_, "gradient sum");
}

void Distributed::all_reduce_sum(std::vector<torch::Tensor>& tensors) {
  if (!group_ || tensors.empty()) return;
  std::vector<torch::Tensor> flat{torch::cat([&] {
    std::vector<torch::Tensor> parts;
    for (const auto& t : tensors) parts.push_back(t.reshape({-1}).to(torch::kCPU));
    return parts;
  }())};
  wait(group_->gloo->allreduce(flat), environment_, timeout_, "all-reduce");
  int64_t offset = 0;
  for (auto& t : tensors) {
    torch::NoGradGuard no_grad;
    t.copy_(flat[0].slice(0, offset, offset + t.numel()).view(t.sizes()));
    offset += t.numel();
  }
}

}  // namespace qtune
