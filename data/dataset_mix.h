// Mixing the configured datasets and splitting off the validation set, on record indices (tokens are never
// copied), shuffled by a seeded PRNG whose output is the same on every standard library (SplitMix64); and the
// shuffle that packing's per-epoch batch order uses too.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

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

// Record `second` of dataset `first` (datasets in config order).
using RecordIndex = std::pair<std::uint32_t, std::uint64_t>;

struct MixedRecords {
  std::vector<RecordIndex> train, validation;
};

// The records of every dataset (records_per_dataset[d] of dataset d) concatenated in config order, then
// shuffled by `seed` when `shuffle` (Axolotl's shuffle_merged_datasets) or when a validation set is split
// off; the first N become the validation set and the rest, in that order, the training set.
// N from Axolotl's val_set_size: 0 = none; 0 < v < 1 = that fraction, rounded up (as HF datasets'
// train_test_split does); v >= 1 = that many (a whole number). InputError when v is negative, not finite, a
// fractional count, or leaves no training records.
MixedRecords mix_and_split(const std::vector<std::size_t>& records_per_dataset, bool shuffle, double val_set_size, std::uint64_t seed);

}  // namespace qtune
