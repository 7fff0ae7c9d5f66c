// The tokenizer inside a GGUF file (the tokenizer.ggml.* keys llama.cpp reads), written from a Hugging Face
// tokenizer folder and read back as a qtune::Tokenizer.
//
// Byte-level BPE (Llama 3, Qwen 2/2.5/3): model "gpt2", `.pre` naming the pre-tokenizer ("llama-bpe", "qwen2",
// ...), tokens, token types and merges. Sentencepiece-style BPE with byte fallback (Llama 2, Mistral v1): model
// "llama", tokens, token types and scores (a piece's score ranks the merge that makes it). Both: BOS/EOS/UNK/PAD
// ids, add_bos_token / add_eos_token, and tokenizer.chat_template.
#pragma once

#include <memory>
#include <string>

#include "data/tokenizer.h"
#include "data/tokenizer_config.h"
#include "gguf/gguf_file.h"

namespace qtune {

// Adds the tokenizer keys of the tokenizer in `model_dir` (tokenizer.json + tokenizer_config.json, or
// chat_template.jinja) to `metadata`. The token list is padded to `vocab_size` (the model's embedding rows) with
// "[PAD<id>]" entries, as llama.cpp's converter does. InputError naming the file for a tokenizer GGUF cannot
// describe (another model type, an unknown pre-tokenizer).
void add_tokenizer_metadata(const std::string& model_dir, int64_t vocab_size, GgufMetadata& metadata);

// The tokenizer those keys describe, encoding and decoding as the original did. `where` names the file in errors.
std::unique_ptr<Tokenizer> tokenizer_from_gguf(const GgufMetadata& metadata, const std::string& where);
// BOS/EOS/PAD/UNK token texts, add_bos/add_eos and the chat template, as a tokenizer_config.json would give them.
TokenizerConfig tokenizer_config_from_gguf(const GgufMetadata& metadata, const std::string& where);

}  // namespace qtune
