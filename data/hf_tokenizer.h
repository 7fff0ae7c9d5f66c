// The HF tokenizer.json format as a qtune::Tokenizer: added tokens, normalizer, pre-tokenizer, BPE,
// post-processor and decoder, as used by Llama 2/3, Mistral and Qwen 2/2.5/3.
#pragma once

#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "data/tokenizer.h"

namespace qtune {

// Reads and parses `path` (a tokenizer.json file). Throws InputError naming the file when it is
// missing, not JSON, or uses a component qtune does not support.
std::unique_ptr<Tokenizer> load_hf_tokenizer(const std::string& path);

// The same from an already parsed document; `where` names its origin in errors.
std::unique_ptr<Tokenizer> make_hf_tokenizer(const nlohmann::json& document, const std::string& where);

}  // namespace qtune
