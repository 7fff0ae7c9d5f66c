// The batch source training, validation and reference scoring use: W ranks × b rows share out exactly the
// micro-batches of 1 rank × W·b rows (what makes data parallelism exact), every epoch covers each row once in
// its own order, a pass gives each rank whole batches in turn, collation of samples and pairs from the sample
// set, the epoch report's padding, and the errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <set>
#include <stdexcept>

#include "core/error.h"
#include "data/batch_source.h"
#include "tests/data/packing_fixtures.h"

namespace qtune {
namespace {

using test::options;

// A sample set over one store of `samples` (pairs: chosen, rejected, chosen, ...), in store order.
SampleSet sample_set(const std::vector<TokenizedSample>& samples, bool pairs) {
  SampleSet set;
  set.add_store(std::make_shared<const TokenStore>(TokenStore::from_samples(samples, pairs ? 2 : 1)));
  for (std::size_t r = 0; r < samples.size() / (pairs ? 2 : 1); ++r) set.add(0, r);
  return set;
}

std::vector<TokenizedSample> flattened(const std::vector<TokenizedPair>& pairs) {
  std::vector<TokenizedSample> sides;
  for (const auto& p : pairs) {
    sides.push_back(p.chosen);
    sides.push_back(p.rejected);
  }
  return sides;
}

// 200 samples or 200 pairs, some cut or dropped under sequence_len 32.
struct Sets {
  SampleSet samples = sample_set(test::random_samples(200, 48, 4), false);
  SampleSet pairs = sample_set(flattened(test::random_pairs(200, 5)), true);
  const SampleSet& of(bool is_pairs) const { return is_pairs ? pairs : samples; }
};
const Sets& sets() {
  static const Sets s;
  return s;
}

struct Case {
  bool pairs, packing, pad;
};
const Case kCases[] = {{false, true, false}, {false, false, false}, {false, false, true}, {true, false, false}, {true, false, true}};

PackingOptions case_options(const Case& c, std::size_t micro_batch_size) {
  PackingOptions o = options(32, c.packing, micro_batch_size, 11);
  o.pad_to_sequence_len = c.pad;
  return o;
}

TEST(BatchSource, RanksShareOutTheMicroBatchesOfOneRankWithTheirRows) {
  for (const Case& c : kCases)
    for (int world : {2, 3})
      for (std::size_t b : {1, 2}) {
        SCOPED_TRACE(::testing::Message() << "pairs " << c.pairs << " packing " << c.packing << " pad " << c.pad << " world " << world << " b " << b);
        const SampleSet& set = sets().of(c.pairs);
        BatchSource one(set, c.pairs, case_options(c, b * world));
        std::vector<BatchSource> ranks;
        for (int r = 0; r < world; ++r) ranks.emplace_back(set, c.pairs, case_options(c, b), r, world);
        ASSERT_GT(one.per_epoch(), 2u);
        for (const auto& rank : ranks) ASSERT_EQ(rank.per_epoch(), one.per_epoch());
        for (int64_t m = 0; m < static_cast<int64_t>(2 * one.per_epoch() + 1); ++m) {
          std::vector<std::size_t> joined;
          for (auto& rank : ranks) {
            const std::vector<std::size_t> rows = rank.rows_of(m);
            EXPECT_LE(rows.size(), b);
            joined.insert(joined.end(), rows.begin(), rows.end());
          }
          ASSERT_EQ(joined, one.rows_of(m)) << "micro-batch " << m;
        }
      }
}

TEST(BatchSource, EveryEpochCoversEachRowOnceInItsOwnOrder) {
  for (const Case& c : kCases) {
    SCOPED_TRACE(::testing::Message() << "pairs " << c.pairs << " packing " << c.packing);
    BatchSource source(sets().of(c.pairs), c.pairs, case_options(c, 3));
    const std::size_t n = source.per_epoch();
    ASSERT_EQ(n, (source.plan().rows.size() + 2) / 3);
    std::vector<std::vector<std::size_t>> epochs(3);
    for (int64_t m = 0; m < static_cast<int64_t>(3 * n); ++m) {
      const std::vector<std::size_t> rows = source.rows_of(m);
      epochs[static_cast<std::size_t>(m) / n].insert(epochs[static_cast<std::size_t>(m) / n].end(), rows.begin(), rows.end());
    }
    for (std::vector<std::size_t> epoch : epochs) {
      std::sort(epoch.begin(), epoch.end());
      ASSERT_EQ(epoch.size(), source.plan().rows.size());
      for (std::size_t i = 0; i < epoch.size(); ++i) EXPECT_EQ(epoch[i], i);
    }
    EXPECT_NE(epochs[0], epochs[1]);
    // Asking again, out of order, gives the same micro-batches.
    const std::vector<std::size_t> later = source.rows_of(static_cast<int64_t>(2 * n));
    source.rows_of(0);
    EXPECT_EQ(source.rows_of(static_cast<int64_t>(2 * n)), later);
  }
}

TEST(BatchSource, APassGivesEachRankWholeBatchesInTurn) {
  for (const Case& c : kCases)
    for (int world : {1, 2, 3}) {
      SCOPED_TRACE(::testing::Message() << "pairs " << c.pairs << " packing " << c.packing << " world " << world);
      const SampleSet& set = sets().of(c.pairs);
      const auto all = BatchSource(set, c.pairs, case_options(c, 2)).pass();
      EXPECT_EQ(all, plan_batches(BatchSource(set, c.pairs, case_options(c, 2)).plan().row_lengths, case_options(c, 2), 0));
      for (int r = 0; r < world; ++r) {
        const auto mine = BatchSource(set, c.pairs, case_options(c, 2), r, world).pass();
        ASSERT_EQ(mine.size(), (all.size() + static_cast<std::size_t>(world - r) - 1) / static_cast<std::size_t>(world));
        for (std::size_t k = 0; k < mine.size(); ++k) EXPECT_EQ(mine[k], all[static_cast<std::size_t>(r) + k * static_cast<std::size_t>(world)]);
      }
    }
}

TEST(BatchSource, CollatesTheRowsOfItsSampleSet) {
  const auto samples = test::random_samples(40, 20, 8);
  const SampleSet set = sample_set(samples, false);
  const PackingOptions o = options(16, true, 2);
  BatchSource source(set, false, o);
  const std::vector<std::size_t> rows = source.rows_of(0);
  const Batch b = source.collate(rows);
  const Batch expected = collate(source.plan().rows, rows, [&](std::size_t i) { return view_of(samples.at(i)); }, 0, o);
  EXPECT_EQ(b.input_ids, expected.input_ids);
  EXPECT_EQ(b.labels, expected.labels);
  EXPECT_EQ(b.segment_ids, expected.segment_ids);
  EXPECT_EQ(b.position_ids, expected.position_ids);
  EXPECT_THROW(source.pairs_of(rows), std::logic_error);

  // Pairs: 2·B rows, chosen sides first; pairs_of names the pair of each row.
  const std::vector<TokenizedPair> pairs = {{test::side({1, 2}, {3, 4}), test::side({1, 2}, {5})},
                                            {test::side({6}, {7, 8, 9}), test::side({6}, {10, 11})}};
  const SampleSet pair_set = sample_set(flattened(pairs), true);
  BatchSource pair_source(pair_set, true, options(8, false, 2));
  const std::vector<std::size_t> both = {1, 0};
  const std::vector<std::size_t> named = pair_source.pairs_of(both);
  const Batch p = pair_source.collate(both);
  ASSERT_EQ(p.rows, 4u);
  for (std::size_t k = 0; k < 2; ++k) {
    const TokenizedPair& pair = pairs.at(named[k]);
    EXPECT_EQ(p.input_ids[k * p.width], pair.chosen.input_ids[0]);
    EXPECT_EQ(p.input_ids[(2 + k) * p.width + pair.rejected.input_ids.size() - 1], pair.rejected.input_ids.back());
  }
}

TEST(BatchSource, EpochReportAccountsThePaddingOfTheFirstEpoch) {
  for (const Case& c : kCases) {
    SCOPED_TRACE(::testing::Message() << "pairs " << c.pairs << " packing " << c.packing << " pad " << c.pad);
    const PackingOptions o = case_options(c, 3);
    BatchSource source(sets().of(c.pairs), c.pairs, o);
    const PackingReport r = epoch_report(source.plan(), c.pairs, o);
    std::size_t tokens = 0, padding = 0;
    for (const auto& rows : source.pass()) {
      const Batch b = source.collate(rows);
      for (int32_t segment : b.segment_ids) (segment != 0 ? tokens : padding) += 1;
    }
    EXPECT_EQ(r.batches, source.per_epoch());
    EXPECT_EQ(r.tokens, tokens);
    EXPECT_EQ(r.padding_tokens, padding);
    EXPECT_EQ(r.rows, source.report().rows);
  }
}

TEST(BatchSource, RejectsBadRanksSizesAndAnEmptyPlan) {
  const SampleSet& set = sets().samples;
  EXPECT_THROW(BatchSource(set, false, options(32, true), 2, 2), std::logic_error);
  EXPECT_THROW(BatchSource(set, false, options(32, true), -1, 2), std::logic_error);
  EXPECT_THROW(BatchSource(set, false, options(32, true, 0)), InputError);
  EXPECT_THROW(BatchSource(set, false, options(0, true)), InputError);
  const SampleSet empty;
  BatchSource none(empty, false, options(32, true));
  EXPECT_EQ(none.per_epoch(), 0u);
  EXPECT_TRUE(none.pass().empty());
  EXPECT_THROW(none.rows_of(0), std::logic_error);
}

}  // namespace
}  // namespace qtune
