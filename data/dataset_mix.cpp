// SplitMix64, deterministic shuffles, the train/validation split and dataset mixing.
#include "data/dataset_mix.h"

#include <cmath>
#include <numeric>
#include <utility>

#include "core/error.h"

namespace qtune {

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

std::vector<Sample> shuffled(std::vector<Sample> samples, std::uint64_t seed) {
  std::vector<Sample> out;
  out.reserve(samples.size());
  for (std::size_t index : shuffled_indices(samples.size(), seed)) out.push_back(std::move(samples[index]));
  return out;
}

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

TrainValidationSplit split_train_validation(std::vector<Sample> samples, double val_set_size, std::uint64_t seed) {
  const std::size_t count = validation_count(samples.size(), val_set_size);
  TrainValidationSplit split;
  if (count == 0) {
    split.train = std::move(samples);
    return split;
  }
  std::vector<Sample> order = shuffled(std::move(samples), seed);
  split.validation.assign(std::make_move_iterator(order.begin()), std::make_move_iterator(order.begin() + count));
  split.train.assign(std::make_move_iterator(order.begin() + count), std::make_move_iterator(order.end()));
  return split;
}

std::vector<Sample> mix_datasets(std::vector<std::vector<Sample>> per_dataset, bool shuffle, std::uint64_t seed) {
  std::size_t total = 0;
  for (const auto& samples : per_dataset) total += samples.size();
  std::vector<Sample> all;
  all.reserve(total);
  for (auto& samples : per_dataset)
    all.insert(all.end(), std::make_move_iterator(samples.begin()), std::make_move_iterator(samples.end()));
  return shuffle ? shuffled(std::move(all), seed) : all;
}

}  // namespace qtune
