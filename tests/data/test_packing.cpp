// Packing and batching: first-fit-decreasing against a hand packing, drop/truncate accounting, per-seed
// batch orders, length grouping's padding saving, and collated ids/labels/positions/segments cell by cell;
// the same for preference pairs (drop reasons, chosen-then-rejected batch layout, totals).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

#include "core/error.h"
#include "data/dataset_mix.h"
#include "data/packing.h"
#include "tests/data/packing_fixtures.h"

namespace qtune {
namespace {

using test::make_sample;
using test::options;
using test::random_pairs;
using test::random_samples;
using test::run_of;
using test::side;

SampleSource source_of(const std::vector<TokenizedSample>& samples) {
  return [&samples](std::size_t i) { return view_of(samples.at(i)); };
}

TEST(PackingPolicy, ParsesAndNamesTheKey) {
  EXPECT_EQ(parse_overlong_policy("truncate", "cfg.yaml"), OverlongPolicy::Truncate);
  EXPECT_EQ(parse_overlong_policy("drop", "cfg.yaml"), OverlongPolicy::Drop);
  try {
    parse_overlong_policy("raise", "cfg.yaml");
    FAIL() << "no InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("cfg.yaml: overlong_samples"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("'raise'"), std::string::npos) << e.what();
  }
}

TEST(PackingFfd, MatchesHandComputedPacking) {
  // Decreasing: 7(#2) 6(#5) 5(#0) 4(#4) 3(#1) 2(#3) 1(#6) into bins of 10:
  // 7 -> A(3 left); 6 -> B(4); 5 -> C(5); 4 -> B(0); 3 -> A(0); 2 -> C(3); 1 -> C(2).
  const std::vector<std::vector<std::size_t>> expected = {{2, 1}, {5, 4}, {0, 3, 6}};
  EXPECT_EQ(first_fit_decreasing({5, 3, 7, 2, 4, 6, 1}, 10), expected);
}

TEST(PackingFfd, BreaksTiesByIndex) {
  const std::vector<std::vector<std::size_t>> expected = {{0, 1}, {2, 3}, {4}};
  EXPECT_EQ(first_fit_decreasing({4, 4, 4, 4, 4}, 8), expected);
  EXPECT_TRUE(first_fit_decreasing({}, 8).empty());
}

TEST(PackingPlan, EverySampleOnceAndNoRowOverSequenceLen) {
  const std::size_t seq = 256;
  const auto samples = random_samples(500, 300, 1);  // some longer than seq: truncated
  const RowPlan plan = plan_rows(samples.size(), source_of(samples), options(seq, true));

  std::vector<int> placed(samples.size(), 0);
  std::size_t total = 0;
  ASSERT_EQ(plan.rows.size(), plan.row_lengths.size());
  for (std::size_t r = 0; r < plan.rows.size(); ++r) {
    std::size_t length = 0;
    for (std::size_t i : plan.rows[r]) {
      ++placed.at(i);
      length += std::min(samples[i].input_ids.size(), seq);
    }
    EXPECT_EQ(length, plan.row_lengths[r]);
    EXPECT_LE(length, seq) << "row " << r;
    total += length;
  }
  for (std::size_t i = 0; i < samples.size(); ++i) EXPECT_EQ(placed[i], 1) << "sample " << i;
  EXPECT_EQ(plan.report.samples_in, 500u);
  EXPECT_EQ(plan.report.rows, plan.rows.size());
  EXPECT_EQ(plan.report.tokens, total);
  EXPECT_GT(plan.report.truncated, 0u);
  // FFD uses at most 11/9 OPT + 6/9 bins (Dosa 2007); OPT >= total / seq.
  const double lower_bound = std::ceil(static_cast<double>(total) / seq);
  EXPECT_LE(static_cast<double>(plan.rows.size()), 11.0 / 9.0 * lower_bound + 1) << "lower bound " << lower_bound;
}

TEST(PackingPlan, WithoutPackingEachSampleIsARowInOrder) {
  const auto samples = random_samples(20, 50, 2);
  const RowPlan plan = plan_rows(samples.size(), source_of(samples), options(64, false));
  ASSERT_EQ(plan.rows.size(), 20u);
  for (std::size_t i = 0; i < 20; ++i) {
    EXPECT_EQ(plan.rows[i], std::vector<std::size_t>{i});
    EXPECT_EQ(plan.row_lengths[i], samples[i].input_ids.size());
  }
}

TEST(PackingPlan, TruncatesOrDropsOverlongSamples) {
  std::vector<TokenizedSample> samples = {make_sample(0, 5, 1), make_sample(1, 12, 1), make_sample(2, 8, 1),
                                          make_sample(3, 9, 2)};
  PackingOptions o = options(8, true);
  RowPlan truncated = plan_rows(samples.size(), source_of(samples), o);
  EXPECT_EQ(truncated.report.truncated, 2u);  // 12 and 9; 8 fits exactly
  EXPECT_EQ(truncated.report.dropped_overlong, 0u);
  EXPECT_EQ(truncated.report.tokens, 5u + 8 + 8 + 8);
  EXPECT_EQ(truncated.report.trained_tokens, 4u + 7 + 7 + 6);  // position 0 never counts; #3 starts at 2

  o.overlong = OverlongPolicy::Drop;
  RowPlan dropped = plan_rows(samples.size(), source_of(samples), o);
  EXPECT_EQ(dropped.report.truncated, 0u);
  EXPECT_EQ(dropped.report.dropped_overlong, 2u);
  EXPECT_EQ(dropped.report.tokens, 5u + 8);
  std::set<std::size_t> kept;
  for (const auto& row : dropped.rows) kept.insert(row.begin(), row.end());
  EXPECT_EQ(kept, (std::set<std::size_t>{0, 2}));
}

TEST(PackingPlan, DropsAndCountsSamplesWithoutTrainedTokens) {
  std::vector<TokenizedSample> samples = {
      make_sample(0, 6, 6),   // no label at all
      make_sample(1, 10, 9),  // its only trained token lies past sequence_len 8
      make_sample(2, 6, 0),   // trained only from 0 on: positions 1.. still count
      make_sample(3, 1, 0),   // a single token: its label is never a target
      make_sample(4, 0, 0),   // empty
  };
  const RowPlan plan = plan_rows(samples.size(), source_of(samples), options(8, true));
  EXPECT_EQ(plan.report.dropped_untrained, 4u);
  EXPECT_EQ(plan.report.truncated, 0u);  // the cut sample was dropped, not kept truncated
  ASSERT_EQ(plan.rows.size(), 1u);
  EXPECT_EQ(plan.rows[0], std::vector<std::size_t>{2});
  EXPECT_EQ(plan.report.trained_tokens, 5u);
}

TEST(PackingPlan, RejectsZeroSizes) {
  EXPECT_THROW(plan_rows(std::vector<SampleShape>{}, options(0, true)), InputError);
  EXPECT_THROW(plan_batches({1, 2}, options(8, false, 0), 0), InputError);
}

std::vector<std::size_t> flatten(const std::vector<std::vector<std::size_t>>& batches) {
  std::vector<std::size_t> all;
  for (const auto& b : batches) all.insert(all.end(), b.begin(), b.end());
  return all;
}

TEST(PackingBatches, DeterministicPerSeedAndDifferentAcrossSeedsAndEpochs) {
  std::vector<std::size_t> lengths;
  for (std::size_t i = 0; i < 64; ++i) lengths.push_back(10 + (i * 37) % 50);
  for (bool packing : {true, false}) {
    SCOPED_TRACE(packing ? "packed" : "grouped");
    const auto a = plan_batches(lengths, options(64, packing, 4, 7), 0);
    EXPECT_EQ(a, plan_batches(lengths, options(64, packing, 4, 7), 0));
    EXPECT_NE(a, plan_batches(lengths, options(64, packing, 4, 8), 0));
    EXPECT_NE(a, plan_batches(lengths, options(64, packing, 4, 7), 1));
    std::vector<std::size_t> all = flatten(a);
    std::sort(all.begin(), all.end());
    std::vector<std::size_t> expected(64);
    std::iota(expected.begin(), expected.end(), std::size_t{0});
    EXPECT_EQ(all, expected);
  }
}

TEST(PackingBatches, LengthGroupingReducesPadding) {
  // Skewed: 90% short chats, 10% long documents.
  SplitMix64 rng(3);
  std::vector<std::size_t> lengths;
  for (std::size_t i = 0; i < 400; ++i) lengths.push_back(i % 10 == 0 ? 400 + rng.below(100) : 10 + rng.below(30));
  const PackingOptions o = options(512, false, 8);

  PackingReport grouped, random;
  account_batches(grouped, plan_batches(lengths, o, 0), lengths, o);
  std::vector<std::vector<std::size_t>> random_batches;
  const auto order = shuffled_indices(lengths.size(), 99);
  for (std::size_t b = 0; b < order.size(); b += 8)
    random_batches.emplace_back(order.begin() + b, order.begin() + std::min(order.size(), b + 8));
  account_batches(random, random_batches, lengths, o);

  EXPECT_EQ(grouped.batches, 50u);
  EXPECT_LT(grouped.padding_tokens * 4, random.padding_tokens)
      << "grouped " << grouped.padding_tokens << " vs random " << random.padding_tokens;
  EXPECT_GT(grouped.fill_ratio, random.fill_ratio);
}

TEST(PackingBatches, MicroBatchOneAndFinalPartialBatch) {
  const std::vector<std::size_t> lengths = {5, 9, 3, 7, 1, 8, 2, 6, 4, 10};
  for (bool packing : {true, false}) {
    SCOPED_TRACE(packing ? "packed" : "grouped");
    const auto ones = plan_batches(lengths, options(16, packing, 1), 0);
    ASSERT_EQ(ones.size(), 10u);
    for (const auto& b : ones) EXPECT_EQ(b.size(), 1u);

    const auto fours = plan_batches(lengths, options(16, packing, 4), 0);
    std::multiset<std::size_t> sizes;
    for (const auto& b : fours) sizes.insert(b.size());
    EXPECT_EQ(sizes, (std::multiset<std::size_t>{4, 4, 2}));
    if (packing) {
      EXPECT_EQ(fours.back().size(), 2u);
    }
    std::set<std::size_t> seen;
    for (std::size_t r : flatten(fours)) EXPECT_TRUE(seen.insert(r).second) << "row " << r << " twice";
    EXPECT_EQ(seen.size(), 10u);
  }
  // Grouped: each batch holds neighbours in length order (10 9 8 7 | 6 5 4 3 | 2 1).
  std::set<std::set<std::size_t>> groups;
  for (const auto& b : plan_batches(lengths, options(16, false, 4), 0)) {
    std::set<std::size_t> g;
    for (std::size_t r : b) g.insert(lengths[r]);
    groups.insert(g);
  }
  EXPECT_EQ(groups, (std::set<std::set<std::size_t>>{{10, 9, 8, 7}, {6, 5, 4, 3}, {2, 1}}));
}

TEST(PackingCollate, PackedRowsPositionsSegmentsPaddingAndBoundaryLabels) {
  // Row 0: sample 0 (3 tokens, trained from 1) then sample 1 (2 tokens, all labelled); row 1: sample 2.
  std::vector<TokenizedSample> samples = {make_sample(0, 3, 1), make_sample(1, 2, 0), make_sample(2, 4, 2)};
  const std::vector<std::vector<std::size_t>> rows = {{0, 1}, {2}};
  const Batch b = collate(rows, {0, 1}, source_of(samples), /*pad_id=*/-1, options(8, true, 2));
  ASSERT_EQ(b.rows, 2u);
  ASSERT_EQ(b.width, 5u);
  const int I = kIgnoreLabel;
  EXPECT_EQ(b.input_ids, (std::vector<TokenId>{0, 1, 2, 100, 101, /**/ 200, 201, 202, 203, -1}));
  // Sample 1's first label (100) would be predicted from sample 0's last token: -100.
  EXPECT_EQ(b.labels, (std::vector<TokenId>{I, 1, 2, I, 101, /**/ I, I, 202, 203, I}));
  EXPECT_EQ(b.position_ids, (std::vector<int32_t>{0, 1, 2, 0, 1, /**/ 0, 1, 2, 3, 0}));
  EXPECT_EQ(b.segment_ids, (std::vector<int32_t>{1, 1, 1, 2, 2, /**/ 1, 1, 1, 1, 0}));
  EXPECT_EQ(b.trained_tokens, 5u);
}

TEST(PackingCollate, TruncatesAndPadsToSequenceLen) {
  std::vector<TokenizedSample> samples = {make_sample(0, 10, 1), make_sample(1, 2, 1)};
  PackingOptions o = options(6, false, 2);
  const std::vector<std::vector<std::size_t>> rows = {{0}, {1}};
  Batch b = collate(rows, {1}, source_of(samples), 0, o);
  EXPECT_EQ(b.width, 2u);
  o.pad_to_sequence_len = true;
  b = collate(rows, {0, 1}, source_of(samples), 0, o);
  ASSERT_EQ(b.width, 6u);
  EXPECT_EQ(b.input_ids, (std::vector<TokenId>{0, 1, 2, 3, 4, 5, /**/ 100, 101, 0, 0, 0, 0}));
  EXPECT_EQ(b.segment_ids, (std::vector<int32_t>{1, 1, 1, 1, 1, 1, /**/ 1, 1, 0, 0, 0, 0}));
  EXPECT_EQ(b.trained_tokens, 5u + 1);
}

TEST(PackingCollate, RejectsARowOverSequenceLen) {
  std::vector<TokenizedSample> samples = {make_sample(0, 5, 1), make_sample(1, 5, 1)};
  EXPECT_THROW(collate({{0, 1}}, {0}, source_of(samples), 0, options(8, true)), std::logic_error);
}

// The whole pipeline: every batch keeps segments apart in the labels, and the batch totals add up to the
// planning report (trained tokens are what the loss normalizes by).
TEST(PackingCollate, PipelineTotalsMatchTheReport) {
  const auto samples = random_samples(300, 200, 4);
  for (bool packing : {true, false}) {
    SCOPED_TRACE(packing ? "packed" : "grouped");
    const PackingOptions o = options(128, packing, 3);
    RowPlan plan = plan_rows(samples.size(), source_of(samples), o);
    const auto batches = plan_batches(plan.row_lengths, o, 2);
    account_batches(plan.report, batches, plan.row_lengths, o);
    std::size_t trained = 0, tokens = 0, padding = 0;
    for (const auto& batch : batches) {
      const Batch b = collate(plan.rows, batch, source_of(samples), 0, o);
      trained += b.trained_tokens;
      for (std::size_t r = 0; r < b.rows; ++r)
        for (std::size_t t = 0; t < b.width; ++t) {
          const std::size_t at = r * b.width + t;
          tokens += b.segment_ids[at] != 0;
          padding += b.segment_ids[at] == 0;
          if (t + 1 < b.width && b.segment_ids[at + 1] != b.segment_ids[at]) {
            EXPECT_EQ(b.labels[at + 1], kIgnoreLabel) << "row " << r << " t " << t + 1;
          }
        }
    }
    EXPECT_EQ(trained, plan.report.trained_tokens);
    EXPECT_EQ(tokens, plan.report.tokens);
    EXPECT_EQ(padding, plan.report.padding_tokens);
    EXPECT_EQ(plan.report.batches, batches.size());
    EXPECT_GT(plan.report.fill_ratio, packing ? 0.9 : 0.5);
  }
}

// ---- preference pairs -----------------------------------------------------------------------------

// The prompt 10, 11, ... (`prompt` tokens) with the two answers.
TokenizedPair make_preference(std::size_t prompt, const std::vector<TokenId>& chosen, const std::vector<TokenId>& rejected) {
  return {side(run_of(10, prompt), chosen), side(run_of(10, prompt), rejected)};
}

PairSource pair_source_of(const std::vector<TokenizedPair>& pairs) {
  return [&pairs](std::size_t pair, int part) { return view_of(part == 0 ? pairs.at(pair).chosen : pairs.at(pair).rejected); };
}

TEST(PairPacking, PlanCountsEachDropReasonUnderTruncateAndDrop) {
  const std::vector<TokenizedPair> pairs = {
      make_preference(3, run_of(100, 3), run_of(200, 2)),  // #0 kept: 6 and 5 tokens
      make_preference(3, run_of(100, 7), run_of(200, 2)),  // #1 chosen 10 > 8: truncated, or dropped as overlong
      make_preference(9, run_of(100, 2), run_of(200, 2)),  // #2 prompt alone over sequence_len: nothing trained
      make_preference(3, run_of(100, 2), {}),              // #3 rejected has no trained token
      make_preference(3, {100, 101, 102, 103, 104, 105, 106}, {100, 101, 102, 103, 104, 300, 301}),  // #4 same first 8
      make_preference(2, {100, 101}, {100, 101}),            // #5 identical
      make_preference(2, {100, 101, 102}, {100, 101}),       // #6 rejected a prefix of chosen: still a preference
  };
  PackingOptions o = options(8, /*packing=*/true);  // ignored for pairs
  const RowPlan truncated = plan_pair_rows(pairs.size(), pair_source_of(pairs), o);
  EXPECT_EQ(truncated.report.samples_in, 7u);
  EXPECT_EQ(truncated.report.dropped_overlong, 0u);
  EXPECT_EQ(truncated.report.dropped_untrained, 2u);  // #2, #3
  EXPECT_EQ(truncated.report.dropped_identical, 2u);  // #4, #5
  EXPECT_EQ(truncated.report.truncated, 1u);          // #1
  EXPECT_EQ(truncated.rows, (std::vector<std::vector<std::size_t>>{{0}, {1}, {6}}));
  EXPECT_EQ(truncated.row_lengths, (std::vector<std::size_t>{6, 8, 5}));
  EXPECT_EQ(truncated.pair_tokens, (std::vector<std::size_t>{6 + 5, 8 + 5, 5 + 4}));
  EXPECT_EQ(truncated.report.rows, 3u);
  EXPECT_EQ(truncated.report.tokens, 11u + 13 + 9);
  EXPECT_EQ(truncated.report.trained_tokens, (3u + 2) + (5 + 2) + (3 + 2));  // #1's chosen keeps 5 of 7

  o.overlong = OverlongPolicy::Drop;
  const RowPlan dropped = plan_pair_rows(pairs.size(), pair_source_of(pairs), o);
  EXPECT_EQ(dropped.report.dropped_overlong, 3u);   // #1, #2, #4: overlong comes first
  EXPECT_EQ(dropped.report.dropped_untrained, 1u);  // #3
  EXPECT_EQ(dropped.report.dropped_identical, 1u);  // #5
  EXPECT_EQ(dropped.report.truncated, 0u);
  EXPECT_EQ(dropped.rows, (std::vector<std::vector<std::size_t>>{{0}, {6}}));
  EXPECT_EQ(dropped.report.tokens, 11u + 9);
  EXPECT_EQ(dropped.report.trained_tokens, 5u + 5);
}

TEST(PairPacking, PromptFillingSequenceLenIsDroppedAsUntrained) {
  const std::vector<TokenizedPair> pairs = {
      make_preference(8, run_of(100, 4), run_of(200, 4)),   // prompt exactly sequence_len
      make_preference(12, run_of(100, 4), run_of(200, 1)),  // prompt longer than sequence_len
      make_preference(7, run_of(100, 4), run_of(200, 1)),   // one answer token fits on each side
  };
  const RowPlan plan = plan_pair_rows(pairs.size(), pair_source_of(pairs), options(8, false));
  EXPECT_EQ(plan.report.dropped_untrained, 2u);
  EXPECT_EQ(plan.report.dropped_overlong, 0u);
  EXPECT_EQ(plan.rows, (std::vector<std::vector<std::size_t>>{{2}}));
  EXPECT_EQ(plan.report.trained_tokens, 2u);
  EXPECT_EQ(plan.report.truncated, 1u);
}

TEST(PairPacking, AnswersThatPartAfterTheCutAreIdentical) {
  const std::vector<TokenizedPair> pairs = {make_preference(4, {100, 101, 102, 103, 104}, {100, 101, 102, 103, 999})};
  PackingReport at8 = plan_pair_rows(1, pair_source_of(pairs), options(8, false)).report;
  EXPECT_EQ(at8.dropped_identical, 1u);
  EXPECT_EQ(at8.rows, 0u);
  PackingReport at9 = plan_pair_rows(1, pair_source_of(pairs), options(9, false)).report;
  EXPECT_EQ(at9.dropped_identical, 0u);
  EXPECT_EQ(at9.rows, 1u);
}

TEST(PairPacking, CollateLaysOutChosenRowsThenRejectedRows) {
  const std::vector<TokenizedPair> pairs = {
      make_preference(2, {100, 101, 102}, {200}),                    // 5 and 3 tokens
      {side({}, {110, 111}), side({}, {210, 211, 212, 213, 214})},  // no prompt: the first label is trained data
  };
  const std::vector<std::vector<std::size_t>> rows = {{0}, {1}};
  const Batch b = collate_pairs(rows, {1, 0}, pair_source_of(pairs), /*pad_id=*/-1, options(8, false, 2));
  ASSERT_EQ(b.rows, 4u);
  ASSERT_EQ(b.width, 5u);
  const int I = kIgnoreLabel;
  // Rows: chosen #1, chosen #0, rejected #1, rejected #0.
  EXPECT_EQ(b.input_ids, (std::vector<TokenId>{110, 111, -1, -1, -1, /**/ 10, 11, 100, 101, 102,
                                               /**/ 210, 211, 212, 213, 214, /**/ 10, 11, 200, -1, -1}));
  EXPECT_EQ(b.labels, (std::vector<TokenId>{I, 111, I, I, I, /**/ I, I, 100, 101, 102,
                                            /**/ I, 211, 212, 213, 214, /**/ I, I, 200, I, I}));
  EXPECT_EQ(b.position_ids, (std::vector<int32_t>{0, 1, 0, 0, 0, /**/ 0, 1, 2, 3, 4, /**/ 0, 1, 2, 3, 4, /**/ 0, 1, 2, 0, 0}));
  EXPECT_EQ(b.segment_ids, (std::vector<int32_t>{1, 1, 0, 0, 0, /**/ 1, 1, 1, 1, 1, /**/ 1, 1, 1, 1, 1, /**/ 1, 1, 1, 0, 0}));
  EXPECT_EQ(b.trained_tokens, 1u + 3 + 4 + 1);
}

TEST(PairPacking, CollateTruncatesAndPadsToSequenceLen) {
  const std::vector<TokenizedPair> pairs = {make_preference(2, {100, 101, 102}, {200})};
  const int I = kIgnoreLabel;
  PackingOptions o = options(4, false);
  Batch b = collate_pairs({{0}}, {0}, pair_source_of(pairs), -1, o);
  ASSERT_EQ(b.width, 4u);
  EXPECT_EQ(b.input_ids, (std::vector<TokenId>{10, 11, 100, 101, /**/ 10, 11, 200, -1}));
  EXPECT_EQ(b.labels, (std::vector<TokenId>{I, I, 100, 101, /**/ I, I, 200, I}));

  o.sequence_len = 6;
  o.pad_to_sequence_len = true;
  b = collate_pairs({{0}}, {0}, pair_source_of(pairs), -1, o);
  ASSERT_EQ(b.width, 6u);
  EXPECT_EQ(b.input_ids, (std::vector<TokenId>{10, 11, 100, 101, 102, -1, /**/ 10, 11, 200, -1, -1, -1}));
  EXPECT_EQ(b.labels, (std::vector<TokenId>{I, I, 100, 101, 102, I, /**/ I, I, 200, I, I, I}));
  EXPECT_EQ(b.segment_ids, (std::vector<int32_t>{1, 1, 1, 1, 1, 0, /**/ 1, 1, 1, 0, 0, 0}));
}

TEST(PairPacking, RejectsPlansAndRowsNotMadeForPairs) {
  const std::vector<TokenizedPair> pairs = {make_preference(2, {100}, {200}), make_preference(2, {101}, {201})};
  EXPECT_THROW(collate_pairs({{0, 1}}, {0}, pair_source_of(pairs), 0, options(8, false)), std::logic_error);
  const std::vector<TokenizedSample> samples = {make_sample(0, 4, 1)};
  const RowPlan sft = plan_rows(samples.size(), source_of(samples), options(8, false));
  PackingReport report;
  EXPECT_THROW(account_pair_batches(report, {{0}}, sft, options(8, false)), std::logic_error);
  EXPECT_THROW(plan_pair_rows(2, pair_source_of(pairs), options(0, false)), InputError);
}

// Batches over the pair rows hold every kept pair once, rows b and B + b are one pair, and the batch
// totals add up to the plan's report.
TEST(PairPacking, BatchesCoverEveryKeptPairOnceAndTotalsMatchTheReport) {
  const auto pairs = random_pairs(300, 5);
  PackingOptions o = options(32, false, 3);
  for (bool pad : {false, true}) {
    SCOPED_TRACE(pad ? "padded to sequence_len" : "longest");
    o.pad_to_sequence_len = pad;
    RowPlan plan = plan_pair_rows(pairs.size(), pair_source_of(pairs), o);
    const PackingReport& r = plan.report;
    EXPECT_GT(r.truncated, 0u);
    EXPECT_GT(r.dropped_identical, 0u);
    EXPECT_EQ(r.rows + r.dropped_overlong + r.dropped_untrained + r.dropped_identical, pairs.size());

    const auto batches = plan_batches(plan.row_lengths, o, 1);
    account_pair_batches(plan.report, batches, plan, o);
    std::vector<int> seen(pairs.size(), 0);
    std::size_t trained = 0, tokens = 0, padding = 0;
    for (const auto& batch : batches) {
      const Batch b = collate_pairs(plan.rows, batch, pair_source_of(pairs), 0, o);
      ASSERT_EQ(b.rows, 2 * batch.size());
      trained += b.trained_tokens;
      for (std::size_t k = 0; k < batch.size(); ++k) {
        const std::size_t pair = plan.rows[batch[k]].at(0);
        ++seen[pair];
        EXPECT_EQ(b.input_ids[k * b.width], static_cast<TokenId>(1000 * pair)) << "chosen row " << k;
        EXPECT_EQ(b.input_ids[(batch.size() + k) * b.width], static_cast<TokenId>(1000 * pair)) << "rejected row " << k;
      }
      for (int32_t segment : b.segment_ids) (segment != 0 ? tokens : padding) += 1;
    }
    for (std::size_t k = 0; k < plan.rows.size(); ++k) EXPECT_EQ(seen[plan.rows[k][0]], 1) << "pair " << plan.rows[k][0];
    EXPECT_EQ(std::accumulate(seen.begin(), seen.end(), 0), static_cast<int>(plan.rows.size()));
    EXPECT_EQ(trained, r.trained_tokens);
    EXPECT_EQ(tokens, r.tokens);
    EXPECT_EQ(padding, r.padding_tokens);
    EXPECT_EQ(r.batches, batches.size());
  }
}

}  // namespace
}  // namespace qtune
