// Reading the tokenizer.ggml.* keys back: they are turned into the tokenizer.json document they imply and
// handed to the HF tokenizer, so a GGUF's tokenizer encodes exactly as that document would.
#include <algorithm>
#include <tuple>

#include "core/error.h"
#include "data/hf_tokenizer.h"
#include "gguf/gguf_tokenizer.h"
#include "gguf/gguf_tokenizer_known.h"

namespace qtune {
namespace {

using nlohmann::json;

struct GgufVocab {
  std::string model;                // "llama" or "gpt2"
  const KnownPreTokenizer* pre = nullptr;  // gpt2 only
  std::vector<std::string> tokens;
  std::vector<int32_t> types;       // GgufTokenType, NORMAL when the file has none
  std::optional<TokenId> bos, eos, unk, pad;
  bool add_bos = false, add_eos = false;
};

enum class ArrayOf { kStrings, kIntegers, kFloats };

bool holds(const GgufValue& value, ArrayOf kind) {
  switch (value.element_type) {
    case GgufValueType::kString: return kind == ArrayOf::kStrings;
    case GgufValueType::kFloat32: case GgufValueType::kFloat64: return kind == ArrayOf::kFloats;
    case GgufValueType::kBool: case GgufValueType::kArray: return false;
    default: return kind == ArrayOf::kIntegers;
  }
}

// The array under `key`, or nullptr when absent; InputError when it holds something else.
const GgufValue* array_of(const GgufMetadata& metadata, const char* key, ArrayOf kind, const std::string& where) {
  const GgufValue* value = metadata.find(key);
  if (value == nullptr) return nullptr;
  if (value->type != GgufValueType::kArray || !holds(*value, kind)) {
    const char* what = kind == ArrayOf::kStrings ? "strings" : kind == ArrayOf::kIntegers ? "integers" : "floats";
    input_error("{}: metadata key '{}' must be an array of {}", where, key, what);
  }
  return value;
}

std::optional<TokenId> optional_id(const GgufMetadata& metadata, const char* key, std::size_t count, const std::string& where) {
  if (!metadata.contains(key)) return std::nullopt;
  const int64_t id = metadata.integer(key, where);
  if (id < 0 || static_cast<uint64_t>(id) >= count)
    input_error("{}: metadata key '{}' is {}, outside the {} tokens", where, key, id, count);
  return static_cast<TokenId>(id);
}

bool optional_flag(const GgufMetadata& metadata, const char* key, bool fallback, const std::string& where) {
  return metadata.contains(key) ? metadata.boolean(key, where) : fallback;
}

std::vector<int32_t> token_types(const GgufMetadata& metadata, std::size_t count, const std::string& where) {
  const GgufValue* value = array_of(metadata, gguf_key::kTokenType, ArrayOf::kIntegers, where);
  if (value == nullptr) return std::vector<int32_t>(count, static_cast<int32_t>(GgufTokenType::kNormal));
  if (value->integers.size() != count)
    input_error("{}: {} has {} entries for {} tokens", where, gguf_key::kTokenType, value->integers.size(), count);
  std::vector<int32_t> types;
  types.reserve(count);
  for (int64_t type : value->integers) {
    if (type < 1 || type > 6) input_error("{}: {} holds {}, not a llama.cpp token type (1-6)", where, gguf_key::kTokenType, type);
    types.push_back(static_cast<int32_t>(type));
  }
  return types;
}

GgufVocab read_vocab(const GgufMetadata& metadata, const std::string& where) {
  GgufVocab vocab;
  vocab.model = metadata.string(gguf_key::kModel, where);
  if (vocab.model == "gpt2") {
    const std::string& pre = metadata.string(gguf_key::kPre, where);
    vocab.pre = find_pre_tokenizer(pre);
    if (vocab.pre == nullptr)
      input_error("{}: {} '{}' is not supported (supported: {})", where, gguf_key::kPre, pre, known_pre_tokenizer_names());
  } else if (vocab.model != "llama") {
    input_error("{}: {} '{}' is not supported (supported: llama, gpt2)", where, gguf_key::kModel, vocab.model);
  }
  const GgufValue* tokens = array_of(metadata, gguf_key::kTokens, ArrayOf::kStrings, where);
  if (tokens == nullptr || tokens->strings.empty()) input_error("{}: metadata key '{}' is missing or empty", where, gguf_key::kTokens);
  vocab.tokens = tokens->strings;
  vocab.types = token_types(metadata, vocab.tokens.size(), where);
  const std::size_t n = vocab.tokens.size();
  vocab.bos = optional_id(metadata, gguf_key::kBosId, n, where);
  vocab.eos = optional_id(metadata, gguf_key::kEosId, n, where);
  vocab.unk = optional_id(metadata, gguf_key::kUnkId, n, where);
  vocab.pad = optional_id(metadata, gguf_key::kPadId, n, where);
  // llama.cpp's defaults when a file has no flag: BOS for sentencepiece vocabularies and for llama-bpe.
  vocab.add_bos = optional_flag(metadata, gguf_key::kAddBos, vocab.pre == nullptr || vocab.pre->add_bos_default, where);
  vocab.add_eos = optional_flag(metadata, gguf_key::kAddEos, false, where);
  return vocab;
}

bool has_type(const GgufVocab& vocab, std::size_t id, GgufTokenType type) { return vocab.types[id] == static_cast<int32_t>(type); }

// Every token in the model's vocabulary (a text listed twice keeps its first id).
json vocab_json(const GgufVocab& vocab) {
  json object = json::object();
  for (std::size_t id = 0; id < vocab.tokens.size(); ++id)
    if (!vocab.tokens[id].empty() && !object.contains(vocab.tokens[id])) object[vocab.tokens[id]] = id;
  return object;
}

// CONTROL and UNKNOWN tokens are special added tokens, USER_DEFINED ones plain added tokens: all are matched
// whole in text before the BPE, as llama.cpp does.
json added_tokens_json(const GgufVocab& vocab) {
  json added = json::array();
  for (std::size_t id = 0; id < vocab.tokens.size(); ++id) {
    const bool special = has_type(vocab, id, GgufTokenType::kControl) || has_type(vocab, id, GgufTokenType::kUnknown);
    if (vocab.tokens[id].empty() || !(special || has_type(vocab, id, GgufTokenType::kUserDefined))) continue;
    added.push_back({{"id", id}, {"content", vocab.tokens[id]}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
                     {"normalized", false}, {"special", special}});
  }
  return added;
}

// BOS before and EOS after a single sequence, as the add flags ask.
json post_processor_json(const GgufVocab& vocab) {
  json single = json::array(), special_tokens = json::object();
  auto add_special = [&](TokenId id) {
    const std::string& text = vocab.tokens[id];
    single.push_back({{"SpecialToken", {{"id", text}, {"type_id", 0}}}});
    special_tokens[text] = {{"id", text}, {"ids", {id}}, {"tokens", {text}}};
  };
  if (vocab.add_bos && vocab.bos) add_special(*vocab.bos);
  single.push_back({{"Sequence", {{"id", "A"}, {"type_id", 0}}}});
  if (vocab.add_eos && vocab.eos) add_special(*vocab.eos);
  if (special_tokens.empty()) return json();
  return {{"type", "TemplateProcessing"}, {"single", single}, {"special_tokens", special_tokens}};
}

// Sentencepiece merges from scores, as HF's converter makes them: every pair of tokens that joins into a token,
// best-scoring joined piece first, ties by the joined piece's id and then the pair's ids.
json merges_from_scores(const GgufVocab& vocab, const GgufMetadata& metadata, const std::string& where) {
  const GgufValue* scores = array_of(metadata, gguf_key::kScores, ArrayOf::kFloats, where);
  if (scores == nullptr) input_error("{}: metadata key '{}' is missing; a \"llama\" tokenizer needs it", where, gguf_key::kScores);
  if (scores->numbers.size() != vocab.tokens.size())
    input_error("{}: {} has {} entries for {} tokens", where, gguf_key::kScores, scores->numbers.size(), vocab.tokens.size());
  std::vector<TokenSplit> splits = token_splits(vocab.tokens, vocab.types);
  const std::vector<double>& score = scores->numbers;
  std::sort(splits.begin(), splits.end(), [&](const TokenSplit& a, const TokenSplit& b) {
    if (score[a.merged] != score[b.merged]) return score[a.merged] > score[b.merged];
    return std::tie(a.merged, a.left, a.right) < std::tie(b.merged, b.left, b.right);
  });
  json merges = json::array();
  for (const auto& split : splits) merges.push_back({vocab.tokens[split.left], vocab.tokens[split.right]});
  return merges;
}

// Llama 2 / Mistral v1: spaces as "▁" (prepended once per text piece, as llama.cpp does), BPE with byte fallback.
void fill_sentencepiece(json& doc, const GgufVocab& vocab, const GgufMetadata& metadata, const std::string& where) {
  const bool prefix = optional_flag(metadata, gguf_key::kAddSpacePrefix, true, where);
  json normalizers = json::array();
  if (prefix) normalizers.push_back({{"type", "Prepend"}, {"prepend", kSentencePieceSpace}});
  normalizers.push_back({{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", kSentencePieceSpace}});
  doc["normalizer"] = {{"type", "Sequence"}, {"normalizers", normalizers}};
  json decoders = {{{"type", "Replace"}, {"pattern", {{"String", kSentencePieceSpace}}}, {"content", " "}},
                   {{"type", "ByteFallback"}},
                   {{"type", "Fuse"}}};
  if (prefix) decoders.push_back({{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}});
  doc["decoder"] = {{"type", "Sequence"}, {"decoders", decoders}};
  doc["model"] = {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", vocab.unk ? json(vocab.tokens[*vocab.unk]) : json()},
                  {"fuse_unk", true}, {"byte_fallback", true}, {"vocab", vocab_json(vocab)},
                  {"merges", merges_from_scores(vocab, metadata, where)}};
}

// Llama 3, Qwen, DeepSeek V3: the named pre-tokenizer's splits, then bytes as printable characters.
void fill_byte_level(json& doc, const GgufVocab& vocab, const GgufMetadata& metadata, const std::string& where) {
  const GgufValue* merges = array_of(metadata, gguf_key::kMerges, ArrayOf::kStrings, where);
  if (merges == nullptr) input_error("{}: metadata key '{}' is missing; a \"gpt2\" tokenizer needs it", where, gguf_key::kMerges);
  if (vocab.pre->nfc) doc["normalizer"] = {{"type", "NFC"}};
  doc["pre_tokenizer"] = pre_tokenizer_json(*vocab.pre);
  doc["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}};
  doc["model"] = {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"byte_fallback", false},
                  {"ignore_merges", vocab.pre->ignore_merges}, {"vocab", vocab_json(vocab)}, {"merges", merges->strings}};
}

}  // namespace

std::unique_ptr<Tokenizer> tokenizer_from_gguf(const GgufMetadata& metadata, const std::string& where) {
  const GgufVocab vocab = read_vocab(metadata, where);
  json doc = {{"version", "1.0"}, {"added_tokens", added_tokens_json(vocab)}, {"normalizer", nullptr}, {"pre_tokenizer", nullptr},
              {"post_processor", post_processor_json(vocab)}};
  if (vocab.model == "llama") fill_sentencepiece(doc, vocab, metadata, where);
  else fill_byte_level(doc, vocab, metadata, where);
  return make_hf_tokenizer(doc, where + " (tokenizer.ggml.*)");
}

TokenizerConfig tokenizer_config_from_gguf(const GgufMetadata& metadata, const std::string& where) {
  const GgufVocab vocab = read_vocab(metadata, where);
  TokenizerConfig config;
  auto text_of = [&](const std::optional<TokenId>& id) { return id ? vocab.tokens[*id] : std::string(); };
  config.bos_token = text_of(vocab.bos);
  config.eos_token = text_of(vocab.eos);
  config.pad_token = text_of(vocab.pad);
  config.unk_token = text_of(vocab.unk);
  config.add_bos_token = vocab.add_bos;
  config.add_eos_token = vocab.add_eos;
  if (metadata.contains(gguf_key::kChatTemplate)) config.chat_template = metadata.string(gguf_key::kChatTemplate, where);
  config.source = where;
  return config;
}

}  // namespace qtune
