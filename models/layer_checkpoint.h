// Gradient checkpointing of one decoder layer: the forward keeps only the layer's input (and the
// per-forward attention tables); the backward runs the layer again with gradients on and back-propagates
// through it, so activation memory is one tensor per layer instead of all its intermediates.
//
// Exactness: the recomputation sees the same inputs, weights and RNG state (dropout masks are replayed:
// the generator state of the input's device is saved before the forward and restored for the rerun).
#pragma once

#include "models/activation_offload.h"
#include "models/layer_stream.h"
#include "models/transformer.h"

namespace qtune {

// The state of the default random generator of `device` (dropout draws from it), and restoring it; used
// here to replay dropout and by training checkpoints to resume exactly.
torch::Tensor generator_state(const torch::Device& device);
void set_generator_state(const torch::Device& device, const torch::Tensor& state);

struct CheckpointOptions {
  // With activation offloading: x waits for the backward there, and the recompute prefetches the input of
  // the layer before (the one offloaded just before x in the same forward).
  ActivationOffload* activations = nullptr;
  // With streamed layers (offload_base): the recompute brings layer `index` in and prefetches index - 1.
  LayerStream* stream = nullptr;
  int64_t index = 0;
};

// layer(x, context) under checkpointing; x [B, T, D]. No KV cache (training only).
torch::Tensor checkpointed_layer(DecoderLayerImpl& layer, const torch::Tensor& x, const AttentionContext& context, const CheckpointOptions& options = {});

}  // namespace qtune
