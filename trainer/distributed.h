// Data-parallel ranks over LibTorch's c10d (no home-made transport): the torchrun launch environment
// (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT), a TCPStore rendezvous hosted by rank 0, a
// Gloo process group for CPU tensors and, in CUDA builds with NCCL, an NCCL group for the gradient sums
// of GPU tensors. One rank (no environment) needs none of it.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "core/torch.h"

namespace qtune {

struct LaunchEnvironment {
  int rank = 0, world_size = 1, local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
};

// The torchrun variables of this process (world size 1 when WORLD_SIZE is unset). InputError naming the
// variable when one is not a number, out of range, or missing while WORLD_SIZE > 1.
LaunchEnvironment launch_environment();

// The device of this rank: `chosen` itself, except a GPU with several ranks, which becomes GPU LOCAL_RANK
// (made the current one). InputError when there are fewer GPUs than local ranks.
torch::Device rank_device(const LaunchEnvironment& environment, torch::Device chosen);

// Whether this build has c10d's NCCL group.
bool nccl_available();

class Distributed {
 public:
  // Joins the group (rank 0 hosts the store); InputError naming this rank when the others do not arrive
  // within `timeout`. World size 1: nothing to join. `nccl` (in builds where nccl_available()): start_sum()
  // takes GPU tensors through NCCL.
  Distributed(const LaunchEnvironment& environment, std::chrono::milliseconds timeout, bool nccl = false);
  ~Distributed();
  Distributed(const Distributed&) = delete;
  Distributed& operator=(const Distributed&) = delete;

  int rank() const { return environment_.rank; }
  int world_size() const { return environment_.world_size; }
  bool is_main() const { return environment_.rank == 0; }

  // Sums `values` across ranks in place (step totals, metric sums).
  void all_reduce_sum(std::vector<double>& values);
  // Returns when every rank has called it.
  void barrier();

  // Sums `tensors` (all of one dtype, any device) across ranks in place, as one flat buffer (one message for many small LoRA
  // gradients, staged through host memory). InputError naming this rank when another does not answer within the timeout.
  void all_reduce_sum(std::vector<torch::Tensor>& tensors);

  // Every rank's `tensor` (CPU, the same shape and dtype on every rank), in rank order. One rank: {tensor}.
  std::vector<torch::Tensor> all_gather(const torch::Tensor& tensor);

  // Starts summing `flat` (contiguous; on the GPU with NCCL, else on the CPU) across ranks in place and
  // returns at once. These sums go through a process group of their own, so they may be in flight while
  // the collectives above run; every rank must start the same sums in the same order. wait_started_sums()
  // waits for all of them (InputError naming this rank after the timeout; NCCL's own watchdog stops a
  // hung GPU sum). Callable from the backward's thread.
  void start_sum(torch::Tensor flat);
  bool sums_on_gpu() const { return nccl_; }
  void wait_started_sums();

 private:
  struct Group;
  LaunchEnvironment environment_;
  std::chrono::milliseconds timeout_;
  bool nccl_ = false;
  std::unique_ptr<Group> group_;
};

}  // namespace qtune
