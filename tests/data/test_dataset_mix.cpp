// The mix of datasets and the train/validation split that prepare_data() runs: SplitMix64 against its published
// sequence, config order without shuffling, one seeded shuffle shared by the mix and the split, the split's
// sizes (fraction rounded up, or a count) and its errors; and prepare_data() itself putting the records there.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>

#include "core/error.h"
#include "data/byte_tokenizer.h"
#include "data/dataset_mix.h"
#include "data/prepare_data.h"
#include "tests/support/files.h"

namespace qtune {
namespace {

std::vector<RecordIndex> concatenated(const MixedRecords& mixed) {
  std::vector<RecordIndex> all = mixed.validation;
  all.insert(all.end(), mixed.train.begin(), mixed.train.end());
  return all;
}

TEST(DatasetMix, SplitMix64MatchesTheReferenceSequence) {
  SplitMix64 rng(0);  // published test vector of splitmix64.c
  EXPECT_EQ(rng.next(), 0xE220A8397B1DCDAFULL);
  EXPECT_EQ(rng.next(), 0x6E789E6AA1B965F4ULL);
  EXPECT_EQ(rng.next(), 0x06C45D188009454FULL);
  SplitMix64 bounded(7);
  for (int i = 0; i < 1000; ++i) EXPECT_LT(bounded.below(3), 3u);
}

TEST(DatasetMix, WithoutShuffleOrValidationRecordsStayInConfigOrder) {
  const MixedRecords mixed = mix_and_split({3, 2}, /*shuffle=*/false, 0, 5);
  EXPECT_TRUE(mixed.validation.empty());
  EXPECT_EQ(mixed.train, (std::vector<RecordIndex>{{0, 0}, {0, 1}, {0, 2}, {1, 0}, {1, 1}}));
}

TEST(DatasetMix, OneSeededShuffleFeedsTheMixAndTheSplit) {
  const std::vector<std::size_t> sizes = {50, 30, 20};
  const MixedRecords x = mix_and_split(sizes, true, 0, 5);
  EXPECT_EQ(x.train, mix_and_split(sizes, true, 0, 5).train);
  EXPECT_NE(x.train, mix_and_split(sizes, true, 0, 6).train);
  const std::vector<RecordIndex> in_order = mix_and_split(sizes, false, 0, 5).train;
  EXPECT_NE(x.train, in_order);
  // The shuffle is shuffled_indices(n, seed) over the records in config order.
  const std::vector<std::size_t> order = shuffled_indices(100, 5);
  for (std::size_t i = 0; i < 100; ++i) EXPECT_EQ(x.train[i], in_order[order[i]]) << i;

  // Splitting takes the first N of that same order, shuffle_merged_datasets or not.
  for (bool shuffle : {true, false}) {
    const MixedRecords split = mix_and_split(sizes, shuffle, 0.1, 5);
    EXPECT_EQ(split.validation.size(), 10u);
    EXPECT_EQ(split.train.size(), 90u);
    EXPECT_EQ(concatenated(split), x.train);
  }
  EXPECT_NE(mix_and_split(sizes, true, 0.1, 6).validation, mix_and_split(sizes, true, 0.1, 5).validation);
  std::vector<RecordIndex> all = concatenated(mix_and_split(sizes, true, 7, 9));
  std::sort(all.begin(), all.end());
  EXPECT_EQ(all, in_order);  // a partition of every record
}

TEST(DatasetMix, ValidationSizeIsAFractionRoundedUpOrACount) {
  EXPECT_EQ(mix_and_split({10}, true, 0.25, 1).validation.size(), 3u);  // rounded up, like HF
  EXPECT_EQ(mix_and_split({10}, true, 7, 1).validation.size(), 7u);
  EXPECT_EQ(mix_and_split({10}, true, 1, 1).validation.size(), 1u);  // 1 is a count, not 100%
  EXPECT_EQ(mix_and_split({4, 6}, false, 0.05, 1).validation.size(), 1u);
  for (double bad : {-0.1, 1.5, 10.0, 0.99, std::nan("")}) {
    SCOPED_TRACE(bad);
    EXPECT_THROW(mix_and_split({10}, true, bad, 1), InputError);
  }
}

// prepare_data() puts record r of dataset d where mix_and_split() says: completion texts "d:r" read back
// through the byte tokenizer.
TEST(DatasetMix, PrepareDataTrainsAndValidatesOnTheMixedRecords) {
  const std::string dir = test::temp_dir("dataset_mix_prepare");
  write_byte_tokenizer(dir + "/model");
  DataConfig config;
  const std::vector<std::size_t> sizes = {7, 5};
  for (std::size_t d = 0; d < sizes.size(); ++d) {
    const std::string path = dir + "/d" + std::to_string(d) + ".jsonl";
    std::ofstream out(path);
    for (std::size_t r = 0; r < sizes[d]; ++r) out << R"({"text": ")" << d << ":" << r << "\"}\n";
    DatasetSpec spec;
    spec.path = path;
    spec.type = DatasetType::completion;
    config.datasets.push_back(spec);
  }
  config.val_set_size = 3;
  config.seed = 11;
  const PreparedData data = prepare_data(config, dir + "/model");
  // The text of a sample: the byte tokenizer's ids below 256 are the bytes (then comes EOS).
  auto text = [](const SampleSet& set, std::size_t i) {
    const SampleView v = set.get(i);
    std::string s;
    for (std::size_t t = 0; t < v.length; ++t)
      if (v.ids[t] < 256) s += static_cast<char>(v.ids[t]);
    return s;
  };
  const MixedRecords expected = mix_and_split(sizes, config.shuffle, config.val_set_size, config.seed);
  auto name = [](const RecordIndex& r) { return std::to_string(r.first) + ":" + std::to_string(r.second); };
  ASSERT_EQ(data.train.size(), expected.train.size());
  ASSERT_EQ(data.validation.size(), expected.validation.size());
  for (std::size_t i = 0; i < expected.train.size(); ++i) EXPECT_EQ(text(data.train, i), name(expected.train[i])) << i;
  for (std::size_t i = 0; i < expected.validation.size(); ++i) EXPECT_EQ(text(data.validation, i), name(expected.validation[i])) << i;
}

}  // namespace
}  // namespace qtune
