// Text generation with a KV cache: greedy or temperature/top-p sampling from a seeded generator, stopping
// at an end-of-sequence id.
#pragma once

#include <string>
#include <vector>

#include "data/tokenizer.h"
#include "models/transformer.h"

namespace qtune {

struct GenerationOptions {
  int64_t max_new_tokens = 64;
  double temperature = 0;  // 0: greedy
  double top_p = 1.0;
  uint64_t seed = 0;
  std::vector<TokenId> stop_ids;  // end-of-sequence ids
};

// The new token ids after `prompt` (the stop id excluded).
std::vector<TokenId> generate(CausalLM& model, const std::vector<TokenId>& prompt, const GenerationOptions& options);

}  // namespace qtune
