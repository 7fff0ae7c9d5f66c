// SplitMix64, deterministic shuffles, and the mix of datasets with its train/validation split.
#include "data/dataset_mix.h"

#include <cmath>
#include <numeric>
#include <utility>

#include "core/error.h"

namespace qtune {
namespace {

// How many of `n` records val_set_size puts in the validation set (see mix_and_split()).
std::size_t validation_count(std::size_t n, double val_set_size) {
  if (!std::isfinite(val_set_size) || val_set_size < 0)
    input_error("val_set_size must be 0 (none), a fraction below 1, or a whole count of samples; got {}", val_set_size);
  if (val_set_size == 0) return 0;
  if (val_set_size >= 1) {
    if (val_set_size != std::floor(val_set_size))
      input_error("val_set_size {} is neither a fraction below 1 nor a whole count of samples", val_set_size);
    if (val_set_size >= static_cast<double>(n))
      input_error("val_set_size {} leaves no training samples: the datasets hold only {}", val_set_size, n);
    return static_cast<std::size_t>(val_set_size);
  }
  const auto count = static_cast<std::size_t>(std::ceil(val_set_size * static_cast<double>(n)));
  if (count >= n) input_error("val_set_size {} of {} samples leaves no training samples; lower it", val_set_size, n);
  return count;
}

}  // namespace

std::uint64_t SplitMix64::next() {
  std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

std::uint64_t SplitMix64::below(std::uint64_t bound) {
  // Reject the top partial block of 2^64 so that every residue is equally likely.
  const std::uint64_t threshold = (0 - bound) % bound;  // 2^64 mod bound
  for (;;) {
    const std::uint64_t r = next();
    if (r >= threshold) return r % bound;
  }
}

std::vector<std::size_t> shuffled_indices(std::size_t n, std::uint64_t seed) {
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), std::size_t{0});
  SplitMix64 rng(seed);
  for (std::size_t i = n; i > 1; --i) std::swap(order[i - 1], order[rng.below(i)]);
  return order;
}

MixedRecords mix_and_split(const std::vector<std::size_t>& records_per_dataset, bool shuffle, double val_set_size, std::uint64_t seed) {
  std::vector<RecordIndex> records;
  for (std::size_t d = 0; d < records_per_dataset.size(); ++d)
    for (std::uint64_t r = 0; r < records_per_dataset[d]; ++r) records.emplace_back(static_cast<std::uint32_t>(d), r);
  const std::size_t validation = validation_count(records.size(), val_set_size);
  std::vector<std::size_t> order(records.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  if (shuffle || validation > 0) order = shuffled_indices(records.size(), seed);
  MixedRecords mixed;
  for (std::size_t i = 0; i < order.size(); ++i) (i < validation ? mixed.validation : mixed.train).push_back(records[order[i]]);
  return mixed;
}

}  // namespace qtune
