// Packing plan (drop/truncate, first-fit-decreasing bins), per-epoch batch order and collation; the same
// for preference pairs, one row each.
#include "data/packing.h"

#include <algorithm>
#include <numeric>
#include <stdexcept>

#include "core/error.h"
#include "data/dataset_mix.h"

namespace qtune {
namespace {

void check_options(const PackingOptions& options) {
  if (options.sequence_len == 0) input_error("sequence_len must be at least 1 (tokens per row)");
  if (options.micro_batch_size == 0) input_error("micro_batch_size must be at least 1 (rows per batch)");
}

// A seed per (seed, epoch, purpose): each input is hashed in, so neighbouring seeds or epochs share nothing
// (a plain seed + epoch would make seed s, epoch 1 replay seed s + 1, epoch 0).
std::uint64_t stream_seed(std::uint64_t seed, std::uint64_t epoch, std::uint64_t purpose) {
  std::uint64_t h = SplitMix64(seed).next();
  h = SplitMix64(h ^ epoch).next();
  return SplitMix64(h ^ purpose).next();
}

enum Stream : std::uint64_t { kPackedRowOrder = 1, kEqualLengthOrder = 2, kBatchOrder = 3 };

std::vector<std::vector<std::size_t>> chunk(const std::vector<std::size_t>& order, std::size_t size) {
  std::vector<std::vector<std::size_t>> chunks;
  chunks.reserve((order.size() + size - 1) / size);
  for (std::size_t begin = 0; begin < order.size(); begin += size)
    chunks.emplace_back(order.begin() + begin, order.begin() + std::min(order.size(), begin + size));
  return chunks;
}

// Counts why a sample (or pair) is left out; true when it is kept.
bool passes_drop_rules(PackingReport& report, bool overlong, std::size_t trained_tokens, const PackingOptions& options) {
  if (overlong && options.overlong == OverlongPolicy::Drop) {
    ++report.dropped_overlong;
    return false;
  }
  if (trained_tokens == 0) {  // nothing to learn from; would only dilute the batch
    ++report.dropped_untrained;
    return false;
  }
  return true;
}

// The rows of the kept samples (`lengths` already cut to sequence_len): bins, or one row each.
void make_rows(RowPlan& plan, const std::vector<std::size_t>& kept, const std::vector<std::size_t>& lengths,
               bool packed, std::size_t sequence_len) {
  if (packed) {
    for (const auto& bin : first_fit_decreasing(lengths, sequence_len)) {
      std::vector<std::size_t>& row = plan.rows.emplace_back();
      std::size_t length = 0;
      for (std::size_t k : bin) {
        row.push_back(kept[k]);
        length += lengths[k];
      }
      plan.row_lengths.push_back(length);
    }
  } else {
    for (std::size_t k = 0; k < kept.size(); ++k) {
      plan.rows.push_back({kept[k]});
      plan.row_lengths.push_back(lengths[k]);
    }
  }
  plan.report.rows = plan.rows.size();
}

// Batch count, padding and fill ratio when entry r of a batch is `rows_per_entry` rows of the batch's width
// holding tokens[r] real tokens together.
void account(PackingReport& report, const std::vector<std::vector<std::size_t>>& batches,
             const std::vector<std::size_t>& widths, const std::vector<std::size_t>& tokens, std::size_t rows_per_entry,
             const PackingOptions& options) {
  std::size_t real = 0, padding = 0;
  for (const auto& batch : batches) {
    std::size_t width = options.pad_to_sequence_len ? options.sequence_len : 0, sum = 0;
    for (std::size_t r : batch) {
      width = std::max(width, widths[r]);
      sum += tokens[r];
    }
    real += sum;
    padding += width * rows_per_entry * batch.size() - sum;
  }
  report.batches = batches.size();
  report.padding_tokens = padding;
  report.fill_ratio = real + padding == 0 ? 0.0 : static_cast<double>(real) / static_cast<double>(real + padding);
}

}  // namespace

OverlongPolicy parse_overlong_policy(const std::string& value, const std::string& where) {
  if (value == "truncate") return OverlongPolicy::Truncate;
  if (value == "drop") return OverlongPolicy::Drop;
  input_error("{}: overlong_samples must be truncate or drop (got '{}')", where, value);
}

SampleView view_of(const TokenizedSample& sample) {
  if (sample.input_ids.size() != sample.labels.size())
    throw std::logic_error("TokenizedSample with " + std::to_string(sample.input_ids.size()) + " ids but " +
                           std::to_string(sample.labels.size()) + " labels");
  return {sample.input_ids.data(), sample.labels.data(), sample.input_ids.size()};
}

SampleShape shape_of(const SampleView& sample, std::size_t sequence_len) {
  SampleShape shape{sample.length, 0};
  const std::size_t kept = std::min(sample.length, sequence_len);
  // Position 0 is never a target (see the label convention in the header).
  for (std::size_t t = 1; t < kept; ++t) shape.trained_tokens += sample.labels[t] != kIgnoreLabel;
  return shape;
}

std::vector<std::vector<std::size_t>> first_fit_decreasing(const std::vector<std::size_t>& lengths, std::size_t capacity) {
  const std::size_t n = lengths.size();
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return lengths[a] > lengths[b]; });

  // Max-tree over bins of the room left: bins are opened left to right and never exceed n, so the
  // leftmost leaf with enough room is the first fit (an unopened bin when none of the open ones fits).
  std::size_t leaves = 1;
  while (leaves < n) leaves *= 2;
  std::vector<std::size_t> room(2 * leaves, capacity);
  std::vector<std::vector<std::size_t>> bins;
  for (std::size_t index : order) {
    const std::size_t length = lengths[index];
    if (length > capacity)
      throw std::logic_error("first_fit_decreasing: length " + std::to_string(length) + " exceeds capacity " +
                             std::to_string(capacity));
    std::size_t node = 1;
    while (node < leaves) node = room[2 * node] >= length ? 2 * node : 2 * node + 1;
    const std::size_t bin = node - leaves;
    if (bin == bins.size()) bins.emplace_back();
    bins[bin].push_back(index);
    room[node] -= length;
    for (node /= 2; node >= 1; node /= 2) room[node] = std::max(room[2 * node], room[2 * node + 1]);
  }
  return bins;
}

RowPlan plan_rows(const std::vector<SampleShape>& samples, const PackingOptions& options) {
  check_options(options);
  RowPlan plan;
  PackingReport& report = plan.report;
  report.samples_in = samples.size();
  std::vector<std::size_t> kept, kept_lengths;
  for (std::size_t i = 0; i < samples.size(); ++i) {
    const SampleShape& s = samples[i];
    const bool overlong = s.length > options.sequence_len;
    if (!passes_drop_rules(report, overlong, s.trained_tokens, options)) continue;
    report.truncated += overlong;
    kept.push_back(i);
    kept_lengths.push_back(std::min(s.length, options.sequence_len));
    report.tokens += kept_lengths.back();
    report.trained_tokens += s.trained_tokens;
  }
  make_rows(plan, kept, kept_lengths, options.sample_packing, options.sequence_len);
  return plan;
}

RowPlan plan_rows(std::size_t count, const SampleSource& sample_at, const PackingOptions& options) {
  check_options(options);
  std::vector<SampleShape> shapes(count);
  for (std::size_t i = 0; i < count; ++i) shapes[i] = shape_of(sample_at(i), options.sequence_len);
  return plan_rows(shapes, options);
}

std::vector<std::vector<std::size_t>> plan_batches(const std::vector<std::size_t>& row_lengths,
                                                   const PackingOptions& options, std::uint64_t epoch) {
  check_options(options);
  const std::size_t n = row_lengths.size();
  if (options.sample_packing)  // packed rows are nearly full already: plain shuffle
    return chunk(shuffled_indices(n, stream_seed(options.seed, epoch, kPackedRowOrder)), options.micro_batch_size);

  // Shuffle first so that rows of equal length meet different partners each epoch, then a stable sort.
  std::vector<std::size_t> order = shuffled_indices(n, stream_seed(options.seed, epoch, kEqualLengthOrder));
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return row_lengths[a] > row_lengths[b]; });
  std::vector<std::vector<std::size_t>> grouped = chunk(order, options.micro_batch_size);
  std::vector<std::vector<std::size_t>> batches;
  batches.reserve(grouped.size());
  for (std::size_t b : shuffled_indices(grouped.size(), stream_seed(options.seed, epoch, kBatchOrder)))
    batches.push_back(std::move(grouped[b]));
  return batches;
}

void account_batches(PackingReport& report, const std::vector<std::vector<std::size_t>>& batches,
                     const std::vector<std::size_t>& row_lengths, const PackingOptions& options) {
  account(report, batches, row_lengths, row_lengths, 1, options);
}

Batch collate(const std::vector<std::vector<std::size_t>>& rows, const std::vector<std::size_t>& batch,
              const SampleSource& sample_at, TokenId pad_id, const PackingOptions& options) {
  const std::size_t seq = options.sequence_len;
  std::vector<std::vector<SampleView>> views(batch.size());
  std::size_t width = options.pad_to_sequence_len ? seq : 0;
  for (std::size_t r = 0; r < batch.size(); ++r) {
    std::size_t length = 0;
    for (std::size_t index : rows.at(batch[r])) {
      views[r].push_back(sample_at(index));
      length += std::min(views[r].back().length, seq);
    }
    if (length > seq)
      throw std::logic_error("collate: row " + std::to_string(batch[r]) + " holds " + std::to_string(length) +
                             " tokens, more than sequence_len " + std::to_string(seq));
    width = std::max(width, length);
  }

  Batch out;
  out.rows = batch.size();
  out.width = width;
  const std::size_t cells = out.rows * width;
  out.input_ids.assign(cells, pad_id);
  out.labels.assign(cells, kIgnoreLabel);
  out.position_ids.assign(cells, 0);
  out.segment_ids.assign(cells, 0);
  for (std::size_t r = 0; r < views.size(); ++r) {
    std::size_t at = r * width;
    int32_t segment = 1;
    for (const SampleView& v : views[r]) {
      const std::size_t n = std::min(v.length, seq);
      if (n == 0) continue;  // keeps segment ids dense
      std::copy(v.ids, v.ids + n, out.input_ids.begin() + at);
      std::copy(v.labels, v.labels + n, out.labels.begin() + at);
      out.labels[at] = kIgnoreLabel;  // its predecessor is another sample (or nothing)
      for (std::size_t t = 0; t < n; ++t) {
        out.position_ids[at + t] = static_cast<int32_t>(t);
        out.segment_ids[at + t] = segment;
      }
      at += n;
      ++segment;
    }
  }
  out.trained_tokens = static_cast<std::size_t>(
      std::count_if(out.labels.begin(), out.labels.end(), [](TokenId l) { return l != kIgnoreLabel; }));
  return out;
}

// ---- preference pairs ----

RowPlan plan_pair_rows(std::size_t count, const PairSource& pair_at, const PackingOptions& options) {
  check_options(options);
  const std::size_t seq = options.sequence_len;
  RowPlan plan;
  PackingReport& report = plan.report;
  report.samples_in = count;
  std::vector<std::size_t> kept, kept_lengths;
  for (std::size_t i = 0; i < count; ++i) {
    const SampleView chosen = pair_at(i, 0), rejected = pair_at(i, 1);
    const SampleShape c = shape_of(chosen, seq), r = shape_of(rejected, seq);
    const bool overlong = c.length > seq || r.length > seq;
    if (!passes_drop_rules(report, overlong, std::min(c.trained_tokens, r.trained_tokens), options)) continue;
    const std::size_t chosen_kept = std::min(c.length, seq), rejected_kept = std::min(r.length, seq);
    // Different answers can become one sequence when the cut falls before they part: no preference left.
    if (chosen_kept == rejected_kept && std::equal(chosen.ids, chosen.ids + chosen_kept, rejected.ids)) {
      ++report.dropped_identical;
      continue;
    }
    report.truncated += overlong;
    report.tokens += chosen_kept + rejected_kept;
    report.trained_tokens += c.trained_tokens + r.trained_tokens;
    kept.push_back(i);
    kept_lengths.push_back(std::max(chosen_kept, rejected_kept));
    plan.pair_tokens.push_back(chosen_kept + rejected_kept);
  }
  make_rows(plan, kept, kept_lengths, /*packed=*/false, seq);
  return plan;
}

void account_pair_batches(PackingReport& report, const std::vector<std::vector<std::size_t>>& batches,
                          const RowPlan& plan, const PackingOptions& options) {
  if (plan.pair_tokens.size() != plan.row_lengths.size())
    throw std::logic_error("account_pair_batches: the plan has " + std::to_string(plan.pair_tokens.size()) +
                           " pair token counts for " + std::to_string(plan.row_lengths.size()) +
                           " rows (not made by plan_pair_rows)");
  account(report, batches, plan.row_lengths, plan.pair_tokens, 2, options);
}

Batch collate_pairs(const std::vector<std::vector<std::size_t>>& rows, const std::vector<std::size_t>& batch,
                    const PairSource& pair_at, TokenId pad_id, const PackingOptions& options) {
  // collate() over one local row per side: side 2p + part is part `part` of pair p.
  const std::size_t pairs = batch.size();
  std::vector<std::vector<std::size_t>> sides(2 * pairs);
  for (std::size_t b = 0; b < pairs; ++b) {
    const std::vector<std::size_t>& row = rows.at(batch[b]);
    if (row.size() != 1)
      throw std::logic_error("collate_pairs: row " + std::to_string(batch[b]) + " holds " + std::to_string(row.size()) +
                             " pairs, not 1 (rows not made by plan_pair_rows)");
    sides[b] = {2 * row[0]};
    sides[pairs + b] = {2 * row[0] + 1};
  }
  std::vector<std::size_t> all(sides.size());
  std::iota(all.begin(), all.end(), std::size_t{0});
  return collate(sides, all, [&](std::size_t side) { return pair_at(side / 2, static_cast<int>(side % 2)); }, pad_id,
                 options);
}

}  // namespace qtune
