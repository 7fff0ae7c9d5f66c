// Built-in chat templates (llama3, llama2, mistral, chatml, qwen2_5, qwen3, gemma, gemma3, phi3, phi3_5, phi4,
// phi4_mini, deepseek_v3, alpaca): a conversation rendered as segments that say which text is the model's
// output, so masking can train exactly the assistant turns and their end-of-turn token.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "data/conversation.h"

namespace qtune {

enum class SegmentKind {
  Scaffold,   // template text around turns (headers, role names, BOS): never trained unless train_on_inputs
  Content,    // a message's content as the template writes it
  EndOfTurn,  // what closes a turn the model must learn to emit (<|eot_id|>, <|im_end|>, " </s>", ...)
};

struct TemplateSegment {
  std::string text;
  SegmentKind kind;
  int message;  // index into the messages, -1 for scaffold that belongs to no message
};

// The special-token strings a template writes (from tokenizer_config.json).
struct TemplateTokens {
  std::string bos;
  std::string eos;
};

class ChatTemplate {
 public:
  virtual ~ChatTemplate() = default;
  virtual std::string name() const = 0;
  // Segments whose concatenation is exactly what the model's own Jinja template renders. Throws
  // InputError when the template cannot render the conversation (e.g. roles that do not alternate).
  virtual std::vector<TemplateSegment> render(const std::vector<Message>& messages, bool add_generation_prompt) const = 0;
  // True when the rendered text starts with the BOS token by itself (else callers may prepend it).
  virtual bool writes_bos() const = 0;
};

// The names accepted by `chat_template:` (besides tokenizer_default).
const std::vector<std::string>& chat_template_names();

// Throws InputError listing the names when `name` is unknown.
std::unique_ptr<ChatTemplate> make_chat_template(const std::string& name, const TemplateTokens& tokens);

// The built-in name whose format a model's own Jinja template (tokenizer_config.json "chat_template")
// implements. Throws InputError naming `where` and the options when it matches none.
std::string recognize_chat_template(const std::string& jinja, const std::string& where);

// The segments' text joined.
std::string join_segments(const std::vector<TemplateSegment>& segments);

}  // namespace qtune
