// qtune::AddedTokens: the "added_tokens" of tokenizer.json (BOS/EOS, <|im_start|>, ...) found in raw
// text before normalization, leftmost-longest, with their lstrip/rstrip/single_word options.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

namespace qtune {

struct AddedToken {
  int32_t id;
  std::string content;
  bool special;      // control token: skipped by decode(skip_special), not matched when parse_special is off
  bool lstrip;       // swallows whitespace on its left
  bool rstrip;       // swallows whitespace on its right
  bool single_word;  // matches only when not inside a word
};

class AddedTokens {
 public:
  AddedTokens() = default;
  AddedTokens(const nlohmann::json& added_tokens, const std::string& where);

  // One cut of the text: either plain text [begin, end) or an added token.
  struct Piece {
    std::size_t begin, end;
    int32_t token_id;  // -1 for plain text
  };
  // Splits `text` into plain pieces and added tokens. Special tokens are matched only when
  // `include_special` is true.
  std::vector<Piece> split(std::string_view text, bool include_special) const;

  const std::vector<AddedToken>& tokens() const { return tokens_; }
  const AddedToken* find(int32_t id) const;

 private:
  // The added token that matches at `pos` (longest first), or nullptr.
  const AddedToken* match_at(std::string_view text, std::size_t pos, bool include_special) const;

  std::vector<AddedToken> tokens_;
  std::unordered_map<int32_t, std::size_t> by_id_;
  std::vector<std::vector<std::size_t>> by_first_byte_;  // indices into tokens_, longest first
  int single_first_byte_ = -1;  // the one byte every token starts with, or -1
};

}  // namespace qtune
