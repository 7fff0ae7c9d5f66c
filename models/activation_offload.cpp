// Activation offloading. The CUDA side stream and events are compiled only under QTUNE_WITH_CUDA.
#include "models/activation_offload.h"

#ifdef QTUNE_WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <optional>

#include "models/cuda_event.h"
#endif

namespace qtune {

#ifdef QTUNE_WITH_CUDA
struct ActivationOffload::Side {
  std::optional<c10::cuda::CUDAStream> stream;             // made at the first CUDA input
  std::map<int64_t, std::unique_ptr<CudaEvent>> arrived;  // per prefetched ticket: its copy is done

  c10::cuda::CUDAStream on(const torch::Device& device) {
    if (!stream) stream = c10::cuda::getStreamFromPool(false, device.index());
    return *stream;
  }
};

namespace {
// `to` waits for the work queued on `from` so far.
void wait_for(const c10::cuda::CUDAStream& from, const c10::cuda::CUDAStream& to) {
  CudaEvent event;
  event.record(from);
  event.block(to);
}
}  // namespace
#else
struct ActivationOffload::Side {};
#endif

ActivationOffload::ActivationOffload() : side_(std::make_unique<Side>()) {}
ActivationOffload::~ActivationOffload() = default;

OffloadedInput ActivationOffload::to_host(const torch::Tensor& x) {
  OffloadedInput out{torch::Tensor(), next_ticket_++};
#ifdef QTUNE_WITH_CUDA
  if (x.is_cuda()) {
    const c10::cuda::CUDAStream compute = c10::cuda::getCurrentCUDAStream(x.device().index()), side = side_->on(x.device());
    wait_for(compute, side);  // x is written
    out.host = at::empty(x.sizes(), x.options().device(torch::kCPU).pinned_memory(true));
    {
      c10::cuda::CUDAStreamGuard on_side(side);
      out.host.copy_(x, /*non_blocking=*/true);
    }
    x.record_stream(side);  // the allocator keeps x's memory until the copy has read it
    previous_ = out;
    return out;
  }
#endif
  out.host = x.clone();  // the CPU: a second tensor, so that bringing back the wrong input shows in results
  previous_ = out;
  return out;
}

void ActivationOffload::prefetch(const OffloadedInput& input, const torch::Device& device) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (prefetched_.count(input.ticket) != 0) return;
#ifdef QTUNE_WITH_CUDA
  if (device.is_cuda()) {
    const c10::cuda::CUDAStream compute = c10::cuda::getCurrentCUDAStream(device.index()), side = side_->on(device);
    // Allocated for the compute stream, whose queued work may still use the block's previous tenant:
    // the side stream waits for it. The copy out (on the side stream too) is ordered before this one.
    torch::Tensor back = at::empty(input.host.sizes(), input.host.options().device(device).pinned_memory(false));
    wait_for(compute, side);
    {
      c10::cuda::CUDAStreamGuard on_side(side);
      back.copy_(input.host, /*non_blocking=*/true);
    }
    back.record_stream(side);
    auto arrived = std::make_unique<CudaEvent>();
    arrived->record(side);
    side_->arrived[input.ticket] = std::move(arrived);
    prefetched_[input.ticket] = back;
    return;
  }
#endif
  prefetched_[input.ticket] = input.host.clone();
}

torch::Tensor ActivationOffload::to_device(const OffloadedInput& input, const torch::Device& device) {
  prefetch(input, device);  // a no-op when the layer after this one's recompute prefetched it
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = prefetched_.find(input.ticket);
  const torch::Tensor back = it->second;
  prefetched_.erase(it);
#ifdef QTUNE_WITH_CUDA
  if (device.is_cuda()) {
    auto arrived = side_->arrived.find(input.ticket);
    arrived->second->block(c10::cuda::getCurrentCUDAStream(device.index()));
    side_->arrived.erase(arrived);
  }
#endif
  return back;
}

}  // namespace qtune
