// qtune::Tokenizer: the one interface every tokenizer format implements (HF tokenizer.json, sentencepiece
// .model), and load_tokenizer() that picks the format from a model folder or file.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace qtune {

using TokenId = int32_t;

// Token ids with, for each token, the byte offset in the input text where it begins.
struct Encoding {
  std::vector<TokenId> ids;
  std::vector<uint32_t> offsets;  // same length as ids, non-decreasing
};

// Text <-> token ids. Implementations are immutable after loading and safe to share across threads.
class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Ids for `text` without BOS/EOS. When `parse_special` is true, added/special tokens written in the
  // text (e.g. "<|eot_id|>") become their ids, as HF tokenizers do; when false they are ordinary text.
  virtual std::vector<TokenId> encode(std::string_view text, bool parse_special = true) const = 0;

  // encode() plus where each token starts in `text`. Chat templates tokenize a whole rendered
  // conversation once and use the offsets to know which tokens belong to which turn.
  virtual Encoding encode_with_offsets(std::string_view text, bool parse_special = true) const = 0;

  // encode() plus what the format's post-processor adds around a single sequence (BOS, EOS, ...).
  virtual std::vector<TokenId> encode_with_special_tokens(std::string_view text) const = 0;

  // Text for `ids`; special tokens are dropped when `skip_special` is true. Invalid UTF-8 produced by
  // partial byte sequences becomes U+FFFD, as HF does.
  virtual std::string decode(const std::vector<TokenId>& ids, bool skip_special = false) const = 0;

  // Number of ids, including added tokens (max id + 1).
  virtual TokenId vocab_size() const = 0;
  // The id of a token written exactly as in the vocabulary or the added tokens, if any.
  virtual std::optional<TokenId> token_to_id(std::string_view token) const = 0;
  // The vocabulary entry of `id` (as stored, e.g. "Ġthe" or "▁the"); empty when out of range.
  virtual std::string id_to_token(TokenId id) const = 0;
  // True for special tokens (control tokens such as BOS/EOS/<|im_start|>).
  virtual bool is_special(TokenId id) const = 0;
};

// Loads `path`: a tokenizer.json file, a sentencepiece .model file, or a folder holding either
// (tokenizer.json preferred). Throws InputError naming the file when it is missing or malformed.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path);

}  // namespace qtune
