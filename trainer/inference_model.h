// What `qtune generate` and `qtune eval` share: one loader for a model to run (an HF folder or a GGUF file, with
// a PEFT adapter on top if given, and the tokenizer that goes with it), and the scoring of token windows by their
// negative log-likelihood, which perplexity is made of.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "data/tokenizer.h"
#include "data/tokenizer_config.h"
#include "models/transformer.h"

namespace qtune {

struct InferenceOptions {
  std::string model;    // an HF checkpoint folder or a FILE.gguf
  std::string adapter;  // a PEFT adapter folder; empty: none
  std::string dtype;    // compute dtype "f32", "bf16", "f16"; empty: the adapter's training dtype, else f32
  bool load_in_4bit = false;  // quantize the base to NF4 (double quantization) while loading
};

struct InferenceModel {
  CausalLM model{nullptr};
  std::unique_ptr<Tokenizer> tokenizer;
  TokenizerConfig tokenizer_config;
};

// The model, with the adapter on the base as it trained (the adapter's record of its 4-bit format and compute
// dtype, trainer/training_base.h), and the tokenizer: the adapter's when its folder has tokenizer_config.json
// (qtune train copies it there), else the model's. InputError naming the path for a missing model, a file that
// is not GGUF, or an adapter that does not fit.
InferenceModel load_inference_model(const InferenceOptions& options);

// Tokens [begin, end) of a token sequence go through the model together; those in [first_scored, end) are
// scored, each given the tokens before it in the window (begin < first_scored).
struct TokenWindow {
  int64_t begin = 0, end = 0, first_scored = 1;
};

// The windows of a long text, as HF's perplexity guide makes them: at most `context` tokens each, starting
// `stride` tokens apart, each scoring only the tokens the previous one did not, so every token but the first is
// scored exactly once. A stride of `context` or more moves by context − 1 instead: each window then starts
// with the previous one's last token as its only context (the guide's loop, with stride = max_length, leaves
// that token of each window unscored). Requires context >= 2 and stride >= 1; no windows for tokens < 2.
std::vector<TokenWindow> stride_windows(int64_t tokens, int64_t context, int64_t stride);

// Token ids of which [first_scored, ids.size()) are scored.
struct ScoredSpan {
  std::vector<TokenId> ids;
  int64_t first_scored = 1;
};

struct NllSum {
  double nll = 0;      // Σ −log p(token | the tokens before it in its span), nats
  int64_t tokens = 0;  // how many were scored
};

// Runs `spans` through the model `batch_size` at a time (right-padded to the longest of each batch) and adds up
// their scored tokens' negative log-likelihoods; the log-softmax is taken over float32 logits (float64 for a
// float64 model), the sum kept in float64.
NllSum score_spans(CausalLM& model, const std::vector<ScoredSpan>& spans, int64_t batch_size);

}  // namespace qtune
