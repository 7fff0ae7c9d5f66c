// Writing the tokenizer.ggml.* keys from a model folder's tokenizer.json, following llama.cpp's converter
// (convert_hf_to_gguf.py): token list padded with "[PAD<id>]", special added tokens as CONTROL, other added
// tokens as USER_DEFINED, merges for byte-level BPE, scores for sentencepiece-style BPE.
#include "gguf/gguf_tokenizer.h"

#include <cctype>
#include <filesystem>
#include <unordered_map>

#include "core/error.h"
#include "core/json_file.h"
#include "data/hf_tokenizer.h"
#include "gguf/gguf_tokenizer_known.h"

namespace qtune {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct TokenList {
  std::vector<std::string> tokens;  // by id, vocab_size of them
  std::vector<int32_t> types;       // GgufTokenType
};

int32_t type_id(GgufTokenType type) { return static_cast<int32_t>(type); }

bool is_byte_token(const std::string& token) {
  return token.size() == 6 && token.compare(0, 3, "<0x") == 0 && std::isxdigit(static_cast<unsigned char>(token[3])) &&
         std::isxdigit(static_cast<unsigned char>(token[4])) && token[5] == '>';
}

// A Sequence's parts (`list_key` names them), or the one component itself.
std::vector<json> components(const json& spec, const char* list_key) {
  if (spec.is_object() && spec.value("type", "") == "Sequence") return spec.value(list_key, json::array()).get<std::vector<json>>();
  if (spec.is_null()) return {};
  return {spec};
}

// Ids 0..vocab_size-1: the model's vocabulary, then the added tokens over it, gaps as unused "[PAD<id>]".
TokenList token_list(const json& doc, int64_t vocab_size, const std::string& where) {
  const json& model = doc.at("model");
  TokenList list;
  list.tokens.assign(static_cast<std::size_t>(vocab_size), std::string());
  list.types.assign(static_cast<std::size_t>(vocab_size), type_id(GgufTokenType::kUnused));
  auto place = [&](int64_t id, const std::string& text, GgufTokenType type) {
    if (id < 0 || id >= vocab_size)
      input_error("{}: token '{}' has id {} but the model has {} embedding rows (vocab_size); the tokenizer does not fit the model",
                  where, text, id, vocab_size);
    list.tokens[id] = text;
    list.types[id] = type_id(type);
  };
  const bool byte_fallback = model.value("byte_fallback", false);
  for (const auto& [text, id] : model.at("vocab").items())
    place(id.get<int64_t>(), text, byte_fallback && is_byte_token(text) ? GgufTokenType::kByte : GgufTokenType::kNormal);
  for (const auto& added : doc.value("added_tokens", json::array()))
    place(added.at("id").get<int64_t>(), added.at("content").get<std::string>(),
          added.value("special", false) ? GgufTokenType::kControl : GgufTokenType::kUserDefined);
  if (model.contains("unk_token") && model["unk_token"].is_string()) {
    const std::string unk = model["unk_token"].get<std::string>();
    for (std::size_t id = 0; id < list.tokens.size(); ++id)
      if (list.tokens[id] == unk) list.types[id] = type_id(GgufTokenType::kUnknown);
  }
  for (std::size_t id = 0; id < list.tokens.size(); ++id)
    if (list.types[id] == type_id(GgufTokenType::kUnused)) list.tokens[id] = "[PAD" + std::to_string(id) + "]";
  return list;
}

// Merges as "left right" strings, the only form GGUF has.
std::vector<std::string> merge_strings(const json& model, const std::string& where) {
  std::vector<std::string> merges;
  for (const auto& merge : model.value("merges", json::array())) {
    if (merge.is_string()) {
      merges.push_back(merge.get<std::string>());
      continue;
    }
    const std::string left = merge.at(0).get<std::string>(), right = merge.at(1).get<std::string>();
    if (left.find(' ') != std::string::npos || right.find(' ') != std::string::npos)
      input_error("{}: merge ['{}', '{}'] holds a space, which GGUF's \"left right\" merges cannot express", where, left, right);
    merges.push_back(left + " " + right);
  }
  return merges;
}

// Merge ranks as scores: a piece made by merge rank r scores -(r + 1), so the highest score is the first merge
// (llama.cpp merges the pair whose joined piece scores highest; HF rebuilds merges sorted by score). Pieces no
// merge makes score below every merge; bytes and added tokens no merge makes 0. This describes the tokenizer only when its
// merges are exactly the pairs that join into a token, as in every tokenizer.json converted from sentencepiece.
std::vector<double> merge_rank_scores(const json& model, const TokenList& list, const std::string& where) {
  std::unordered_map<std::string, int32_t> id_of;
  for (std::size_t id = 0; id < list.tokens.size(); ++id)
    if (list.types[id] != type_id(GgufTokenType::kUnused)) id_of.emplace(list.tokens[id], static_cast<int32_t>(id));
  const std::vector<std::string> merges = merge_strings(model, where);
  std::vector<int64_t> first_rank(list.tokens.size(), -1);
  for (std::size_t rank = 0; rank < merges.size(); ++rank) {
    const std::size_t space = merges[rank].find(' ', 1);
    auto merged = space == std::string::npos ? id_of.end() : id_of.find(merges[rank].substr(0, space) + merges[rank].substr(space + 1));
    if (merged == id_of.end()) input_error("{}: model.merges[{}] does not join into a vocabulary token", where, rank);
    if (first_rank[merged->second] < 0) first_rank[merged->second] = static_cast<int64_t>(rank);
  }
  if (token_splits(list.tokens, list.types).size() != merges.size())
    input_error("{}: the merges are not the sentencepiece kind (every pair of tokens that joins into a token), so GGUF's "
                "\"llama\" tokenizer (scores, no merges) cannot describe them", where);
  // An added token that merges also make (Gemma 3's runs of "▁") keeps its merge's rank: BPE reaches it by merging.
  std::vector<double> scores(list.tokens.size(), 0.0);
  for (std::size_t id = 0; id < scores.size(); ++id) {
    if (first_rank[id] >= 0) scores[id] = -static_cast<double>(first_rank[id] + 1);
    else if (list.types[id] == type_id(GgufTokenType::kNormal)) scores[id] = -static_cast<double>(merges.size() + 1);
  }
  return scores;
}

// Llama 2 / Mistral v1 layout: spaces become "▁" (normalizer or Metaspace); true when a "▁" is prepended.
bool sentencepiece_prefix(const json& doc, const std::string& where) {
  bool replaces_space = false, prepends = false;
  for (const auto& part : components(doc.value("normalizer", json()), "normalizers")) {
    const std::string type = part.value("type", "");
    if (type == "Replace" && part.value("content", "") == kSentencePieceSpace) replaces_space = true;
    else if (type == "Prepend" && part.value("prepend", "") == kSentencePieceSpace) prepends = true;
  }
  for (const auto& part : components(doc.value("pre_tokenizer", json()), "pretokenizers")) {
    if (part.value("type", "") != "Metaspace") continue;
    replaces_space = true;
    const json scheme = part.value("prepend_scheme", json());
    prepends = scheme.is_string() ? scheme.get<std::string>() != "never" : part.value("add_prefix_space", true);
  }
  if (!replaces_space)
    input_error("{}: a byte-fallback BPE tokenizer that does not write spaces as \"\u2581\" cannot be described in GGUF", where);
  return prepends;
}

void add_sentencepiece_keys(const json& doc, const TokenList& list, const std::string& where, GgufMetadata& metadata) {
  const bool prefix = sentencepiece_prefix(doc, where);
  const std::vector<double> scores = merge_rank_scores(doc.at("model"), list, where);
  metadata.set(gguf_key::kModel, GgufValue::text("llama"));
  metadata.set(gguf_key::kPre, GgufValue::text("default"));
  metadata.set(gguf_key::kTokens, GgufValue::string_array(list.tokens));
  metadata.set(gguf_key::kScores, GgufValue::f32_array(scores));
  metadata.set(gguf_key::kTokenType, GgufValue::i32_array(std::vector<int64_t>(list.types.begin(), list.types.end())));
  metadata.set(gguf_key::kAddSpacePrefix, GgufValue::boolean_value(prefix));
}

void add_byte_level_keys(const json& doc, const TokenList& list, const std::string& where, GgufMetadata& metadata) {
  const KnownPreTokenizer& pre = identify_pre_tokenizer(doc, where);
  metadata.set(gguf_key::kModel, GgufValue::text("gpt2"));
  metadata.set(gguf_key::kPre, GgufValue::text(pre.name));
  metadata.set(gguf_key::kTokens, GgufValue::string_array(list.tokens));
  metadata.set(gguf_key::kTokenType, GgufValue::i32_array(std::vector<int64_t>(list.types.begin(), list.types.end())));
  metadata.set(gguf_key::kMerges, GgufValue::string_array(merge_strings(doc.at("model"), where)));
}

// An integer <key>_token_id from config.json, as the converter falls back to it.
std::optional<TokenId> config_token_id(const json& config, const std::string& key, int64_t vocab_size) {
  auto it = config.find(key + "_token_id");
  if (it == config.end() || !it->is_number_integer()) return std::nullopt;
  const int64_t id = it->get<int64_t>();
  return id >= 0 && id < vocab_size ? std::optional<TokenId>(static_cast<TokenId>(id)) : std::nullopt;
}

// BOS/EOS/UNK/PAD ids (tokenizer_config.json's token texts, else config.json's ids), add_bos/add_eos by the rule
// qtune trains with (tokenizer_config's flag, else whether the post-processor adds the token), the chat template.
void add_special_token_keys(const std::string& model_dir, const Tokenizer& tokenizer, int64_t vocab_size, GgufMetadata& metadata) {
  const TokenizerConfig config = TokenizerConfig::load(model_dir);
  const fs::path config_path = fs::path(model_dir) / "config.json";
  const json model_config = fs::exists(config_path) ? read_json_file(config_path.string()) : json::object();
  auto id_of = [&](const std::string& text, const std::string& key) -> std::optional<TokenId> {
    if (!text.empty())
      if (auto id = tokenizer.token_to_id(text)) return id;
    return model_config.is_object() ? config_token_id(model_config, key, vocab_size) : std::nullopt;
  };
  const auto probe = tokenizer.encode_with_special_tokens("a"), body = tokenizer.encode("a");
  const bool adds_front = probe.size() > body.size() && (body.empty() || probe.front() != body.front());
  const bool adds_back = probe.size() > body.size() && (body.empty() || probe.back() != body.back());
  std::optional<TokenId> bos = id_of(config.bos_token, "bos"), eos = id_of(config.eos_token, "eos");
  if (!bos && adds_front) bos = probe.front();
  if (!eos && adds_back) eos = probe.back();
  const std::pair<const char*, std::optional<TokenId>> ids[] = {
      {gguf_key::kBosId, bos},
      {gguf_key::kEosId, eos},
      {gguf_key::kUnkId, id_of(config.unk_token, "unk")},
      {gguf_key::kPadId, id_of(config.pad_token, "pad")}};
  for (const auto& [key, id] : ids)
    if (id) metadata.set(key, GgufValue::u32(static_cast<uint32_t>(*id)));
  const bool add_bos = bos && config.add_bos_token.value_or(adds_front && probe.front() == *bos);
  const bool add_eos = eos && config.add_eos_token.value_or(adds_back && probe.back() == *eos);
  metadata.set(gguf_key::kAddBos, GgufValue::boolean_value(add_bos));
  metadata.set(gguf_key::kAddEos, GgufValue::boolean_value(add_eos));
  if (!config.chat_template.empty()) metadata.set(gguf_key::kChatTemplate, GgufValue::text(config.chat_template));
}

}  // namespace

void add_tokenizer_metadata(const std::string& model_dir, int64_t vocab_size, GgufMetadata& metadata) {
  const std::string path = (fs::path(model_dir) / "tokenizer.json").string();
  if (!fs::exists(path))
    input_error("{}: missing; GGUF export needs the model's tokenizer.json (a sentencepiece tokenizer.model alone is not supported)", path);
  const json doc = read_json_file(path);
  const auto original = make_hf_tokenizer(doc, path);  // validates the whole document first
  const TokenList list = token_list(doc, vocab_size, path);
  if (doc.at("model").value("byte_fallback", false)) add_sentencepiece_keys(doc, list, path, metadata);
  else add_byte_level_keys(doc, list, path, metadata);
  add_special_token_keys(model_dir, *original, vocab_size, metadata);
}

}  // namespace qtune
