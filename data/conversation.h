// The samples datasets turn into, before templating: conversations (chat SFT), plain completion text
// and preference pairs (DPO/ORPO), each remembering where it came from for error messages.
#pragma once

#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace qtune {

// One chat turn. Roles are normalized to "system", "user", "assistant" or "tool".
struct Message {
  std::string role;
  std::string content;
  std::optional<std::string> reasoning;  // an assistant's thinking, for templates that render it (Qwen 3)
  std::optional<bool> train;             // per-message override of roles_to_train (a dataset's "train"/"weight" field)
};

struct Conversation {
  std::vector<Message> messages;
};

// Raw text trained on in full (type: completion).
struct CompletionText {
  std::string text;
};

// A prompt and two answers (type: preference). The prompt ends with a user turn.
struct PreferencePair {
  std::vector<Message> prompt;
  std::vector<Message> chosen;    // assistant turn(s)
  std::vector<Message> rejected;  // assistant turn(s)
};

// Where a sample came from: "data/train.jsonl:42".
struct SampleOrigin {
  std::string file;
  std::size_t line = 0;  // 1-based line for JSONL, element index + 1 for JSON arrays
  std::string describe() const { return file + ":" + std::to_string(line); }
};

struct Sample {
  std::variant<Conversation, CompletionText, PreferencePair> content;
  SampleOrigin origin;
};

}  // namespace qtune
