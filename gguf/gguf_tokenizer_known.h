// What the GGUF tokenizer writer and reader share: llama.cpp's token types, the key names, and the byte-level
// pre-tokenizers qtune can name in tokenizer.ggml.pre (each one a list of split regexes, as in tokenizer.json).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace qtune {

// tokenizer.ggml.token_type values (llama.cpp's llama_token_type / gguf-py's TokenType).
enum class GgufTokenType : int32_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

namespace gguf_key {
inline constexpr const char* kModel = "tokenizer.ggml.model";
inline constexpr const char* kPre = "tokenizer.ggml.pre";
inline constexpr const char* kTokens = "tokenizer.ggml.tokens";
inline constexpr const char* kTokenType = "tokenizer.ggml.token_type";
inline constexpr const char* kScores = "tokenizer.ggml.scores";
inline constexpr const char* kMerges = "tokenizer.ggml.merges";
inline constexpr const char* kBosId = "tokenizer.ggml.bos_token_id";
inline constexpr const char* kEosId = "tokenizer.ggml.eos_token_id";
inline constexpr const char* kUnkId = "tokenizer.ggml.unknown_token_id";
inline constexpr const char* kPadId = "tokenizer.ggml.padding_token_id";
inline constexpr const char* kAddBos = "tokenizer.ggml.add_bos_token";
inline constexpr const char* kAddEos = "tokenizer.ggml.add_eos_token";
inline constexpr const char* kAddSpacePrefix = "tokenizer.ggml.add_space_prefix";
inline constexpr const char* kChatTemplate = "tokenizer.chat_template";
}  // namespace gguf_key

inline constexpr const char* kSentencePieceSpace = "\xE2\x96\x81";  // U+2581 "▁"

// A byte-level BPE pre-tokenizer llama.cpp knows by name.
struct KnownPreTokenizer {
  const char* name;                  // tokenizer.ggml.pre
  std::vector<std::string> splits;   // Split regexes (Isolated), applied in order before ByteLevel
  bool nfc;                          // the family's tokenizer.json normalizes to NFC first (Qwen)
  bool ignore_merges;                // llama.cpp sets ignore_merges for it (whole-word vocabulary hits win)
  bool add_bos_default;              // llama.cpp's add_bos when the file has no add_bos_token key
};

const std::vector<KnownPreTokenizer>& known_pre_tokenizers();
const KnownPreTokenizer* find_pre_tokenizer(const std::string& name);
// "llama-bpe, qwen2, ..." for messages.
std::string known_pre_tokenizer_names();

// The known pre-tokenizer a byte-level tokenizer.json uses (its pre_tokenizer is Split regexes then ByteLevel
// without prefix space, its normalizer none or NFC); InputError naming `where` otherwise.
const KnownPreTokenizer& identify_pre_tokenizer(const nlohmann::json& document, const std::string& where);
// tokenizer.json's pre_tokenizer object for `pre`.
nlohmann::json pre_tokenizer_json(const KnownPreTokenizer& pre);

// A pair of tokens whose concatenation is another token (cut at a code-point boundary). Sentencepiece-style BPE
// (llama.cpp's "llama" model) may merge any such pair; HF rebuilds its merges from them.
struct TokenSplit {
  int32_t left, right, merged;
};
// Every split of every token into two others, by merged id then cut position; tokens of type UNUSED take no
// part, and a text listed twice counts at its first id.
std::vector<TokenSplit> token_splits(const std::vector<std::string>& tokens, const std::vector<int32_t>& types);

}  // namespace qtune
