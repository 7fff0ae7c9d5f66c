// qtune::BatchSource: the one place micro-batches come from, for training, validation and reference scoring,
// on every rank. It plans the rows of a sample set once (packing.h: drop/truncate, packing, one row per
// pair), orders them per epoch and seed, gives each rank of a world its part and collates it.
//
// Two ways to share batches between the W ranks of a data-parallel run:
// - a run's micro-batches (training, rows_of()): global micro-batch m holds micro_batch_size × W rows and
//   rank r takes rows [r·b, (r+1)·b) of it, so W ranks × b rows give the gradient of 1 rank × W·b rows;
// - one pass (validation and reference scoring, pass()): epoch 0's batches of micro_batch_size rows, rank r
//   taking batches r, r + W, r + 2W, ...; the ranks then add up what they computed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "data/packing.h"
#include "data/prepare_data.h"

namespace qtune {

class BatchSource {
 public:
  // Plans the rows of `samples` (pairs: one row per (chosen, rejected) pair, never packed) under `options`,
  // whose micro_batch_size is per rank. `samples` must outlive the source. InputError when sequence_len or
  // micro_batch_size is 0; logic_error unless 0 <= rank < world.
  BatchSource(const SampleSet& samples, bool pairs, const PackingOptions& options, int rank = 0, int world = 1);

  const RowPlan& plan() const { return plan_; }
  const PackingReport& report() const { return plan_.report; }
  bool pairs() const { return pairs_; }

  // Global micro-batches per epoch of the run (each micro_batch_size × world rows; the last may be short).
  std::size_t per_epoch() const { return per_epoch_; }
  // This rank's rows of micro-batch m of the run, batch (m mod per_epoch) of epoch (m div per_epoch): fewer,
  // or none, when the global batch is short. logic_error when no row is planned.
  std::vector<std::size_t> rows_of(int64_t micro_batch);
  // This rank's batches of one pass over the rows: epoch 0's batches of micro_batch_size rows, every
  // world-th from this rank's index on.
  std::vector<std::vector<std::size_t>> pass() const;

  // The batch of `rows` (indices into plan().rows), padding id 0 (segment 0 marks it; the id never matters).
  // Pairs: 2·B rows, the chosen sides in row order, then the rejected sides (collate_pairs()).
  Batch collate(const std::vector<std::size_t>& rows) const;
  // The pair (index into the sample set) of each of `rows`. logic_error for a source of single samples.
  std::vector<std::size_t> pairs_of(const std::vector<std::size_t>& rows) const;

 private:
  const SampleSet& samples_;
  bool pairs_;
  PackingOptions options_;  // micro_batch_size: this rank's share of a global micro-batch
  int rank_, world_;
  RowPlan plan_;
  std::size_t per_epoch_ = 0;
  uint64_t cached_epoch_ = UINT64_MAX;
  std::vector<std::vector<std::size_t>> epoch_batches_;  // the global micro-batches of cached_epoch_
};

// `plan`'s report with the batch count, padding and fill ratio of epoch 0's micro-batches of
// options.micro_batch_size rows (what `qtune validate` shows).
PackingReport epoch_report(const RowPlan& plan, bool pairs, const PackingOptions& options);

}  // namespace qtune
