// prepare_data(): the whole data path of a training run. Reads every configured dataset, renders and
// tokenizes it with masks (all cores), caches the tokens per dataset, mixes and splits train/validation.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "data/dataset_spec.h"
#include "data/sample_encoder.h"
#include "data/token_store.h"

namespace qtune {

struct DataConfig {
  std::vector<DatasetSpec> datasets;
  std::string chat_template = "tokenizer_default";  // a built-in name, or the model's own template recognized
  MaskingOptions masking;
  double val_set_size = 0;
  uint64_t seed = 42;
  bool shuffle = true;
  std::string cache_dir;  // token caches go here; empty = no cache
  unsigned threads = 0;   // 0 = all cores
};

// Samples of several stores in training order; for preference data each entry is a (chosen, rejected) pair.
class SampleSet {
 public:
  std::size_t size() const { return order_.size(); }
  // part 0 = the sample (or chosen answer), part 1 = the rejected answer of a pair.
  SampleView get(std::size_t i, int part = 0) const {
    const auto& [store, record] = order_[i];
    return stores_[store]->sample(record * stores_[store]->samples_per_record() + part);
  }
  void add_store(std::shared_ptr<const TokenStore> store) { stores_.push_back(std::move(store)); }
  void add(uint32_t store, uint64_t record) { order_.emplace_back(store, record); }

 private:
  std::vector<std::shared_ptr<const TokenStore>> stores_;
  std::vector<std::pair<uint32_t, uint64_t>> order_;
};

struct DatasetReport {
  std::string path;
  std::size_t samples = 0, skipped = 0, tokens = 0, trained_tokens = 0;
  std::vector<std::string> skip_reasons;
  bool cache_hit = false;
  std::string cache_file;
  double seconds = 0;
};

struct PreparedData {
  SampleSet train, validation;
  bool pairs = false;  // preference data
  std::string template_name;
  std::vector<DatasetReport> datasets;
};

// `model_dir` holds the tokenizer files (tokenizer.json or tokenizer.model, tokenizer_config.json).
// Throws InputError naming the dataset file and line, or the config key, for anything wrong.
PreparedData prepare_data(const DataConfig& config, const std::string& model_dir);

}  // namespace qtune
