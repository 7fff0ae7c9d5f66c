// Added-token matching.
#include "data/added_tokens.h"

#include <algorithm>
#include <cctype>
#include <cstring>

#include "core/error.h"

namespace qtune {
namespace {

bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }
bool is_word_byte(unsigned char c) { return std::isalnum(c) || c == '_' || c >= 0x80; }

}  // namespace

AddedTokens::AddedTokens(const nlohmann::json& added_tokens, const std::string& where) : by_first_byte_(256) {
  if (added_tokens.is_null()) return;
  if (!added_tokens.is_array()) input_error("{}: added_tokens must be an array", where);
  for (const auto& entry : added_tokens) {
    if (!entry.is_object() || !entry.contains("id") || !entry["id"].is_number_integer() || !entry.contains("content") ||
        !entry["content"].is_string())
      input_error("{}: every added_tokens entry needs an integer 'id' and a string 'content'", where);
    AddedToken token{entry["id"].get<int32_t>(), entry["content"].get<std::string>(), entry.value("special", false),
                     entry.value("lstrip", false),  entry.value("rstrip", false),     entry.value("single_word", false)};
    if (token.content.empty()) input_error("{}: added token {} has empty content", where, token.id);
    by_id_[token.id] = tokens_.size();
    tokens_.push_back(std::move(token));
  }
  for (std::size_t i = 0; i < tokens_.size(); ++i) by_first_byte_[static_cast<unsigned char>(tokens_[i].content[0])].push_back(i);
  for (int b = 0; b < 256; ++b) {
    if (by_first_byte_[b].empty()) continue;
    single_first_byte_ = single_first_byte_ == -1 ? b : -2;
  }
  if (single_first_byte_ < 0) single_first_byte_ = -1;
  for (auto& bucket : by_first_byte_)
    std::stable_sort(bucket.begin(), bucket.end(), [&](std::size_t a, std::size_t b) { return tokens_[a].content.size() > tokens_[b].content.size(); });
}

const AddedToken* AddedTokens::find(int32_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &tokens_[it->second];
}

const AddedToken* AddedTokens::match_at(std::string_view text, std::size_t pos, bool include_special) const {
  for (std::size_t index : by_first_byte_[static_cast<unsigned char>(text[pos])]) {
    const AddedToken& token = tokens_[index];
    if (token.special && !include_special) continue;
    if (text.compare(pos, token.content.size(), token.content) != 0) continue;
    if (token.single_word) {
      std::size_t end = pos + token.content.size();
      if ((pos > 0 && is_word_byte(text[pos - 1])) || (end < text.size() && is_word_byte(text[end]))) continue;
    }
    return &token;
  }
  return nullptr;
}

std::vector<AddedTokens::Piece> AddedTokens::split(std::string_view text, bool include_special) const {
  std::vector<Piece> pieces;
  std::size_t plain_begin = 0;
  for (std::size_t pos = 0; pos < text.size();) {
    if (single_first_byte_ >= 0) {  // all tokens start alike (e.g. '<'): jump between candidates
      const void* hit = std::memchr(text.data() + pos, single_first_byte_, text.size() - pos);
      if (hit == nullptr) break;
      pos = static_cast<std::size_t>(static_cast<const char*>(hit) - text.data());
    }
    const AddedToken* token = tokens_.empty() ? nullptr : match_at(text, pos, include_special);
    if (token == nullptr) {
      ++pos;
      continue;
    }
    std::size_t plain_end = pos, next = pos + token->content.size();
    if (token->lstrip)
      while (plain_end > plain_begin && is_blank(text[plain_end - 1])) --plain_end;
    if (token->rstrip)
      while (next < text.size() && is_blank(text[next])) ++next;
    if (plain_end > plain_begin) pieces.push_back({plain_begin, plain_end, -1});
    pieces.push_back({plain_end, next, token->id});
    plain_begin = pos = next;
  }
  if (plain_begin < text.size()) pieces.push_back({plain_begin, text.size(), -1});
  return pieces;
}

}  // namespace qtune
