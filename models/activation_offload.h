// Activation offloading (activation_offloading: true): the input a checkpointed layer keeps for its
// recompute waits in pinned host memory. On CUDA both copies run on a side stream, so they overlap compute:
// the forward's copy out runs beside the next layer, and while the backward recomputes layer i the input of
// layer i-1 is already coming back. On the CPU the "host copy" is a second CPU tensor, so the bookkeeping
// (which input comes back for which layer) is exercised by the CPU tests too.
#pragma once

#include "core/torch.h"

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>

namespace qtune {

// One offloaded input: its host copy and the number that names it in prefetch()/to_device().
struct OffloadedInput {
  torch::Tensor host;
  int64_t ticket = -1;
};

class ActivationOffload {
 public:
  ActivationOffload();
  ~ActivationOffload();
  ActivationOffload(const ActivationOffload&) = delete;
  ActivationOffload& operator=(const ActivationOffload&) = delete;

  // A model forward begins: the next to_host() has no previous input.
  void begin_forward() { previous_ = {}; }
  // Starts copying x to host memory (after the compute queued so far has written x) and returns that
  // copy. The input offloaded just before, in this forward, is previous().
  OffloadedInput to_host(const torch::Tensor& x);
  const OffloadedInput& previous() const { return previous_; }
  // Starts bringing `input` back to `device` for a later to_device() of the same ticket.
  void prefetch(const OffloadedInput& input, const torch::Device& device);
  // `input` on `device`, ready for the compute stream: the prefetched copy, or one started now.
  torch::Tensor to_device(const OffloadedInput& input, const torch::Device& device);

 private:
  struct Side;  // the CUDA side stream and the prefetched copies' events
  std::unique_ptr<Side> side_;
  std::mutex mutex_;  // prefetched_ is used from the autograd engine's threads
  std::map<int64_t, torch::Tensor> prefetched_;
  OffloadedInput previous_;
  int64_t next_ticket_ = 0;
};

}  // namespace qtune
