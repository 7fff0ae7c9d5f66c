// The layer streamer. The CUDA parts (side stream, events, pinned memory) are compiled only under
// QTUNE_WITH_CUDA; on the CPU a copy is a plain synchronous copy into a host "slot".
#include "models/layer_stream.h"

#include <chrono>
#include <cstdlib>

#ifdef QTUNE_WITH_CUDA
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "models/cuda_event.h"
#endif

namespace qtune {
namespace {

constexpr int64_t kAlignment = 256;  // every tensor of a packed layer starts here: any dtype view is aligned

int64_t aligned(int64_t bytes) { return (bytes + kAlignment - 1) / kAlignment * kAlignment; }

// `like` with each of its tensors replaced by the bytes at `offsets` of `buffer` (same dtypes and shapes).
Quantized4bit views_into(const Quantized4bit& like, const std::vector<int64_t>& offsets, const torch::Tensor& buffer) {
  Quantized4bit q = like;
  const std::vector<at::Tensor*> tensors = tensors_of(q);
  for (std::size_t k = 0; k < tensors.size(); ++k) {
    at::Tensor& t = *tensors[k];
    t = buffer.narrow(0, offsets[k], static_cast<int64_t>(t.nbytes())).view(t.scalar_type()).view(t.sizes());
  }
  return q;
}

}  // namespace

#ifdef QTUNE_WITH_CUDA
namespace {

using Interval = std::pair<std::unique_ptr<CudaEvent>, std::unique_ptr<CudaEvent>>;

// `bytes` of page-locked host memory, exactly: LibTorch's pinned allocator rounds each block up to a power
// of two (a 441 MB layer would take 512 MB, 16% more host memory for a 70B model).
torch::Tensor pinned_bytes(int64_t bytes) {
  void* data = std::malloc(static_cast<std::size_t>(std::max<int64_t>(bytes, 1)));
  TORCH_CHECK(data != nullptr, "out of host memory for the streamed layers (", bytes, " bytes)");
  const cudaError_t registered = cudaHostRegister(data, static_cast<std::size_t>(std::max<int64_t>(bytes, 1)), cudaHostRegisterDefault);
  if (registered != cudaSuccess) std::free(data);
  C10_CUDA_CHECK(registered);
  return at::from_blob(data, {bytes}, [](void* p) { cudaHostUnregister(p); std::free(p); }, at::TensorOptions().dtype(at::kByte));
}

std::unique_ptr<CudaEvent> timestamp(cudaStream_t stream) {
  auto event = std::make_unique<CudaEvent>(true);
  event->record(stream);
  return event;
}

}  // namespace

// A side stream for the copies, an event per slot for "copied" and "free again", and the timed intervals
// read by take_stats(): copies on the copy stream, waits on the compute stream.
struct LayerStream::Device {
  // Constructed with `device` current: events belong to the device that is current at their creation.
  explicit Device(torch::Device device) : copy_stream(c10::cuda::getStreamFromPool(false, device.index())) {}
  c10::cuda::CUDAStream copy_stream;
  CudaEvent copied[2], released[2];
  std::vector<Interval> copy_times, stall_times;
};
#else
struct LayerStream::Device {};
#endif

LayerStream::LayerStream(const std::vector<std::vector<QuantizedWeight*>>& layers, torch::Device device) {
  TORCH_CHECK(!layers.empty(), "LayerStream: no layers");
  for (const auto& weights : layers) {
    Layer layer{weights, {}, {}};
    int64_t bytes = 0;
    for (QuantizedWeight* w : weights) {
      Quantized4bit q = w->quantized();
      std::vector<int64_t> offsets;
      for (at::Tensor* t : tensors_of(q)) {
        offsets.push_back(bytes);
        bytes += aligned(static_cast<int64_t>(t->nbytes()));
      }
      layer.offsets.push_back(std::move(offsets));
    }
    // Packed layer by layer, each weight's old storage released as its views replace it: the packed copy
    // never doubles the model (loading a 1B-shaped model for streaming peaked 67 MiB, about two layers,
    // above loading it resident: bench/RESULTS.md).
#ifdef QTUNE_WITH_CUDA
    layer.host = device.is_cuda() ? pinned_bytes(bytes) : at::empty({bytes}, at::kByte);
#else
    layer.host = at::empty({bytes}, at::kByte);
#endif
    for (std::size_t k = 0; k < weights.size(); ++k) {
      const Quantized4bit& old = weights[k]->quantized();
      Quantized4bit home = views_into(old, layer.offsets[k], layer.host);
      Quantized4bit source = old;
      const std::vector<at::Tensor*> from = tensors_of(source), to = tensors_of(home);
      for (std::size_t t = 0; t < from.size(); ++t) to[t]->copy_(*from[t]);
      weights[k]->stream_from_host(std::move(home));
    }
    slot_bytes_ = std::max(slot_bytes_, bytes);
    host_bytes_ += bytes;
    layers_.push_back(std::move(layer));
  }
  for (auto& slot : slots_) slot = at::empty({slot_bytes_}, at::TensorOptions().dtype(at::kByte).device(device));
#ifdef QTUNE_WITH_CUDA
  if (device.is_cuda()) {
    c10::cuda::CUDAGuard on_device(slots_[0].device());
    device_ = std::make_unique<Device>(slots_[0].device());
  }
#endif
}

LayerStream::~LayerStream() = default;

void LayerStream::prefetch(int64_t layer) {
  if (layer < 0 || layer >= num_layers()) return;
  const int64_t s = layer % 2;
  if (slot_layer_[s] == layer) return;
  const torch::Tensor& host = layers_[static_cast<std::size_t>(layer)].host;
  torch::Tensor target = slots_[s].narrow(0, 0, host.numel());
  ++stats_.copies;
  stats_.bytes += host.numel();
  slot_layer_[s] = layer;
#ifdef QTUNE_WITH_CUDA
  if (device_) {
    Device& d = *device_;
    c10::cuda::CUDAStreamGuard on_copy_stream(d.copy_stream);
    d.released[s].block(d.copy_stream);  // the compute that used the slot last is done with it
    auto start = timestamp(d.copy_stream);
    target.copy_(host, /*non_blocking=*/true);
    d.copy_times.emplace_back(std::move(start), timestamp(d.copy_stream));
    d.copied[s].record(d.copy_stream);
    return;
  }
#endif
  const auto start = std::chrono::steady_clock::now();
  target.copy_(host);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  stats_.copy_seconds += seconds;
  stats_.stall_seconds += seconds;  // nothing runs beside a CPU copy
}

void LayerStream::begin(int64_t layer) {
  TORCH_CHECK(layer >= 0 && layer < num_layers(), "LayerStream: no layer ", layer);
  prefetch(layer);  // a no-op when prefetched
  const int64_t s = layer % 2;
#ifdef QTUNE_WITH_CUDA
  if (device_) {
    Device& d = *device_;
    const c10::cuda::CUDAStream compute = c10::cuda::getCurrentCUDAStream(slots_[s].device().index());
    auto start = timestamp(compute);
    d.copied[s].block(compute);
    d.stall_times.emplace_back(std::move(start), timestamp(compute));
  }
#endif
  const Layer& l = layers_[static_cast<std::size_t>(layer)];
  for (std::size_t k = 0; k < l.weights.size(); ++k) l.weights[k]->bind(views_into(l.weights[k]->quantized(), l.offsets[k], slots_[s]));
}

void LayerStream::end(int64_t layer) {
  TORCH_CHECK(layer >= 0 && layer < num_layers(), "LayerStream: no layer ", layer);
  for (QuantizedWeight* w : layers_[static_cast<std::size_t>(layer)].weights) w->unbind();
#ifdef QTUNE_WITH_CUDA
  if (device_) device_->released[layer % 2].record(c10::cuda::getCurrentCUDAStream(slots_[0].device().index()));
#endif
}

LayerStreamStats LayerStream::take_stats() {
#ifdef QTUNE_WITH_CUDA
  if (device_) {
    for (auto* pairs : {&device_->copy_times, &device_->stall_times}) {
      double seconds = 0;
      for (auto& [start, end] : *pairs) seconds += end->seconds_since(*start);
      (pairs == &device_->copy_times ? stats_.copy_seconds : stats_.stall_seconds) += seconds;
      pairs->clear();
    }
  }
#endif
  const LayerStreamStats out = stats_;
  stats_ = {};
  return out;
}

}  // namespace qtune
