// The checkpointing autograd function.
#include "models/layer_checkpoint.h"

#include <ATen/Context.h>

namespace qtune {

torch::Tensor generator_state(const torch::Device& device) {
  at::Generator g = at::globalContext().defaultGenerator(device);
  std::lock_guard<std::mutex> lock(g.mutex());
  return g.get_state();
}

void set_generator_state(const torch::Device& device, const torch::Tensor& state) {
  at::Generator g = at::globalContext().defaultGenerator(device);
  std::lock_guard<std::mutex> lock(g.mutex());
  g.set_state(state);
}

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct CheckpointFunction : public torch::autograd::Function<CheckpointFunction> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, DecoderLayerImpl* layer, const AttentionContext* context,
                               const CheckpointOptions* options) {
    auto& d = ctx->saved_data;
    d["layer"] = reinterpret_cast<int64_t>(layer);  // the module outlives the graph (it belongs to the model)
    d["stream"] = reinterpret_cast<int64_t>(options->stream);  // so does the stream (the model owns it)
    d["index"] = options->index;
    d["rng"] = generator_state(x.device());
    d["cos"] = context->rope.cos;
    d["sin"] = context->rope.sin;
    if (context->rope_local.cos.defined()) d["cos_local"] = context->rope_local.cos, d["sin_local"] = context->rope_local.sin;
    d["causal"] = context->causal;
    if (context->visible_full.defined()) d["visible_full"] = context->visible_full;
    if (context->visible_window.defined()) d["visible_window"] = context->visible_window;
    if (ActivationOffload* activations = options->activations) {
      // The device copy of x is freed when the forward drops it (once the copy out has read it).
      const OffloadedInput previous = activations->previous(), mine = activations->to_host(x);
      d["activations"] = reinterpret_cast<int64_t>(activations);  // the model owns it, as the layer
      d["input_host"] = mine.host;
      d["input_ticket"] = mine.ticket;
      d["device"] = x.device().str();
      if (previous.host.defined()) {
        d["previous_host"] = previous.host;
        d["previous_ticket"] = previous.ticket;
      }
    } else {
      ctx->save_for_backward({x});
    }
    torch::NoGradGuard no_grad;
    return layer->forward(x, *context, nullptr);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_output) {
    auto& d = ctx->saved_data;
    auto* layer = reinterpret_cast<DecoderLayerImpl*>(d["layer"].toInt());
    auto* stream = reinterpret_cast<LayerStream*>(d["stream"].toInt());
    const int64_t index = d["index"].toInt();
    AttentionContext context;
    context.rope = {d["cos"].toTensor(), d["sin"].toTensor()};
    if (d.find("cos_local") != d.end()) context.rope_local = {d["cos_local"].toTensor(), d["sin_local"].toTensor()};
    context.causal = d["causal"].toBool();
    if (d.find("visible_full") != d.end()) context.visible_full = d["visible_full"].toTensor();
    if (d.find("visible_window") != d.end()) context.visible_window = d["visible_window"].toTensor();
    torch::Tensor saved;
    if (d.find("activations") != d.end()) {
      auto* activations = reinterpret_cast<ActivationOffload*>(d["activations"].toInt());
      const torch::Device device(d["device"].toStringRef());
      saved = activations->to_device({d["input_host"].toTensor(), d["input_ticket"].toInt()}, device);
      if (d.find("previous_host") != d.end())  // the backward goes on with the layer before: bring its input meanwhile
        activations->prefetch({d["previous_host"].toTensor(), d["previous_ticket"].toInt()}, device);
    } else {
      saved = ctx->get_saved_variables()[0];
    }
    const torch::Tensor x = saved.detach().requires_grad_(true);
    if (stream != nullptr) {  // backward runs the layers in reverse: copy the one before this one meanwhile
      stream->begin(index);
      stream->prefetch(index - 1);
    }
    // Replay the forward's random numbers, then put the generator back where the backward found it.
    const torch::Tensor now = generator_state(x.device());
    set_generator_state(x.device(), d["rng"].toTensor());
    torch::Tensor y;
    {
      torch::AutoGradMode enable(true);
      y = layer->forward(x, context, nullptr);
    }
    set_generator_state(x.device(), now);
    torch::autograd::backward({y}, {grad_output[0]});  // accumulates into the layer's trainable parameters
    if (stream != nullptr) stream->end(index);
    return {x.grad(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor checkpointed_layer(DecoderLayerImpl& layer, const torch::Tensor& x, const AttentionContext& context, const CheckpointOptions& options) {
  // The first layer's input (frozen embeddings) needs no gradient, but the function's output must be part
  // of the graph for the backward to reach the adapters inside: enter it as a leaf that requires one.
  return CheckpointFunction::apply(x.requires_grad() ? x : x.detach().requires_grad_(true), &layer, &context, &options);
}

}  // namespace qtune
