// qtune::TokenizerConfig: what HF's tokenizer_config.json (and chat_template.jinja) say about special
// tokens, BOS/EOS insertion and the chat template.
#pragma once

#include <optional>
#include <string>

namespace qtune {

struct TokenizerConfig {
  std::string bos_token, eos_token, pad_token, unk_token;  // empty when unset
  std::optional<bool> add_bos_token, add_eos_token;
  std::string chat_template;  // the model's Jinja source; empty when it has none
  std::string source;         // the file read, for messages

  // Reads <dir>/tokenizer_config.json (and <dir>/chat_template.jinja when present). A folder without
  // tokenizer_config.json gives an empty config; a malformed file is an InputError naming it.
  static TokenizerConfig load(const std::string& model_dir);
};

}  // namespace qtune
