// Pre-tokenizers of HF tokenizer.json (Split with a regex, ByteLevel, Metaspace, Digits, Sequence):
// they cut normalized text into the words BPE encodes, keeping byte origins.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/aligned_text.h"

namespace qtune {

// Replaces `pieces` by their pre-tokenized sub-pieces, in order. `first_segment` is true for the text
// before the first added token (Metaspace's prepend_scheme "first" adds "▁" only there).
using HfPreTokenizer = std::function<void(std::vector<AlignedText>& pieces, bool first_segment)>;

// Builds the pre-tokenizer described by tokenizer.json's "pre_tokenizer" (null -> whole text is one word).
HfPreTokenizer make_hf_pre_tokenizer(const nlohmann::json& spec, const std::string& where);

}  // namespace qtune
