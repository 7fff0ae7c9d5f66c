// UTF-8 helpers for the tokenizers: code point iteration, encoding, lossy repair (invalid bytes ->
// U+FFFD) and the GPT-2 byte <-> printable-character map of byte-level BPE.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace qtune::utf8 {

// Length of the valid UTF-8 sequence starting at text[pos], or 0 when the bytes there are not one
// (stray continuation byte, overlong form, surrogate, > U+10FFFF, truncated sequence).
std::size_t valid_sequence_length(std::string_view text, std::size_t pos);

// The code point of the valid sequence at text[pos] (call valid_sequence_length first).
char32_t decode_at(std::string_view text, std::size_t pos, std::size_t length);

// Appends `cp` encoded as UTF-8.
void append(std::string& out, char32_t cp);

bool is_valid(std::string_view text);

// `bytes` with every maximal invalid subsequence replaced by U+FFFD (the WHATWG rule, which HF's
// decoders follow through Rust's String::from_utf8_lossy).
std::string repair(std::string_view bytes);

// Byte-level BPE (GPT-2): each byte is written as one printable character so that vocabularies hold
// text only. byte_to_char[b] is that character as UTF-8; char_to_byte inverts it.
const std::array<std::string, 256>& byte_to_char();
// The byte a byte-level character stands for, or -1 when `cp` is not one of the 256 characters.
int char_to_byte(char32_t cp);

}  // namespace qtune::utf8
