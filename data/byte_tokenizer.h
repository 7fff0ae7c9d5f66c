// The project's own tokenizer for tiny models (tests, the demo): byte-level BPE without merges (one token
// per byte, ids 0..255 in byte order) plus the ChatML special tokens, written as a real tokenizer.json and
// tokenizer_config.json that HF tokenizers also read.
#pragma once

#include <string>

namespace qtune {

// Ids: byte b -> b; <|endoftext|> 256, <|im_start|> 257, <|im_end|> 258.
constexpr int kByteTokenizerVocab = 259;

// Writes <dir>/tokenizer.json and <dir>/tokenizer_config.json (ChatML template, EOS <|im_end|>).
void write_byte_tokenizer(const std::string& dir);

}  // namespace qtune
