// The LoRA gradients of an optimizer step: the reducer owns the sums every adapter's backward adds into
// (LoraAdapterImpl::sum_gradients_into), and sums them across ranks in buckets while the backward still runs
// (as PyTorch's DDP does): the backward reaches the adapters from the last layer to the first, so buckets
// are filled in that order, and each one is sent as soon as the step's last backward has added all of
// its adapters' gradients.
#pragma once

#include <cstdint>
#include <vector>

#include "adapters/lora.h"
#include "trainer/distributed.h"

namespace qtune {

class GradientReducer {
 public:
  // `adapters`: in model order; their backwards add into sums of `sum_dtype` from now on (until the reducer
  // goes). Buckets of about `bucket_bytes`. group nullptr (one rank): finish() only turns the sums into gradients.
  GradientReducer(std::vector<LoraAdapterImpl*> adapters, at::ScalarType sum_dtype, Distributed* group, int64_t bucket_bytes);
  ~GradientReducer();
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  // The next backward is this rank's last of the step: its gradients complete the step's sums.
  void last_backward_begins();
  // After the step's backwards (also on a rank that had none): sends the buckets not sent yet, waits for
  // all, and sets every LoRA parameter's .grad to its sum over the ranks; the sums start again from zero.
  void finish();
  // Adapter i's sums (tests).
  const LoraGradientSums& sums(std::size_t i) const { return sums_[i]; }

  std::size_t buckets() const { return buckets_.size(); }
  std::size_t buckets_sent() const { return sent_; }  // so far this step

 private:
  struct Bucket {
    std::vector<std::size_t> adapters;
    std::size_t waiting = 0;  // adapters of this bucket whose last backward has not run yet
    torch::Tensor flat;       // what was sent, on the CPU
  };
  void added(std::size_t adapter);
  void send_ready_buckets();
  void send(Bucket& bucket);

  std::vector<LoraAdapterImpl*> adapters_;
  std::vector<LoraGradientSums> sums_;  // one per adapter, never resized (the adapters hold pointers)
  Distributed* group_;
  std::vector<Bucket> buckets_;         // in backward order
  std::vector<std::size_t> bucket_of_;  // adapter -> bucket
  bool armed_ = false;
  std::size_t sent_ = 0;  // buckets [0, sent_) are on their way, always in order, the same on every rank
};

}  // namespace qtune
