// The byte-level pre-tokenizers qtune names in GGUF files. The regexes are the ones the families' own
// tokenizer.json files carry (llama.cpp's pre-tokenizer of the same name splits text the same way).
#include "gguf/gguf_tokenizer_known.h"

#include <string_view>
#include <unordered_map>

#include "core/error.h"
#include "data/utf8.h"

namespace qtune {
namespace {

// Llama 3 / 3.1 / 3.2 / 3.3: numbers in runs of up to three digits.
const char* kLlama3Split =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
// Qwen 1.5 / 2 / 2.5 / 3: one digit per piece.
const char* kQwen2Split =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
// GPT-2's split, which HF's ByteLevel pre-tokenizer applies itself when use_regex is true (qtune's byte-level
// tokenizer, GPT-2 style models): llama.cpp's "gpt-2".
const char* kGpt2Split = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
// DeepSeek V3 / R1: digits, then CJK runs, then words (the third pattern holds real CR/LF characters).
const char* kDeepseekV3Digits = "\\p{N}{1,3}";
const char* kDeepseekV3Cjk = "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+";
const char* kDeepseekV3Words =
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|"
    "\\s+(?!\\S)|\\s+";

// Bytes to the next code point (1 for a byte that starts no valid sequence).
std::size_t utf8_step(std::string_view text, std::size_t pos) {
  const std::size_t length = utf8::valid_sequence_length(text, pos);
  return length == 0 ? 1 : length;
}

bool is_empty_normalizer(const nlohmann::json& normalizer) {
  if (normalizer.is_null()) return true;
  return normalizer.is_object() && normalizer.value("type", "") == "Sequence" &&
         normalizer.value("normalizers", nlohmann::json::array()).empty();
}

bool is_nfc_normalizer(const nlohmann::json& normalizer) {
  return normalizer.is_object() && normalizer.value("type", "") == "NFC";
}

// The Split regexes of a Sequence[Split..., ByteLevel] pre-tokenizer; false for any other shape.
bool split_regexes(const nlohmann::json& pre, std::vector<std::string>& regexes) {
  if (!pre.is_object() || pre.value("type", "") != "Sequence") return false;
  const auto parts = pre.value("pretokenizers", nlohmann::json::array());
  if (parts.empty()) return false;
  for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
    const auto& part = parts[i];
    if (!part.is_object() || part.value("type", "") != "Split" || part.value("behavior", "") != "Isolated" || part.value("invert", false))
      return false;
    const auto pattern = part.value("pattern", nlohmann::json::object());
    if (!pattern.contains("Regex") || !pattern["Regex"].is_string()) return false;
    regexes.push_back(pattern["Regex"].get<std::string>());
  }
  const auto& last = parts.back();
  return last.is_object() && last.value("type", "") == "ByteLevel" && !last.value("add_prefix_space", false) &&
         !last.value("use_regex", true);
}

// A lone ByteLevel that splits with GPT-2's regex itself.
bool is_gpt2_byte_level(const nlohmann::json& pre) {
  return pre.is_object() && pre.value("type", "") == "ByteLevel" && pre.value("use_regex", true) && !pre.value("add_prefix_space", false);
}

}  // namespace

const std::vector<KnownPreTokenizer>& known_pre_tokenizers() {
  static const std::vector<KnownPreTokenizer> kKnown = {
      {"llama-bpe", {kLlama3Split}, false, true, true},
      {"qwen2", {kQwen2Split}, true, false, false},
      {"deepseek-v3", {kDeepseekV3Digits, kDeepseekV3Cjk, kDeepseekV3Words}, false, false, false},
      {"gpt-2", {kGpt2Split}, false, false, false},
  };
  return kKnown;
}

const KnownPreTokenizer* find_pre_tokenizer(const std::string& name) {
  for (const auto& known : known_pre_tokenizers())
    if (name == known.name) return &known;
  return nullptr;
}

std::string known_pre_tokenizer_names() {
  std::string names;
  for (const auto& known : known_pre_tokenizers()) names += (names.empty() ? "" : ", ") + std::string(known.name);
  return names;
}

const KnownPreTokenizer& identify_pre_tokenizer(const nlohmann::json& document, const std::string& where) {
  const auto normalizer = document.value("normalizer", nlohmann::json());
  if (!is_empty_normalizer(normalizer) && !is_nfc_normalizer(normalizer))
    input_error("{}: a byte-level tokenizer with normalizer '{}' cannot be described in GGUF (llama.cpp applies none)", where,
                normalizer.value("type", "?"));
  const auto pre = document.value("pre_tokenizer", nlohmann::json());
  if (is_gpt2_byte_level(pre)) return *find_pre_tokenizer("gpt-2");
  std::vector<std::string> regexes;
  if (split_regexes(pre, regexes)) {
    for (const auto& known : known_pre_tokenizers())
      if (known.splits == regexes) return known;
  }
  input_error("{}: the pre_tokenizer is not one llama.cpp knows by name; GGUF export supports the pre-tokenizers of Llama 3 "
              "(llama-bpe), Qwen 2/2.5/3 (qwen2), DeepSeek V3 (deepseek-v3) and GPT-2 (gpt-2)", where);
}

nlohmann::json pre_tokenizer_json(const KnownPreTokenizer& pre) {
  nlohmann::json parts = nlohmann::json::array();
  for (const auto& regex : pre.splits)
    parts.push_back({{"type", "Split"}, {"pattern", {{"Regex", regex}}}, {"behavior", "Isolated"}, {"invert", false}});
  parts.push_back({{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}});
  return {{"type", "Sequence"}, {"pretokenizers", parts}};
}

std::vector<TokenSplit> token_splits(const std::vector<std::string>& tokens, const std::vector<int32_t>& types) {
  std::unordered_map<std::string_view, int32_t> id_of;
  id_of.reserve(tokens.size());
  for (std::size_t id = 0; id < tokens.size(); ++id)
    if (types[id] != static_cast<int32_t>(GgufTokenType::kUnused)) id_of.emplace(tokens[id], static_cast<int32_t>(id));
  std::vector<TokenSplit> splits;
  for (std::size_t id = 0; id < tokens.size(); ++id) {
    const std::string_view token = tokens[id];
    if (token.empty()) continue;
    auto merged = id_of.find(token);
    if (merged == id_of.end() || merged->second != static_cast<int32_t>(id)) continue;
    for (std::size_t cut = utf8_step(token, 0); cut < token.size(); cut += utf8_step(token, cut)) {
      auto left = id_of.find(token.substr(0, cut)), right = id_of.find(token.substr(cut));
      if (left != id_of.end() && right != id_of.end()) splits.push_back({left->second, right->second, static_cast<int32_t>(id)});
    }
  }
  return splits;
}

}  // namespace qtune
