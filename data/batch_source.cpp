// The batch source: one row plan per sample set, the run's micro-batches shared out by rows, a pass shared out
// by whole batches, and collation of single samples or pairs.
#include "data/batch_source.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace qtune {
namespace {

constexpr TokenId kPadId = 0;  // padding cells have segment id 0: no attention, no label, so any id does

SampleSource sample_source(const SampleSet& samples) {
  return [&samples](std::size_t i) { return samples.get(i); };
}

PairSource pair_source(const SampleSet& samples) {
  return [&samples](std::size_t pair, int part) { return samples.get(pair, part); };
}

RowPlan plan_of(const SampleSet& samples, bool pairs, const PackingOptions& options) {
  if (pairs) return plan_pair_rows(samples.size(), pair_source(samples), options);
  return plan_rows(samples.size(), sample_source(samples), options);
}

// The options of a global micro-batch: every rank's rows.
PackingOptions global_options(PackingOptions options, int world) {
  options.micro_batch_size *= static_cast<std::size_t>(world);
  return options;
}

}  // namespace

BatchSource::BatchSource(const SampleSet& samples, bool pairs, const PackingOptions& options, int rank, int world)
    : samples_(samples), pairs_(pairs), options_(options), rank_(rank), world_(world), plan_(plan_of(samples, pairs, options)) {
  if (world < 1 || rank < 0 || rank >= world)
    throw std::logic_error("BatchSource: rank " + std::to_string(rank) + " of a world of " + std::to_string(world));
  per_epoch_ = plan_batches(plan_.row_lengths, global_options(options_, world_), 0).size();
}

std::vector<std::size_t> BatchSource::rows_of(int64_t micro_batch) {
  if (per_epoch_ == 0 || micro_batch < 0)
    throw std::logic_error("BatchSource::rows_of(" + std::to_string(micro_batch) + ") with " + std::to_string(per_epoch_) +
                           " micro-batches per epoch");
  const uint64_t epoch = static_cast<uint64_t>(micro_batch) / per_epoch_;
  if (epoch != cached_epoch_) {
    epoch_batches_ = plan_batches(plan_.row_lengths, global_options(options_, world_), epoch);
    cached_epoch_ = epoch;
  }
  const std::vector<std::size_t>& global = epoch_batches_[static_cast<std::size_t>(micro_batch) % per_epoch_];
  const std::size_t share = options_.micro_batch_size;
  const std::size_t begin = std::min(global.size(), share * static_cast<std::size_t>(rank_));
  const std::size_t end = std::min(global.size(), begin + share);
  return {global.begin() + static_cast<std::ptrdiff_t>(begin), global.begin() + static_cast<std::ptrdiff_t>(end)};
}

std::vector<std::vector<std::size_t>> BatchSource::pass() const {
  std::vector<std::vector<std::size_t>> all = plan_batches(plan_.row_lengths, options_, 0), mine;
  for (std::size_t i = static_cast<std::size_t>(rank_); i < all.size(); i += static_cast<std::size_t>(world_))
    mine.push_back(std::move(all[i]));
  return mine;
}

Batch BatchSource::collate(const std::vector<std::size_t>& rows) const {
  if (pairs_) return collate_pairs(plan_.rows, rows, pair_source(samples_), kPadId, options_);
  return qtune::collate(plan_.rows, rows, sample_source(samples_), kPadId, options_);
}

std::vector<std::size_t> BatchSource::pairs_of(const std::vector<std::size_t>& rows) const {
  if (!pairs_) throw std::logic_error("BatchSource::pairs_of on a source of single samples");
  std::vector<std::size_t> pairs;
  pairs.reserve(rows.size());
  for (std::size_t row : rows) pairs.push_back(plan_.rows.at(row).front());
  return pairs;
}

PackingReport epoch_report(const RowPlan& plan, bool pairs, const PackingOptions& options) {
  PackingReport report = plan.report;
  const auto batches = plan_batches(plan.row_lengths, options, 0);
  if (pairs) account_pair_batches(report, batches, plan, options);
  else account_batches(report, batches, plan.row_lengths, options);
  return report;
}

}  // namespace qtune
