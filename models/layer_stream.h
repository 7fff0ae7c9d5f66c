// Streaming the frozen 4-bit decoder layers from host memory (offload_base): a model whose 4-bit layers do
// not fit on the GPU keeps them in pinned host memory, one buffer per layer, and copies each layer into one
// of two device slots just before it computes. While layer i computes, layer i±1 is copied on a side
// stream (double buffering), forward and in the recomputing backward of gradient checkpointing, so the
// copies hide behind compute. Everything else (embeddings, norms, biases, LoRA, optimizer) stays resident.
//
// Slots: layer i always goes to slot i % 2, so the layer computing and the one being copied never share a
// slot. A forward leaves layers L-2 and L-1 in the slots, which is where the backward starts; a backward
// leaves layers 0 and 1, where the next forward starts: 2·(L-2) layer copies per training step.
// On the CPU (tests) the slots are host tensors and a copy is a synchronous memcpy: the same schedule and
// the same views, so a wrong slot or a stale prefetch changes the results there too.
#pragma once

#include "core/torch.h"

#include <memory>
#include <vector>

#include "models/linear4bit.h"

namespace qtune {

// Copies, bytes and times of the streaming since the last take_stats().
struct LayerStreamStats {
  int64_t copies = 0;          // layer copies host -> device
  int64_t bytes = 0;           // bytes those copies moved
  double copy_seconds = 0;     // time the copies took on the copy stream
  double stall_seconds = 0;    // time the compute waited for them (on the CPU: all of copy_seconds)
  double hidden_fraction() const { return copy_seconds > 0 ? std::max(0.0, 1.0 - stall_seconds / copy_seconds) : 1.0; }
};

class LayerStream {
 public:
  // layers[i]: the 4-bit weights of decoder layer i (same order every layer). Moves their codes and scales
  // into one host buffer per layer (pinned when `device` is CUDA); the weights then compute only from
  // what begin() binds. Needs at least one layer.
  LayerStream(const std::vector<std::vector<QuantizedWeight*>>& layers, torch::Device device);
  ~LayerStream();
  LayerStream(const LayerStream&) = delete;
  LayerStream& operator=(const LayerStream&) = delete;

  // Starts copying `layer` into its slot unless it is already there (a no-op outside [0, L)). The copy
  // waits for the compute that last used the slot.
  void prefetch(int64_t layer);
  // Makes the compute wait for `layer`'s copy (starting it now if nobody prefetched it) and binds its
  // weights to the slot.
  void begin(int64_t layer);
  // Unbinds `layer`'s weights; its slot may be refilled once the compute queued so far has used it.
  void end(int64_t layer);

  int64_t num_layers() const { return static_cast<int64_t>(layers_.size()); }
  int64_t slot_bytes() const { return slot_bytes_; }   // the largest layer; the device holds two of these
  int64_t host_bytes() const { return host_bytes_; }   // all layers
  LayerStreamStats take_stats();                       // waits for the copies queued so far

 private:
  struct Layer {
    std::vector<QuantizedWeight*> weights;
    std::vector<std::vector<int64_t>> offsets;  // per weight, per tensor of tensors_of(): byte offset in the buffers
    torch::Tensor host;                          // uint8, the packed layer
  };
  struct Device;  // streams, events and timing on CUDA; nothing on the CPU

  std::vector<Layer> layers_;
  torch::Tensor slots_[2];
  int64_t slot_layer_[2] = {-1, -1};
  int64_t slot_bytes_ = 0, host_bytes_ = 0;
  std::unique_ptr<Device> device_;
  LayerStreamStats stats_;
};

}  // namespace qtune
