// Sample packing and batching without torch: which samples share a row (first-fit-decreasing bins),
// which rows share a micro-batch (shuffled, or grouped by length), and the padded row-major batch itself;
// for preference (DPO/ORPO) pairs, one row per pair collated to a chosen and a rejected row.
// data/batch_source.h puts these together: the batches training, validation and reference scoring use, per rank.
//
// Label convention: labels are NOT shifted here; the loss predicts labels[t + 1] from position t. So the
// label at the first token of a sample is never a target of that sample (its predecessor is padding or
// another sample's last token): collate() sets it to -100 for every sample, which keeps attention-free
// cross-sample predictions out of the loss and makes "labels != -100" count exactly the loss terms.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "data/sample_encoder.h"

namespace qtune {

// What to do with a sample longer than sequence_len; config key `overlong_samples` (Axolotl calls it
// excess_length_strategy): "truncate" keeps its first sequence_len tokens, "drop" leaves it out.
enum class OverlongPolicy { Truncate, Drop };
OverlongPolicy parse_overlong_policy(const std::string& value, const std::string& where);

struct PackingOptions {
  std::size_t sequence_len = 2048;      // most tokens in one row
  bool sample_packing = false;          // several samples per row, attention kept apart by segment ids
  OverlongPolicy overlong = OverlongPolicy::Truncate;
  std::size_t micro_batch_size = 1;     // rows per batch
  std::uint64_t seed = 0;               // with the epoch, fixes the batch order
  bool pad_to_sequence_len = false;     // every batch sequence_len wide (static shapes)
};

// For pairs (plan_pair_rows) the counts are of pairs, and a pair is dropped or truncated when either side is.
struct PackingReport {
  std::size_t samples_in = 0;
  std::size_t truncated = 0;          // kept samples cut to sequence_len
  std::size_t dropped_overlong = 0;   // longer than sequence_len under OverlongPolicy::Drop
  std::size_t dropped_untrained = 0;  // no trained token at all, or none left after truncation
  std::size_t dropped_identical = 0;  // pairs whose chosen and rejected are the same once cut to sequence_len
  std::size_t rows = 0, batches = 0;
  std::size_t tokens = 0;             // real (non-padding) tokens in all rows (pairs: both sides)
  std::size_t trained_tokens = 0;     // loss terms, after the first-token rule above
  std::size_t padding_tokens = 0;     // filled by account_batches() or account_pair_batches()
  double fill_ratio = 0;              // tokens / (tokens + padding_tokens)
};

using SampleSource = std::function<SampleView(std::size_t index)>;
SampleView view_of(const TokenizedSample& sample);  // logic_error when ids and labels differ in size

// What planning needs to know of a sample: its full length and the loss terms it keeps once cut to
// sequence_len (labels != -100 at positions 1 .. min(length, sequence_len) - 1).
struct SampleShape {
  std::size_t length = 0;
  std::size_t trained_tokens = 0;
};
SampleShape shape_of(const SampleView& sample, std::size_t sequence_len);

struct RowPlan {
  std::vector<std::vector<std::size_t>> rows;  // sample indices per row, in row order
  std::vector<std::size_t> row_lengths;        // tokens per row after truncation, each <= sequence_len
  std::vector<std::size_t> pair_tokens;        // plan_pair_rows() only: chosen + rejected tokens per row
  PackingReport report;                        // samples_in .. trained_tokens filled
};

// Drops (overlong under Drop, untrained) and truncates, then makes rows: with sample_packing, bins of
// capacity sequence_len filled first-fit-decreasing (ties by index, so deterministic); without, one row
// per kept sample in index order. InputError when sequence_len or micro_batch_size is 0.
RowPlan plan_rows(const std::vector<SampleShape>& samples, const PackingOptions& options);
RowPlan plan_rows(std::size_t count, const SampleSource& sample_at, const PackingOptions& options);

// The bins alone: indices into `lengths` (each <= capacity) per bin, bins in opening order. O(n log n).
std::vector<std::vector<std::size_t>> first_fit_decreasing(const std::vector<std::size_t>& lengths, std::size_t capacity);

// Row indices per micro-batch for one epoch (the last batch may be partial). With sample_packing, rows
// shuffled by (seed, epoch) and chunked. Without, rows sorted by length (equal lengths in shuffled order)
// and chunked so that similar lengths share a batch, then the batch order shuffled by (seed, epoch).
std::vector<std::vector<std::size_t>> plan_batches(const std::vector<std::size_t>& row_lengths,
                                                   const PackingOptions& options, std::uint64_t epoch);

// Adds the batch count, padding tokens and fill ratio of `batches` (widths as collate() makes them).
void account_batches(PackingReport& report, const std::vector<std::vector<std::size_t>>& batches,
                     const std::vector<std::size_t>& row_lengths, const PackingOptions& options);

// Row-major [rows, width] tensors of one micro-batch. Padding: id pad_id, label -100, position 0, segment 0.
struct Batch {
  std::size_t rows = 0, width = 0;
  std::vector<TokenId> input_ids;       // [rows * width]
  std::vector<TokenId> labels;          // [rows * width], unshifted; -100 at every sample's first token
  std::vector<int32_t> position_ids;    // [rows * width], 0.. in each sample
  std::vector<int32_t> segment_ids;     // [rows * width], 1.. per sample within a row, 0 padding
  std::size_t trained_tokens = 0;       // labels != -100
};

// The batch of `batch` (indices into `rows`), each sample fetched through `sample_at` and cut to
// sequence_len. Width: the longest row, or sequence_len with pad_to_sequence_len.
// logic_error when a row holds more than sequence_len tokens (rows not made by plan_rows).
Batch collate(const std::vector<std::vector<std::size_t>>& rows, const std::vector<std::size_t>& batch,
              const SampleSource& sample_at, TokenId pad_id, const PackingOptions& options);

// ---- preference pairs (DPO/ORPO) ----
// Side `part` of pair `pair`: part 0 the chosen answer, 1 the rejected one (SampleSet::get(pair, part)).
using PairSource = std::function<SampleView(std::size_t pair, int part)>;

// One row per kept pair, rows[k] = {pair index} in index order, never packed (sample_packing is ignored: the
// loss compares whole sequences). Row length: the longer side cut to sequence_len. A pair is dropped when
// either side is longer than sequence_len under OverlongPolicy::Drop (dropped_overlong), when either side
// keeps no trained token, e.g. a prompt that fills sequence_len (dropped_untrained), or when both sides'
// ids are equal once cut (dropped_identical: no preference left). samples_in counts pairs; tokens and
// trained_tokens both sides. Fills pair_tokens. InputError when sequence_len or micro_batch_size is 0.
// plan_batches() then takes row_lengths as they are; with sample_packing off it groups pairs by length.
RowPlan plan_pair_rows(std::size_t count, const PairSource& pair_at, const PackingOptions& options);

// account_batches() for a plan_pair_rows() plan: each row collates to two batch rows (chosen, rejected)
// of the batch's width. logic_error when `plan` has no pair_tokens for its rows.
void account_pair_batches(PackingReport& report, const std::vector<std::vector<std::size_t>>& batches,
                          const RowPlan& plan, const PackingOptions& options);

// The 2·B rows of a batch of B pairs: the chosen sides in batch order, then the rejected sides in the same
// order, so rows b and B + b are one pair. Made by collate(), so one width for all (the longest side, or
// sequence_len with pad_to_sequence_len), each side cut to sequence_len, the same padding and labels.
// logic_error when a row of `rows` holds other than one pair (rows not made by plan_pair_rows).
Batch collate_pairs(const std::vector<std::vector<std::size_t>>& rows, const std::vector<std::size_t>& batch,
                    const PairSource& pair_at, TokenId pad_id, const PackingOptions& options);

}  // namespace qtune
