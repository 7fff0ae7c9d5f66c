// HfTokenizer: encode = split on added tokens -> normalize -> pre-tokenize -> BPE (cached per word);
// decode = vocabulary entries -> decoder -> UTF-8 repair.
#include "data/hf_tokenizer.h"

#include <atomic>
#include <unordered_map>

#include "core/error.h"
#include "core/json_file.h"
#include "data/added_tokens.h"
#include "data/aligned_text.h"
#include "data/bpe_model.h"
#include "data/hf_decoder.h"
#include "data/hf_normalizer.h"
#include "data/hf_pre_tokenizer.h"
#include "data/utf8.h"

namespace qtune {
namespace {

// Ids a post-processor puts before and after a single sequence.
struct PostProcessor {
  std::vector<TokenId> before, after;
};

PostProcessor make_post_processor(const nlohmann::json& spec, const std::string& where) {
  PostProcessor result;
  if (spec.is_null()) return result;
  const std::string type = spec.value("type", "");
  if (type == "Sequence") {
    for (const auto& part : spec.value("processors", nlohmann::json::array())) {
      PostProcessor p = make_post_processor(part, where);
      result.before.insert(result.before.end(), p.before.begin(), p.before.end());
      result.after.insert(result.after.end(), p.after.begin(), p.after.end());
    }
    return result;
  }
  if (type == "ByteLevel") return result;  // only adjusts offsets
  if (type == "TemplateProcessing") {
    const auto& special = spec.value("special_tokens", nlohmann::json::object());
    bool seen_sequence = false;
    for (const auto& item : spec.value("single", nlohmann::json::array())) {
      if (item.contains("Sequence")) {
        seen_sequence = true;
      } else if (item.contains("SpecialToken")) {
        std::string name = item["SpecialToken"].value("id", "");
        if (!special.contains(name)) input_error("{}: post_processor names special token '{}' missing from special_tokens", where, name);
        auto& target = seen_sequence ? result.after : result.before;
        for (const auto& id : special[name].value("ids", nlohmann::json::array())) target.push_back(id.get<TokenId>());
      }
    }
    return result;
  }
  input_error("{}: post_processor type '{}' is not supported (supported: TemplateProcessing, ByteLevel, Sequence)", where, type);
}

class HfTokenizer final : public Tokenizer {
 public:
  HfTokenizer(const nlohmann::json& doc, const std::string& where)
      : model_(doc.at("model"), where),
        added_(doc.value("added_tokens", nlohmann::json()), where),
        normalizer_(make_hf_normalizer(doc.value("normalizer", nlohmann::json()), where)),
        pre_tokenizer_(make_hf_pre_tokenizer(doc.value("pre_tokenizer", nlohmann::json()), where)),
        decoder_(make_hf_decoder(doc.value("decoder", nlohmann::json()), where)),
        post_(make_post_processor(doc.value("post_processor", nlohmann::json()), where)),
        serial_(next_serial()) {
    vocab_size_ = model_.vocab_size();
    for (const auto& token : added_.tokens()) vocab_size_ = std::max(vocab_size_, token.id + 1);
  }

  std::vector<TokenId> encode(std::string_view text, bool parse_special) const override {
    return run(text, parse_special, false).ids;
  }

  Encoding encode_with_offsets(std::string_view text, bool parse_special) const override { return run(text, parse_special, true); }

  std::vector<TokenId> encode_with_special_tokens(std::string_view text) const override {
    std::vector<TokenId> ids = post_.before;
    auto body = encode(text, true);
    ids.insert(ids.end(), body.begin(), body.end());
    ids.insert(ids.end(), post_.after.begin(), post_.after.end());
    return ids;
  }

  std::string decode(const std::vector<TokenId>& ids, bool skip_special) const override {
    // Added tokens go through the decoder with the rest, as in HF: the Metaspace-style decoders then
    // strip only the very first space, and "<s>" + "▁x" decodes to "<s> x".
    std::vector<std::string> tokens;
    tokens.reserve(ids.size());
    for (TokenId id : ids) {
      if (const AddedToken* added = added_.find(id)) {
        if (!(added->special && skip_special)) tokens.push_back(added->content);
      } else if (id >= 0 && id < model_.vocab_size()) {
        tokens.push_back(model_.id_to_token(id));
      }
    }
    decoder_(tokens);
    std::string text;
    for (const auto& token : tokens) text += token;
    return utf8::repair(text);
  }

  TokenId vocab_size() const override { return vocab_size_; }

  std::optional<TokenId> token_to_id(std::string_view token) const override {
    for (const auto& added : added_.tokens())
      if (added.content == token) return added.id;
    TokenId id = model_.token_to_id(token);
    return id >= 0 ? std::optional<TokenId>(id) : std::nullopt;
  }

  std::string id_to_token(TokenId id) const override {
    if (const AddedToken* added = added_.find(id)) return added->content;
    return id >= 0 && id < model_.vocab_size() ? model_.id_to_token(id) : std::string();
  }

  bool is_special(TokenId id) const override {
    const AddedToken* added = added_.find(id);
    return added != nullptr && added->special;
  }

 private:
  static uint64_t next_serial() {
    static std::atomic<uint64_t> counter{0};
    return ++counter;
  }

  // The whole encode pipeline; offsets are computed only when `track` is set.
  Encoding run(std::string_view text, bool parse_special, bool track) const {
    if (!utf8::is_valid(text)) input_error("text is not valid UTF-8; fix the encoding of the input");
    Encoding out;
    out.ids.reserve(text.size() / 3 + 4);
    if (track) out.offsets.reserve(text.size() / 3 + 4);
    bool first_segment = true;
    for (const auto& piece : added_.split(text, parse_special)) {
      if (piece.token_id >= 0) {
        out.ids.push_back(piece.token_id);
        if (track) out.offsets.push_back(static_cast<uint32_t>(piece.begin));
      } else {
        auto plain = AlignedText::from_input(text.substr(piece.begin, piece.end - piece.begin), static_cast<uint32_t>(piece.begin), track);
        encode_plain(plain, first_segment, out, track);
      }
      first_segment = false;
    }
    return out;
  }

  void encode_plain(AlignedText& text, bool first_segment, Encoding& out, bool track) const {
    normalizer_(text);
    if (text.text.empty()) return;
    std::vector<AlignedText> pieces;
    pieces.push_back(std::move(text));
    pre_tokenizer_(pieces, first_segment);
    for (const auto& piece : pieces) {
      const auto& word = encode_word_cached(piece.text);
      out.ids.insert(out.ids.end(), word.ids.begin(), word.ids.end());
      if (track)
        for (std::size_t k = 0; k < word.ids.size(); ++k) out.offsets.push_back(piece.origin_at(word.starts[k]));
    }
  }

  struct WordTokens {
    std::vector<TokenId> ids;
    std::vector<uint32_t> starts;  // byte offset of each token in the word
  };

  // Words repeat a lot in real text; each thread keeps its own bounded cache per tokenizer.
  const WordTokens& encode_word_cached(const std::string& word) const {
    thread_local uint64_t cache_owner = 0;
    thread_local std::unordered_map<std::string, WordTokens> cache;
    thread_local WordTokens uncached;
    if (cache_owner != serial_) {
      cache.clear();
      cache_owner = serial_;
    }
    if (word.size() > 64) {  // long words are rare: don't let them fill the cache
      uncached.ids.clear();
      uncached.starts.clear();
      model_.encode_word(word, uncached.ids, uncached.starts);
      return uncached;
    }
    auto it = cache.find(word);
    if (it == cache.end()) {
      if (cache.size() > 200000) cache.clear();
      WordTokens tokens;
      model_.encode_word(word, tokens.ids, tokens.starts);
      it = cache.emplace(word, std::move(tokens)).first;
    }
    return it->second;
  }

  BpeModel model_;
  AddedTokens added_;
  HfNormalizer normalizer_;
  HfPreTokenizer pre_tokenizer_;
  HfDecoder decoder_;
  PostProcessor post_;
  uint64_t serial_;
  TokenId vocab_size_ = 0;
};

}  // namespace

std::unique_ptr<Tokenizer> make_hf_tokenizer(const nlohmann::json& document, const std::string& where) {
  if (!document.is_object() || !document.contains("model")) input_error("{}: not a tokenizer.json (no 'model' object)", where);
  try {
    return std::make_unique<HfTokenizer>(document, where);
  } catch (const nlohmann::json::exception& e) {
    input_error("{}: unexpected structure ({}); regenerate the file with HF tokenizers", where, e.what());
  }
}

std::unique_ptr<Tokenizer> load_hf_tokenizer(const std::string& path) {
  return make_hf_tokenizer(read_json_file(path), path);
}

}  // namespace qtune
