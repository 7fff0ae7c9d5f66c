// Helpers shared by the decoder's source files (attention.cpp, transformer.cpp).
#pragma once

#include <string>

#include "models/transformer.h"

namespace qtune {

// The projection `name` ("model.layers.0.self_attn.q_proj") taken out of `weights`, with its bias if it has one.
FrozenLinear take_projection(ModelWeights& weights, const std::string& name, bool has_bias);
std::string layer_prefix(int64_t layer);  // "model.layers.<layer>."

}  // namespace qtune
