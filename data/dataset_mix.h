// Mixing datasets and splitting off a validation set, both shuffled by a seeded PRNG whose output is the
// same on every standard library (SplitMix64).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "data/conversation.h"

namespace qtune {

// SplitMix64 (Steele, Lea & Flood 2014; the seeding generator of xoshiro): small, fast, fully specified.
class SplitMix64 {
 public:
  explicit SplitMix64(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next();
  // Uniform in [0, bound) without modulo bias; bound > 0.
  std::uint64_t below(std::uint64_t bound);

 private:
  std::uint64_t state_;
};

// A permutation of 0..n-1 (Fisher-Yates driven by SplitMix64(seed)): identical for a seed everywhere.
std::vector<std::size_t> shuffled_indices(std::size_t n, std::uint64_t seed);

// `samples` reordered by shuffled_indices(samples.size(), seed).
std::vector<Sample> shuffled(std::vector<Sample> samples, std::uint64_t seed);

struct TrainValidationSplit {
  std::vector<Sample> train;
  std::vector<Sample> validation;
};

// How many of `n` samples Axolotl's val_set_size puts in the validation set: 0 = none; 0 < v < 1 = that
// fraction, rounded up (as HF datasets' train_test_split does); v >= 1 = that many (a whole number).
// InputError when v is negative, not finite, a fractional count, or leaves no training samples.
std::size_t validation_count(std::size_t n, double val_set_size);

// Axolotl's val_set_size: 0 = no validation set; 0 < v < 1 = that fraction of the samples (rounded up, as
// HF datasets' train_test_split does); v >= 1 = that many samples (a whole number). The samples are
// shuffled by `seed`, the first N become the validation set and the rest, in shuffled order, the training
// set. InputError when v is negative, not finite, a fractional count, or leaves no training samples.
TrainValidationSplit split_train_validation(std::vector<Sample> samples, double val_set_size, std::uint64_t seed);

// The datasets' samples concatenated in config order, then shuffled by `seed` unless `shuffle` is false.
std::vector<Sample> mix_datasets(std::vector<std::vector<Sample>> per_dataset, bool shuffle, std::uint64_t seed);

}  // namespace qtune
