// What the packing and batch-source tests pack: tokenized samples and preference pairs, hand-made ones whose
// ids say where they come from and seeded random ones; and packing options in one call.
#pragma once

#include <cstddef>
#include <cstdint>
#include <numeric>
#include <vector>

#include "data/dataset_mix.h"
#include "data/packing.h"
#include "data/sample_encoder.h"

namespace qtune::test {

// ids 100*k + t; labels trained from `first_trained` on (-100 before), so the prompt/answer split is visible.
inline TokenizedSample make_sample(std::size_t k, std::size_t length, std::size_t first_trained) {
  TokenizedSample s;
  for (std::size_t t = 0; t < length; ++t) {
    const auto id = static_cast<TokenId>(100 * k + t);
    s.input_ids.push_back(id);
    s.labels.push_back(t >= first_trained ? id : kIgnoreLabel);
  }
  return s;
}

// Lengths 2..max_length drawn from a seeded stream; every other sample labels its first token too.
inline std::vector<TokenizedSample> random_samples(std::size_t n, std::size_t max_length, std::uint64_t seed) {
  SplitMix64 rng(seed);
  std::vector<TokenizedSample> samples;
  for (std::size_t k = 0; k < n; ++k) samples.push_back(make_sample(k, 2 + rng.below(max_length - 1), k % 2));
  return samples;
}

// first, first + 1, ... (n ids).
inline std::vector<TokenId> run_of(TokenId first, std::size_t n) {
  std::vector<TokenId> ids(n);
  std::iota(ids.begin(), ids.end(), first);
  return ids;
}

// One side of a pair: the prompt (label -100) then the answer, every answer token trained.
inline TokenizedSample side(const std::vector<TokenId>& prompt, const std::vector<TokenId>& answer) {
  TokenizedSample s;
  s.input_ids = prompt;
  s.labels.assign(prompt.size(), kIgnoreLabel);
  s.input_ids.insert(s.input_ids.end(), answer.begin(), answer.end());
  s.labels.insert(s.labels.end(), answer.begin(), answer.end());
  return s;
}

// Pair k: prompt ids 1000k.. (1-20 tokens), answers that share 0-29 tokens and then part by up to 7 more
// each (or never, then identical). Under sequence_len 32 some are cut, some identical once cut.
inline std::vector<TokenizedPair> random_pairs(std::size_t n, std::uint64_t seed) {
  SplitMix64 rng(seed);
  std::vector<TokenizedPair> pairs;
  for (std::size_t k = 0; k < n; ++k) {
    const auto base = static_cast<TokenId>(1000 * k);
    const std::vector<TokenId> prompt = run_of(base, 1 + rng.below(20));
    const std::size_t shared = rng.below(30);
    const std::vector<TokenId> chosen = run_of(base + 100, shared + rng.below(8));
    std::vector<TokenId> rejected = run_of(base + 100, shared + rng.below(8));
    for (std::size_t t = shared; t < rejected.size(); ++t) rejected[t] += 400;
    pairs.push_back({side(prompt, chosen), side(prompt, rejected)});
  }
  return pairs;
}

// The options the tests vary; the rest keep their defaults.
inline PackingOptions options(std::size_t sequence_len, bool packing, std::size_t micro_batch_size = 1, std::uint64_t seed = 7) {
  PackingOptions o;
  o.sequence_len = sequence_len;
  o.sample_packing = packing;
  o.micro_batch_size = micro_batch_size;
  o.seed = seed;
  return o;
}

}  // namespace qtune::test
