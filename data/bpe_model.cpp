// BPE encoding: initial symbols from code points, then repeatedly merge the adjacent pair with the
// lowest merge rank (leftmost first on ties) until none applies, as HF tokenizers do.
#include "data/bpe_model.h"

#include <fmt/format.h>

#include <queue>

#include "core/error.h"
#include "data/utf8.h"

namespace qtune {

BpeModel::BpeModel(const nlohmann::json& model, const std::string& where) {
  if (!model.is_object() || model.value("type", "BPE") != "BPE")
    input_error("{}: model.type must be \"BPE\" (WordPiece, Unigram and WordLevel tokenizer.json files are not supported)", where);
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (model.contains(key) && model[key].is_string() && !model[key].get<std::string>().empty())
      input_error("{}: model.{} is not supported (no Llama/Mistral/Qwen tokenizer uses it)", where, key);
  }
  if (model.contains("dropout") && model["dropout"].is_number() && model["dropout"].get<double>() > 0)
    input_error("{}: model.dropout must be null or 0 for a deterministic tokenizer", where);
  const auto vocab = model.find("vocab");
  if (vocab == model.end() || !vocab->is_object()) input_error("{}: model.vocab must be an object of token -> id", where);

  int32_t max_id = -1;
  for (const auto& [token, id] : vocab->items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX)
      input_error("{}: model.vocab['{}'] must be a non-negative integer id", where, token);
    max_id = std::max(max_id, id.get<int32_t>());
  }
  id_to_token_.assign(static_cast<std::size_t>(max_id + 1), std::string());
  for (const auto& [token, id] : vocab->items()) {
    std::string& slot = id_to_token_[id.get<int32_t>()];
    if (!slot.empty()) input_error("{}: model.vocab gives id {} to both '{}' and '{}'", where, id.get<int32_t>(), slot, token);
    slot = token;
  }
  token_to_id_.reserve(vocab->size());
  for (std::size_t id = 0; id < id_to_token_.size(); ++id)
    if (!id_to_token_[id].empty()) token_to_id_.emplace(id_to_token_[id], static_cast<int32_t>(id));

  const auto merges = model.find("merges");
  if (merges == model.end() || !merges->is_array()) input_error("{}: model.merges must be an array", where);
  merges_.reserve(merges->size());
  int32_t rank = 0;
  for (const auto& merge : *merges) {
    std::string left, right;
    if (merge.is_string()) {  // "a b" (older files)
      const auto& text = merge.get_ref<const std::string&>();
      auto space = text.find(' ', 1);
      if (space == std::string::npos) input_error("{}: model.merges[{}] must be \"left right\"", where, rank);
      left = text.substr(0, space), right = text.substr(space + 1);
    } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() && merge[1].is_string()) {  // ["a", "b"]
      left = merge[0].get<std::string>(), right = merge[1].get<std::string>();
    } else {
      input_error("{}: model.merges[{}] must be \"left right\" or [left, right]", where, rank);
    }
    int32_t left_id = token_to_id(left), right_id = token_to_id(right), merged_id = token_to_id(left + right);
    if (left_id < 0 || right_id < 0 || merged_id < 0)
      input_error("{}: model.merges[{}] ('{} {}') uses a token missing from model.vocab", where, rank, left, right);
    merges_.emplace(pair_key(left_id, right_id), Merge{rank, merged_id});  // first (best) rank wins
    ++rank;
  }

  if (model.contains("unk_token") && model["unk_token"].is_string()) {
    unk_id_ = token_to_id(model["unk_token"].get<std::string>());
    if (unk_id_ < 0) input_error("{}: model.unk_token is not in model.vocab", where);
  }
  fuse_unk_ = model.value("fuse_unk", false);
  byte_fallback_ = model.value("byte_fallback", false);
  ignore_merges_ = model.value("ignore_merges", false);
  for (int b = 0; b < 256; ++b) byte_ids_[b] = byte_fallback_ ? token_to_id(fmt::format("<0x{:02X}>", b)) : -1;
}

int32_t BpeModel::token_to_id(std::string_view token) const {
  auto it = token_to_id_.find(token);
  return it == token_to_id_.end() ? -1 : it->second;
}

void BpeModel::initial_symbols(std::string_view word, std::vector<int32_t>& symbols, std::vector<uint32_t>& starts) const {
  bool previous_unknown = false;
  for (std::size_t pos = 0; pos < word.size();) {
    std::size_t length = utf8::valid_sequence_length(word, pos);
    if (length == 0) length = 1;  // cannot happen for validated text; keep going byte by byte
    const std::string_view character = word.substr(pos, length);
    const auto start = static_cast<uint32_t>(pos);
    pos += length;
    int32_t id = token_to_id(character);
    if (id >= 0) {
      symbols.push_back(id);
      starts.push_back(start);
      previous_unknown = false;
      continue;
    }
    if (byte_fallback_) {
      bool all_bytes = true;
      for (unsigned char b : character) all_bytes = all_bytes && byte_ids_[b] >= 0;
      if (all_bytes) {
        for (std::size_t k = 0; k < character.size(); ++k) {
          symbols.push_back(byte_ids_[static_cast<unsigned char>(character[k])]);
          starts.push_back(start + static_cast<uint32_t>(k));
        }
        previous_unknown = false;
        continue;
      }
    }
    if (unk_id_ < 0) continue;  // no unk token: the character is dropped, as HF does
    if (!(fuse_unk_ && previous_unknown)) {
      symbols.push_back(unk_id_);
      starts.push_back(start);
    }
    previous_unknown = true;
  }
}

void BpeModel::merge_all(std::vector<int32_t>& symbols, std::vector<uint32_t>& starts) const {
  const int n = static_cast<int>(symbols.size());
  if (n < 2) return;
  // Doubly linked list over the symbols; merged-away entries get id -1.
  std::vector<int> prev(n), next(n);
  for (int i = 0; i < n; ++i) prev[i] = i - 1, next[i] = i + 1 < n ? i + 1 : -1;
  struct Candidate {
    int32_t rank;
    int left;         // position of the left symbol
    int32_t left_id;  // ids when queued: a stale entry no longer matches them
    int32_t right_id;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue;
  auto push = [&](int left) {
    int right = next[left];
    if (right < 0) return;
    auto it = merges_.find(pair_key(symbols[left], symbols[right]));
    if (it != merges_.end()) queue.push({it->second.rank, left, symbols[left], symbols[right]});
  };
  for (int i = 0; i + 1 < n; ++i) push(i);
  while (!queue.empty()) {
    Candidate c = queue.top();
    queue.pop();
    int right = next[c.left];
    if (symbols[c.left] != c.left_id || right < 0 || symbols[right] != c.right_id) continue;  // stale
    symbols[c.left] = merges_.at(pair_key(c.left_id, c.right_id)).merged_id;
    symbols[right] = -1;
    next[c.left] = next[right];
    if (next[right] >= 0) prev[next[right]] = c.left;
    if (prev[c.left] >= 0) push(prev[c.left]);
    push(c.left);
  }
  // A merged symbol starts where its left part started.
  int out = 0;
  for (int i = 0; i < n; ++i) {
    if (symbols[i] < 0) continue;
    symbols[out] = symbols[i];
    starts[out++] = starts[i];
  }
  symbols.resize(out);
  starts.resize(out);
}

void BpeModel::encode_word(std::string_view word, std::vector<int32_t>& ids, std::vector<uint32_t>& starts) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    int32_t whole = token_to_id(word);
    if (whole >= 0) {
      ids.push_back(whole);
      starts.push_back(0);
      return;
    }
  }
  std::vector<int32_t> symbols;
  std::vector<uint32_t> symbol_starts;
  symbols.reserve(word.size());
  symbol_starts.reserve(word.size());
  initial_symbols(word, symbols, symbol_starts);
  merge_all(symbols, symbol_starts);
  ids.insert(ids.end(), symbols.begin(), symbols.end());
  starts.insert(starts.end(), symbol_starts.begin(), symbol_starts.end());
}

}  // namespace qtune
