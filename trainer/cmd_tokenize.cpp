// qtune tokenize --tokenizer DIR_OR_FILE [--special] [--decode]: one JSON array of ids per input line
// (or, with --decode, one line of text per JSON array).
#include <iostream>
#include <string>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/tokenizer.h"
#include "trainer/commands.h"

namespace qtune {

Command add_tokenize_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("tokenize", "Tokenize stdin line by line: one JSON array of ids per line");
  auto path = std::make_shared<std::string>();
  auto special = std::make_shared<bool>(false);
  auto decode = std::make_shared<bool>(false);
  cmd->add_option("--tokenizer", *path, "tokenizer.json, a sentencepiece .model, or a model folder")->required();
  cmd->add_flag("--special", *special, "add what the tokenizer adds around a sequence (BOS/EOS)");
  cmd->add_flag("--decode", *decode, "read JSON arrays of ids and print their text instead");
  return [path, special, decode]() {
    auto tokenizer = load_tokenizer(*path);
    std::ios::sync_with_stdio(false);
    std::string line, out;
    std::size_t number = 0;
    while (std::getline(std::cin, line)) {
      ++number;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (*decode) {
        std::vector<TokenId> ids;
        try {
          ids = nlohmann::json::parse(line).get<std::vector<TokenId>>();
        } catch (const nlohmann::json::exception&) {
          input_error("stdin:{}: expected a JSON array of token ids", number);
        }
        nlohmann::json text = tokenizer->decode(ids);
        std::cout << text.dump() << '\n';
        continue;
      }
      std::vector<TokenId> ids;
      try {
        ids = *special ? tokenizer->encode_with_special_tokens(line) : tokenizer->encode(line);
      } catch (const InputError& e) {
        input_error("stdin:{}: {}", number, e.what());
      }
      out.clear();
      out += '[';
      for (std::size_t i = 0; i < ids.size(); ++i) {
        if (i) out += ',';
        out += std::to_string(ids[i]);
      }
      out += "]\n";
      std::cout << out;
    }
    return 0;
  };
}

}  // namespace qtune
