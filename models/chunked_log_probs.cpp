// Chunked target log-probabilities: the autograd function and the chunking.
#include "models/chunked_log_probs.h"

namespace qtune {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

constexpr int64_t kChunkLogitBytes = int64_t(128) << 20;

at::ScalarType score_type(const torch::Tensor& hidden) { return hidden.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat; }

// The flat indices (into R·T) of the trained positions, in chunks of at most chunk_tokens that stay
// within one row on the CPU (one sequence, one set of GEMMs, whatever its batch) and span rows elsewhere.
std::vector<torch::Tensor> chunks_of_trained_positions(const torch::Tensor& targets, int64_t chunk_tokens) {
  const int64_t R = targets.size(0), T = targets.size(1);
  const torch::Tensor trained = targets.ne(-100);
  std::vector<torch::Tensor> groups;
  if (targets.is_cpu()) {
    for (int64_t r = 0; r < R; ++r) groups.push_back(trained[r].nonzero().view({-1}) + r * T);
  } else {
    groups.push_back(trained.view({-1}).nonzero().view({-1}));
  }
  std::vector<torch::Tensor> chunks;
  for (const auto& g : groups)
    for (int64_t begin = 0; begin < g.size(0); begin += chunk_tokens) chunks.push_back(g.slice(0, begin, std::min(g.size(0), begin + chunk_tokens)));
  return chunks;
}

// log p(target) [R, T] chunk by chunk; logit_sums (if defined) receives Σ logits; gradient (if not null)
// receives ∂ log p_t / ∂h for every position, [R·T, D] (zero where untrained). softcap c > 0: the logits are
// c·tanh(W·h / c) (Gemma 2), whose derivative 1 − tanh² scales the gradient.
torch::Tensor chunked_log_probs(const torch::Tensor& hidden, const torch::Tensor& weight, const torch::Tensor& targets, int64_t chunk_tokens,
                                const torch::Tensor& logit_sums, torch::Tensor* gradient, double softcap) {
  const torch::Tensor flat_hidden = hidden.reshape({-1, hidden.size(2)}), flat_targets = targets.reshape({-1});
  torch::Tensor log_probs = torch::zeros(targets.sizes(), hidden.options().dtype(score_type(hidden)));
  if (gradient != nullptr) *gradient = torch::zeros_like(flat_hidden);
  for (const torch::Tensor& positions : chunks_of_trained_positions(targets, chunk_tokens)) {
    const torch::Tensor h = flat_hidden.index_select(0, positions);               // [n, D]
    torch::Tensor z = torch::matmul(h, weight.t()).to(score_type(hidden));        // [n, V]
    torch::Tensor capped;                                                         // tanh(z / c)
    if (softcap > 0) capped = torch::tanh(z / softcap), z = capped * softcap;
    const torch::Tensor t = flat_targets.index_select(0, positions).unsqueeze(1); // [n, 1]
    const torch::Tensor lse = z.logsumexp(1, /*keepdim=*/true);                   // [n, 1]
    log_probs.view({-1}).index_copy_(0, positions, (z.gather(1, t) - lse).view({-1}));
    if (logit_sums.defined()) logit_sums.view({-1}).index_copy_(0, positions, z.sum(1));
    if (gradient == nullptr) continue;
    torch::Tensor d = (z - lse).exp_().neg_();  // −p, in place over the chunk's own buffer
    d.scatter_add_(1, t, torch::ones_like(t, d.options()));
    if (softcap > 0) d.mul_(1 - capped.square());
    gradient->index_copy_(0, positions, torch::matmul(d.to(hidden.scalar_type()), weight));
  }
  return log_probs;
}

struct ChunkedLogProbs : public torch::autograd::Function<ChunkedLogProbs> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& hidden, const torch::Tensor& weight, const torch::Tensor& targets,
                               int64_t chunk_tokens, const torch::Tensor* logit_sums /* by pointer: it may be undefined */, double softcap) {
    torch::Tensor gradient;
    torch::Tensor log_probs = chunked_log_probs(hidden, weight, targets, chunk_tokens, *logit_sums, &gradient, softcap);
    ctx->save_for_backward({gradient});
    ctx->saved_data["shape"] = hidden.sizes().vec();
    return log_probs;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_output) {
    const torch::Tensor gradient = ctx->get_saved_variables()[0];  // [R·T, D]
    const torch::Tensor g = grad_output[0].reshape({-1, 1}).to(gradient.scalar_type());
    return {(gradient * g).view(ctx->saved_data["shape"].toIntVector()), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

TargetScores target_scores_from_hidden(const torch::Tensor& hidden, const FrozenWeight& lm_head, const torch::Tensor& targets, bool with_logit_sums,
                                       int64_t chunk_tokens, std::optional<double> softcap) {
  const double cap = softcap.value_or(0.0);
  TORCH_CHECK(hidden.dim() == 3 && targets.dim() == 2 && targets.size(0) == hidden.size(0) && targets.size(1) == hidden.size(1),
              "target_scores: hidden [R, T, D] and targets [R, T], got ", hidden.sizes(), " and ", targets.sizes());
  TORCH_CHECK(lm_head.in_features() == hidden.size(2), "target_scores: lm_head takes ", lm_head.in_features(), " features, hidden has ", hidden.size(2));
  const int64_t vocab = lm_head.out_features();
  if (chunk_tokens <= 0) chunk_tokens = std::max<int64_t>(1, kChunkLogitBytes / (vocab * 4));
  // Dense heads (the usual case: QLoRA keeps lm_head in 16 bits) are used as they are; a 4-bit head is
  // dequantized once per call instead of once per chunk.
  const torch::Tensor weight = lm_head.dequantize().to(hidden.scalar_type());  // [V, D]
  TargetScores scores;
  if (with_logit_sums) scores.logit_sums = torch::zeros(targets.sizes(), hidden.options().dtype(score_type(hidden)));
  if (torch::GradMode::is_enabled() && hidden.requires_grad()) {
    scores.log_probs = ChunkedLogProbs::apply(hidden, weight, targets, chunk_tokens, &scores.logit_sums, cap);
  } else {
    torch::NoGradGuard no_grad;
    scores.log_probs = chunked_log_probs(hidden, weight, targets, chunk_tokens, scores.logit_sums, nullptr, cap);
  }
  return scores;
}

TargetScores target_scores(CausalLM& model, const torch::Tensor& input_ids, const SequenceLayout& layout, const torch::Tensor& targets,
                           bool with_logit_sums) {
  TORCH_CHECK(!model->lm_head->adapter() && !model->lm_head->bias().defined(), "target_scores: lm_head must be a plain frozen projection");
  return target_scores_from_hidden(model->hidden_states(input_ids, layout), model->lm_head->weight(), targets, with_logit_sums, 0,
                                   model->config().final_logit_softcapping);
}

}  // namespace qtune
