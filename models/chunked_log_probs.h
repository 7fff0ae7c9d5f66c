// Next-token log-probabilities through lm_head without the logits tensor: the [R, T, V] float32 logits
// of a Llama-3 vocabulary (128k) are 1 GiB per 2048 tokens, more than the rest of a QLoRA step. Here
// lm_head is applied to a few hundred trained positions at a time; each chunk's loss and gradient are
// computed at once and its logits dropped, so the logits never exist whole and untrained positions
// (prompts, padding) cost nothing.
//
// Per trained position with hidden h, logits z = W·h (float32 at least), p = softmax(z), target t:
//   log p_t = z_t − logsumexp(z),   ∂ log p_t / ∂h = Wᵀ·(onehot(t) − p)
// The forward keeps that gradient ([R, T, D], the size of hidden); the backward scales it by the
// incoming gradient of each position. No second pass over lm_head.
#pragma once

#include "core/torch.h"
#include "models/transformer.h"

namespace qtune {

struct TargetScores {
  torch::Tensor log_probs;   // [R, T] log p(target), 0 where the target is -100; differentiable w.r.t. the model
  torch::Tensor logit_sums;  // [R, T] Σ over the vocabulary of the logits, 0 where untrained (detached); only if asked
};

// Runs the model on input_ids [R, T] and scores targets [R, T] (-100: skip) from the final hidden states.
// Each chunk holds at most about 128 MiB of float32 logits. On the CPU chunks never span two rows, so a
// row's numbers do not depend on the rows batched with it (see batch_invariant_matmul).
TargetScores target_scores(CausalLM& model, const torch::Tensor& input_ids, const SequenceLayout& layout, const torch::Tensor& targets,
                           bool with_logit_sums = false);

// The same from given hidden states [R, T, D] and a frozen lm_head [V, D]; softcap: logits c·tanh(z/c) (Gemma 2).
TargetScores target_scores_from_hidden(const torch::Tensor& hidden, const FrozenWeight& lm_head, const torch::Tensor& targets,
                                       bool with_logit_sums = false, int64_t chunk_tokens = 0 /* 0: by the size budget */,
                                       std::optional<double> softcap = std::nullopt);

}  // namespace qtune
