// Normalizers of HF tokenizer.json (NFC/NFKC/NFD/NFKD, Prepend, Replace, Lowercase, Strip, Sequence),
// applied to each piece of text between added tokens, keeping byte origins.
#pragma once

#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "data/aligned_text.h"

namespace qtune {

// Rewrites the text in place.
using HfNormalizer = std::function<void(AlignedText& text)>;

// Builds the normalizer described by tokenizer.json's "normalizer" (null -> identity). Throws
// InputError naming `where` for unknown or malformed entries.
HfNormalizer make_hf_normalizer(const nlohmann::json& spec, const std::string& where);

}  // namespace qtune
