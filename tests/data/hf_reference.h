// What the Python reference steps wrote at test time (ctest's Reference.HfTokenizers and
// Reference.HfChatTemplates, into QTUNE_REFERENCE_DIR), for the data tests that compare qtune with HF
// tokenizers and transformers. Missing references skip a test, or fail it under QTUNE_REQUIRE_REFERENCE=1.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/conversation.h"
#include "tests/support/files.h"

namespace qtune::test {

// The nine families of ../shared/fixtures/tokenizers (scripts/tokenizer_files.py says where each comes from).
inline const std::vector<std::string>& tokenizer_families() {
  static const std::vector<std::string> names = {"llama2", "llama3", "llama3_1", "qwen2_5", "qwen3", "gemma", "gemma3", "deepseek_v3", "gptoss"};
  return names;
}

inline std::vector<nlohmann::json> read_jsonl(const std::string& path) {
  std::vector<nlohmann::json> lines;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

// The messages of a conversation as the chat-template references store them ({role, content[, reasoning_content]}).
inline std::vector<Message> to_messages(const nlohmann::json& list) {
  std::vector<Message> messages;
  for (const auto& m : list) {
    Message message{m.at("role"), m.at("content"), std::nullopt, std::nullopt};
    if (m.contains("reasoning_content")) message.reasoning = m["reasoning_content"].get<std::string>();
    messages.push_back(std::move(message));
  }
  return messages;
}

// The committed corpus every tokenizer reference is made from.
inline std::vector<std::string> corpus_texts() {
  std::vector<std::string> texts;
  for (const auto& line : read_jsonl(std::string(QTUNE_FIXTURES_DIR) + "/tokenizers/corpus.jsonl")) texts.push_back(line.at("text"));
  return texts;
}

struct TokenizerReference {
  std::string folder;          // the family's tokenizer files
  std::string tokenizer_json;  // folder/tokenizer.json
  nlohmann::json document;     // the parsed tokenizer.json
  nlohmann::json meta;         // NAME.meta.json
  std::vector<nlohmann::json> lines;  // NAME.jsonl: text, ids, ids_with_special, decoded...
};

// HF tokenizers' encodings of the corpus for family `name`; nullopt with `why` set when the tokenizer
// files or the reference are not there.
inline std::optional<TokenizerReference> load_tokenizer_reference(const std::string& name, std::string& why) {
  TokenizerReference ref;
  ref.folder = tokenizer_dir(name);
  if (ref.folder.empty()) {
    why = "tokenizer files of " + name + " missing under " + tokenizers_root() + " (set QTUNE_TOKENIZERS)";
    return std::nullopt;
  }
  const std::string base = std::string(QTUNE_REFERENCE_DIR) + "/tokenizers/" + name;
  std::ifstream meta_in(base + ".meta.json");
  if (!meta_in) {
    why = base + ".meta.json missing: run ctest -R Reference.HfTokenizers (scripts/make_tokenizer_fixtures.py) first";
    return std::nullopt;
  }
  ref.meta = nlohmann::json::parse(meta_in);
  ref.tokenizer_json = ref.folder + "/tokenizer.json";
  std::ifstream tokenizer_in(ref.tokenizer_json);
  ref.document = nlohmann::json::parse(tokenizer_in);
  ref.lines = read_jsonl(base + ".jsonl");
  return ref;
}

// transformers' renderings and assistant masks for built-in template `name`.
inline std::optional<nlohmann::json> load_chat_reference(const std::string& name, std::string& why) {
  const std::string path = std::string(QTUNE_REFERENCE_DIR) + "/chat_templates/" + name + ".json";
  std::ifstream in(path);
  if (!in) {
    why = path + " missing: run ctest -R Reference.HfChatTemplates (scripts/make_chat_template_fixtures.py) first";
    return std::nullopt;
  }
  return nlohmann::json::parse(in);
}

inline double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace qtune::test

// `auto var = loader(args..., why)`, then skip (or fail under QTUNE_REQUIRE_REFERENCE=1) when it is empty.
#define QTUNE_REQUIRE_REFERENCE(var, loader, ...)                       \
  std::string var##_missing;                                            \
  auto var = loader(__VA_ARGS__, var##_missing);                        \
  if (!var) {                                                           \
    if (::qtune::test::reference_required()) FAIL() << var##_missing;   \
    GTEST_SKIP() << var##_missing;                                      \
  }
