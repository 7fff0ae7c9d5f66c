// qtune::BpeModel: the BPE model of HF tokenizer.json (vocab + ranked merges) with the options Llama,
// Mistral and Qwen files use: byte_fallback, unk/fuse_unk, ignore_merges.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

namespace qtune {

class BpeModel {
 public:
  // `model` is tokenizer.json's "model" object; `where` names the file for errors.
  BpeModel(const nlohmann::json& model, const std::string& where);
  BpeModel(const BpeModel&) = delete;  // token_to_id_ points into id_to_token_
  BpeModel& operator=(const BpeModel&) = delete;

  // Appends the ids of one pre-tokenized word (a UTF-8 string) to `ids`, and to `starts` the byte
  // offset in `word` where each token begins.
  void encode_word(std::string_view word, std::vector<int32_t>& ids, std::vector<uint32_t>& starts) const;

  int32_t vocab_size() const { return static_cast<int32_t>(id_to_token_.size()); }
  // -1 when absent.
  int32_t token_to_id(std::string_view token) const;
  const std::string& id_to_token(int32_t id) const { return id_to_token_[id]; }
  bool byte_fallback() const { return byte_fallback_; }

 private:
  struct Merge {
    int32_t rank;
    int32_t merged_id;
  };
  static uint64_t pair_key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
  }
  // Initial symbols of `word`: one per code point (or per byte with byte_fallback), unknowns as unk.
  void initial_symbols(std::string_view word, std::vector<int32_t>& symbols, std::vector<uint32_t>& starts) const;
  void merge_all(std::vector<int32_t>& symbols, std::vector<uint32_t>& starts) const;

  // Views into id_to_token_'s strings, which never move after loading (so lookups need no allocation).
  std::unordered_map<std::string_view, int32_t> token_to_id_;
  std::vector<std::string> id_to_token_;
  std::unordered_map<uint64_t, Merge> merges_;
  int32_t unk_id_ = -1;
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  int32_t byte_ids_[256];  // ids of "<0xXX>" tokens when byte_fallback, else -1
};

}  // namespace qtune
