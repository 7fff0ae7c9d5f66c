// Decoders of HF tokenizer.json (ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip, Sequence):
// vocabulary entries back to text.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace qtune {

// Rewrites the token strings in place; the caller concatenates them and repairs invalid UTF-8.
using HfDecoder = std::function<void(std::vector<std::string>& tokens)>;

// Builds the decoder described by tokenizer.json's "decoder" (null -> tokens are joined as they are).
HfDecoder make_hf_decoder(const nlohmann::json& spec, const std::string& where);

}  // namespace qtune
