// Helpers for commands that write a model folder: preparing the output folder (refusing to overwrite a
// model without --force) and carrying the tokenizer and generation files along.
#pragma once

#include <string>

namespace qtune {

// Creates `dir`; InputError if it cannot, or if it already holds a model and `force` is false.
void prepare_model_output_dir(const std::string& dir, bool force);

// Copies the tokenizer files (tokenizer.json / .model, tokenizer_config.json, special_tokens_map.json,
// chat_template.jinja) and, with `generation_config`, generation_config.json from `from` to `to`.
void copy_tokenizer_files(const std::string& from, const std::string& to, bool generation_config = true);

}  // namespace qtune
