// qtune::TokenStore: tokenized samples in one flat layout (offsets, ids, labels), built in memory or
// memory-mapped from a cache file, plus the cache file format itself.
//
// Cache file (little-endian): "QTTOKENS" | u32 version (1) | u32 samples_per_record (1 SFT, 2 pairs) |
// u64 key | u64 samples | u64 tokens | u64 offsets[samples + 1] | i32 ids[tokens] | i32 labels[tokens].
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "data/sample_encoder.h"

namespace qtune {

class MappedFile;

class TokenStore {
 public:
  TokenStore() = default;
  TokenStore(TokenStore&&) = default;  // moving keeps the vectors' buffers, so the views stay valid
  TokenStore& operator=(TokenStore&&) = default;
  TokenStore(const TokenStore&) = delete;
  TokenStore& operator=(const TokenStore&) = delete;
  // `samples_per_record` is 2 when samples are stored as (chosen, rejected) pairs.
  static TokenStore from_samples(const std::vector<TokenizedSample>& samples, uint32_t samples_per_record = 1);

  std::size_t size() const { return samples_; }
  std::size_t total_tokens() const { return tokens_; }
  uint32_t samples_per_record() const { return samples_per_record_; }
  SampleView sample(std::size_t i) const { return {ids_ + offsets_[i], labels_ + offsets_[i], static_cast<std::size_t>(offsets_[i + 1] - offsets_[i])}; }

  // Writes the cache file atomically (temporary name, then rename).
  void save(const std::string& path, uint64_t key) const;
  // The store in `path` when it exists, is intact and was written for `key`; nullopt otherwise (the
  // caller then rebuilds it). `problem` says why a present file was not used.
  static std::optional<TokenStore> load(const std::string& path, uint64_t key, std::string* problem = nullptr);

 private:
  // Owned storage (built in memory) or a mapping (loaded); the pointers below point into one of them.
  std::vector<uint64_t> own_offsets_;
  std::vector<int32_t> own_ids_, own_labels_;
  std::shared_ptr<MappedFile> mapping_;
  const uint64_t* offsets_ = nullptr;
  const int32_t* ids_ = nullptr;
  const int32_t* labels_ = nullptr;
  std::size_t samples_ = 0, tokens_ = 0;
  uint32_t samples_per_record_ = 1;
};

}  // namespace qtune
