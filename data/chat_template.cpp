// The built-in chat templates, each a direct transcription of the model family's Jinja template into
// segments.
#include "data/chat_template.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.h"
#include "data/utf8.h"

namespace qtune {
namespace {

// Python's str.isspace() code points, which Jinja's `trim` (str.strip) removes.
bool is_unicode_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

std::string trim(const std::string& s) {
  std::size_t begin = 0, end = s.size();
  while (begin < end) {
    std::size_t n = utf8::valid_sequence_length(s, begin);
    if (n == 0 || !is_unicode_space(utf8::decode_at(s, begin, n))) break;
    begin += n;
  }
  while (end > begin) {
    std::size_t start = end - 1;
    while (start > begin && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
    std::size_t n = utf8::valid_sequence_length(s, start);
    if (n == 0 || start + n != end || !is_unicode_space(utf8::decode_at(s, start, n))) break;
    end = start;
  }
  return s.substr(begin, end - begin);
}

std::string strip_chars(const std::string& s, char c, bool left, bool right) {
  std::size_t begin = 0, end = s.size();
  if (left)
    while (begin < end && s[begin] == c) ++begin;
  if (right)
    while (end > begin && s[end - 1] == c) --end;
  return s.substr(begin, end - begin);
}

// Collects segments; empty texts are dropped.
struct Segments {
  std::vector<TemplateSegment> list;
  void add(std::string text, SegmentKind kind, int message) {
    if (!text.empty()) list.push_back({std::move(text), kind, message});
  }
  void scaffold(std::string text, int message = -1) { add(std::move(text), SegmentKind::Scaffold, message); }
  void content(std::string text, int message) { add(std::move(text), SegmentKind::Content, message); }
  void end_of_turn(std::string text, int message) { add(std::move(text), SegmentKind::EndOfTurn, message); }
};

// One ChatML turn: <|im_start|>role\ncontent<|im_end|>\n, the content and <|im_end|> marked as such.
void add_chatml_turn(Segments& s, const std::string& role, std::string content, int message) {
  s.scaffold("<|im_start|>" + role + "\n", message);
  s.content(std::move(content), message);
  s.end_of_turn("<|im_end|>", message);
  s.scaffold("\n", message);
}

// Qwen's tool results: consecutive tool messages share one user turn of <tool_response> blocks.
void add_tool_response(Segments& s, const std::vector<Message>& messages, std::size_t i) {
  const int m = static_cast<int>(i);
  if (i == 0 || messages[i - 1].role != "tool") s.scaffold("<|im_start|>user");
  s.scaffold("\n<tool_response>\n", m);
  s.content(messages[i].content, m);
  s.scaffold("\n</tool_response>", m);
  if (i + 1 == messages.size() || messages[i + 1].role != "tool") s.scaffold("<|im_end|>\n");
}

// Templates written for strict user/assistant alternation after an optional leading system message.
int check_alternating(const std::vector<Message>& messages, const std::string& name) {
  int first = !messages.empty() && messages[0].role == "system" ? 1 : 0;
  for (std::size_t i = first; i < messages.size(); ++i) {
    bool expect_user = (i - first) % 2 == 0;
    if (messages[i].role != (expect_user ? "user" : "assistant"))
      input_error("chat template {}: roles must alternate user/assistant (optionally after one system message); message {} is '{}'",
                  name, i + 1, messages[i].role);
  }
  return first;
}

class TemplateBase : public ChatTemplate {
 public:
  TemplateBase(std::string name, TemplateTokens tokens) : name_(std::move(name)), tokens_(std::move(tokens)) {}
  std::string name() const override { return name_; }

 protected:
  std::string name_;
  TemplateTokens tokens_;
};

// Llama 3 / 3.1 / 3.2: <|start_header_id|>role<|end_header_id|>\n\n{content|trim}<|eot_id|>.
class Llama3Template final : public TemplateBase {
 public:
  using TemplateBase::TemplateBase;
  bool writes_bos() const override { return true; }
  std::vector<TemplateSegment> render(const std::vector<Message>& messages, bool add_generation_prompt) const override {
    Segments s;
    s.scaffold(tokens_.bos);
    for (std::size_t i = 0; i < messages.size(); ++i) {
      const int m = static_cast<int>(i);
      s.scaffold("<|start_header_id|>" + messages[i].role + "<|end_header_id|>\n\n", m);
      s.content(trim(messages[i].content), m);
      s.end_of_turn("<|eot_id|>", m);
    }
    if (add_generation_prompt) s.scaffold("<|start_header_id|>assistant<|end_header_id|>\n\n");
    return s.list;
  }
};

// ChatML (Qwen 2 / 2.5 family): <|im_start|>role\ncontent<|im_end|>\n; `default_system` is inserted
// when the conversation has no system message (Qwen 2.5's template does this). Tool results are
// grouped into one user turn of <tool_response> blocks, as Qwen's templates do.
class ChatmlTemplate final : public TemplateBase {
 public:
  ChatmlTemplate(std::string name, TemplateTokens tokens, std::string default_system, bool qwen_tools)
      : TemplateBase(std::move(name), std::move(tokens)), default_system_(std::move(default_system)), qwen_tools_(qwen_tools) {}
  bool writes_bos() const override { return false; }
  std::vector<TemplateSegment> render(const std::vector<Message>& messages, bool add_generation_prompt) const override {
    Segments s;
    if (!default_system_.empty() && (messages.empty() || messages[0].role != "system"))
      s.scaffold("<|im_start|>system\n" + default_system_ + "<|im_end|>\n");
    for (std::size_t i = 0; i < messages.size(); ++i) {
      const int m = static_cast<int>(i);
      if (qwen_tools_ && messages[i].role == "tool") {
        add_tool_response(s, messages, i);
        continue;
      }
      add_chatml_turn(s, messages[i].role, messages[i].content, m);
    }
    if (add_generation_prompt) s.scaffold("<|im_start|>assistant\n");
    return s.list;
  }

 private:
  std::string default_system_;
  bool qwen_tools_;
};

// Qwen 3: ChatML, plus thinking: assistant turns after the last user query show their reasoning in
// <think>...</think> (an empty block for the final turn), earlier ones have it removed.
class Qwen3Template final : public TemplateBase {
 public:
  using TemplateBase::TemplateBase;
  bool writes_bos() const override { return false; }
  std::vector<TemplateSegment> render(const std::vector<Message>& messages, bool add_generation_prompt) const override {
    Segments s;
    const std::size_t n = messages.size();
    if (n > 0 && messages[0].role == "system") {
      add_chatml_turn(s, "system", messages[0].content, 0);
    }
    // The last user message that is not a wrapped tool response.
    std::size_t last_query = n == 0 ? 0 : n - 1;
    for (std::size_t k = n; k-- > 0;) {
      const std::string& c = messages[k].content;
      bool tool_response = c.rfind("<tool_response>", 0) == 0 && c.size() >= 16 && c.compare(c.size() - 16, 16, "</tool_response>") == 0;
      if (messages[k].role == "user" && !tool_response) {
        last_query = k;
        break;
      }
    }
    for (std::size_t i = 0; i < n; ++i) {
      const Message& msg = messages[i];
      const int m = static_cast<int>(i);
      if (msg.role == "user" || (msg.role == "system" && i > 0)) {
        add_chatml_turn(s, msg.role, msg.content, m);
      } else if (msg.role == "assistant") {
        std::string content = msg.content, reasoning;
        if (msg.reasoning) {
          reasoning = *msg.reasoning;
        } else if (std::size_t close = content.find("</think>"); close != std::string::npos) {
          std::string before = content.substr(0, close);
          content = strip_chars(content.substr(content.rfind("</think>") + 8), '\n', true, false);
          std::size_t open = before.rfind("<think>");
          reasoning = strip_chars(strip_chars(open == std::string::npos ? before : before.substr(open + 7), '\n', false, true), '\n', true, false);
        }
        const bool show_thinking = i > last_query && (i + 1 == n || !reasoning.empty());
        add_chatml_turn(s, "assistant",
                        show_thinking ? "<think>\n" + strip_chars(reasoning, '\n', true, true) + "\n</think>\n\n" + strip_chars(content, '\n', true, false)
                                      : content,
                        m);
      } else if (msg.role == "tool") {
        add_tool_response(s, messages, i);
      }
    }
    if (add_generation_prompt) s.scaffold("<|im_start|>assistant\n");
    return s.list;
  }
};

// Llama 2 chat: <s>[INST] <<SYS>>\nsys\n<</SYS>>\n\nuser [/INST] answer </s>
class Llama2Template final : public TemplateBase {
 public:
  using TemplateBase::TemplateBase;
  bool writes_bos() const override { return true; }
  std::vector<TemplateSegment> render(const std::vector<Message>& messages, bool) const override {
    Segments s;
    const int first = check_alternating(messages, name_);
    for (std::size_t i = first; i < messages.size(); ++i) {
      const int m = static_cast<int>(i);
      if (messages[i].role == "user") {
        std::string body = messages[i].content;
        if (static_cast<int>(i) == first && first == 1) body = "<<SYS>>\n" + messages[0].content + "\n<</SYS>>\n\n" + body;
        s.scaffold(tokens_.bos + "[INST] ", m);
        s.content(trim(body), m);
        s.scaffold(" [/INST]", m);
      } else {
        s.scaffold(" ", m);
        s.content(trim(messages[i].content), m);
        s.end_of_turn(" " + tokens_.eos, m);
      }
    }
    return s.list;
  }
};

// Mistral instruct (v0.1-v0.3): <s>[INST] user [/INST]answer</s>; a system prompt goes before the
// first user message.
class MistralTemplate final : public TemplateBase {
 public:
  using TemplateBase::TemplateBase;
  bool writes_bos() const override { return true; }
  std::vector<TemplateSegment> render(const std::vector<Message>& messages, bool) const override {
    Segments s;
    const int first = check_alternating(messages, name_);
    s.scaffold(tokens_.bos);
    for (std::size_t i = first; i < messages.size(); ++i) {
      const int m = static_cast<int>(i);
      if (messages[i].role == "user") {
        s.scaffold("[INST] ", m);
        if (static_cast<int>(i) == first && first == 1) s.content(messages[0].content + "\n\n", 0);
        s.content(messages[i].content, m);
        s.scaffold(" [/INST]", m);
      } else {
        s.content(messages[i].content, m);
        s.end_of_turn(tokens_.eos, m);
      }
    }
    return s.list;
  }
};

// Gemma (1, 2 and 3): <bos><start_of_turn>user\n...<end_of_turn>\n<start_of_turn>model\n...<end_of_turn>\n;
// contents are trimmed, the system prompt goes at the top of the first user turn followed by a blank
// line. Gemma 3's template keeps the system prompt as written; qtune's Gemma 1/2 source trims it.
// Both refuse roles that do not alternate user/model (Gemma has no tool role).
class GemmaTemplate final : public TemplateBase {
 public:
  GemmaTemplate(std::string name, TemplateTokens tokens, bool trim_system)
      : TemplateBase(std::move(name), std::move(tokens)), trim_system_(trim_system) {}
  bool writes_bos() const override { return true; }
  std::vector<TemplateSegment> render(const std::vector<Message>& messages, bool add_generation_prompt) const override {
    Segments s;
    const int first = check_alternating(messages, name_);
    s.scaffold(tokens_.bos);
    for (std::size_t i = first; i < messages.size(); ++i) {
      const int m = static_cast<int>(i);
      const bool user = messages[i].role == "user";
      s.scaffold(user ? "<start_of_turn>user\n" : "<start_of_turn>model\n", m);
      if (static_cast<int>(i) == first && first == 1)
        s.content((trim_system_ ? trim(messages[0].content) : messages[0].content) + "\n\n", 0);
      s.content(trim(messages[i].content), m);
      if (user) {
        s.scaffold("<end_of_turn>", m);
      } else {
        s.end_of_turn("<end_of_turn>", m);
      }
      s.scaffold("\n", m);
    }
    if (add_generation_prompt) s.scaffold("<start_of_turn>model\n");
    return s.list;
  }

 private:
  bool trim_system_;
};

// The Phi formats: every message is <open>role<close>content<end-of-turn>[after_turn]; the generation
// prompt is the assistant's opening tag. The published templates drop messages of roles they do not
// name without a word; qtune refuses them, so no training data disappears.
struct RoleTagFormat {
  std::string open, close;  // around the role name
  std::string end_of_turn;
  std::string after_turn;   // written after every end of turn
  bool eos_when_finished;   // without a generation prompt the conversation ends with the EOS token
  bool skip_empty_system;   // an empty system message writes no turn
  bool accepts_tool;        // tool results are a turn of their own, written like any other role
};

class RoleTagTemplate final : public TemplateBase {
 public:
  RoleTagTemplate(std::string name, TemplateTokens tokens, RoleTagFormat format)
      : TemplateBase(std::move(name), std::move(tokens)), format_(std::move(format)) {}
  bool writes_bos() const override { return false; }
  std::vector<TemplateSegment> render(const std::vector<Message>& messages, bool add_generation_prompt) const override {
    Segments s;
    for (std::size_t i = 0; i < messages.size(); ++i) {
      const Message& msg = messages[i];
      const int m = static_cast<int>(i);
      if (msg.role == "tool" && !format_.accepts_tool)
        input_error("chat template {}: only system, user and assistant messages can be written; message {} is '{}'", name_, i + 1,
                    msg.role);
      if (msg.role == "system" && msg.content.empty() && format_.skip_empty_system) continue;
      s.scaffold(format_.open + msg.role + format_.close, m);
      s.content(msg.content, m);
      s.end_of_turn(format_.end_of_turn, m);
      s.scaffold(format_.after_turn, m);
    }
    if (add_generation_prompt) {
      s.scaffold(format_.open + "assistant" + format_.close);
    } else if (format_.eos_when_finished) {
      s.scaffold(tokens_.eos);
    }
    return s.list;
  }

 private:
  RoleTagFormat format_;
};

// Phi-3 mini / Phi-3.5 mini instruct: <|user|>\ncontent<|end|>\n ... and the EOS token after a finished
// conversation; Phi-3.5 leaves out an empty system message, Phi-3 writes it.
RoleTagFormat phi3_format(bool skip_empty_system) { return {"<|", "|>\n", "<|end|>", "\n", true, skip_empty_system, false}; }

// Phi-4 (14B): <|im_start|>user<|im_sep|>content<|im_end|>, no newlines, nothing after the last turn. (Its
// first template wrote the assistant header after every user turn instead of as a generation prompt: the
// same text for conversations that alternate and end with the assistant.)
RoleTagFormat phi4_format() { return {"<|im_start|>", "<|im_sep|>", "<|im_end|>", "", false, false, false}; }

// Phi-4-mini instruct: <|user|>content<|end|>, no newlines, EOS after a finished conversation; its
// template writes any role as <|role|>, tool results included.
RoleTagFormat phi4_mini_format() { return {"<|", "|>", "<|end|>", "", true, false, true}; }

// DeepSeek V3: <BOS>{all system prompts, joined by a blank line}<｜User｜>user<｜Assistant｜>answer<｜end▁of▁sentence｜>;
// contents are written as they are. Tool results follow the assistant turn that asked for them in one
// <｜tool▁outputs▁begin｜> block (later blocks, as in the original, without that opening marker); the
// next assistant content then starts with <｜tool▁outputs▁end｜> instead of <｜Assistant｜>.
class DeepSeekV3Template final : public TemplateBase {
 public:
  using TemplateBase::TemplateBase;
  bool writes_bos() const override { return true; }
  std::vector<TemplateSegment> render(const std::vector<Message>& messages, bool add_generation_prompt) const override {
    Segments s;
    s.scaffold(tokens_.bos);
    bool first_system = true;
    for (std::size_t i = 0; i < messages.size(); ++i) {
      if (messages[i].role != "system") continue;
      if (!first_system) s.scaffold("\n\n", static_cast<int>(i));
      s.content(messages[i].content, static_cast<int>(i));
      first_system = false;
    }
    bool in_tool_outputs = false, first_output = true;
    for (std::size_t i = 0; i < messages.size(); ++i) {
      const Message& msg = messages[i];
      const int m = static_cast<int>(i);
      if (msg.role == "user") {
        in_tool_outputs = false;
        s.scaffold(kUser, m);
        s.content(msg.content, m);
      } else if (msg.role == "assistant") {
        s.scaffold(in_tool_outputs ? kToolOutputsEnd : kAssistant, m);
        s.content(msg.content, m);
        s.end_of_turn(kEndOfSentence, m);
        in_tool_outputs = false;
      } else if (msg.role == "tool") {
        in_tool_outputs = true;
        s.scaffold(first_output ? std::string(kToolOutputsBegin) + kToolOutputBegin : std::string("\n") + kToolOutputBegin, m);
        s.content(msg.content, m);
        s.scaffold(kToolOutputEnd, m);
        first_output = false;
      }
    }
    if (in_tool_outputs) s.scaffold(kToolOutputsEnd);
    if (add_generation_prompt && !in_tool_outputs) s.scaffold(kAssistant);
    return s.list;
  }

 private:
  static constexpr const char* kUser = "<\uff5cUser\uff5c>";
  static constexpr const char* kAssistant = "<\uff5cAssistant\uff5c>";
  static constexpr const char* kEndOfSentence = "<\uff5cend\u2581of\u2581sentence\uff5c>";
  static constexpr const char* kToolOutputsBegin = "<\uff5ctool\u2581outputs\u2581begin\uff5c>";
  static constexpr const char* kToolOutputsEnd = "<\uff5ctool\u2581outputs\u2581end\uff5c>";
  static constexpr const char* kToolOutputBegin = "<\uff5ctool\u2581output\u2581begin\uff5c>";
  static constexpr const char* kToolOutputEnd = "<\uff5ctool\u2581output\u2581end\uff5c>";
};

// Alpaca: a preamble (or the system message), then ### Instruction: / ### Response: blocks.
class AlpacaTemplate final : public TemplateBase {
 public:
  using TemplateBase::TemplateBase;
  bool writes_bos() const override { return false; }
  std::vector<TemplateSegment> render(const std::vector<Message>& messages, bool add_generation_prompt) const override {
    Segments s;
    std::size_t first = 0;
    if (!messages.empty() && messages[0].role == "system") {
      s.content(messages[0].content, 0);
      s.scaffold("\n\n", 0);
      first = 1;
    } else {
      s.scaffold("Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n");
    }
    for (std::size_t i = first; i < messages.size(); ++i) {
      const int m = static_cast<int>(i);
      if (messages[i].role == "user") {
        s.scaffold("### Instruction:\n", m);
        s.content(messages[i].content, m);
        s.scaffold("\n\n", m);
      } else if (messages[i].role == "assistant") {
        s.scaffold("### Response:\n", m);
        s.content(messages[i].content, m);
        s.end_of_turn(tokens_.eos, m);
        s.scaffold("\n\n", m);
      } else {
        input_error("chat template alpaca: only user and assistant messages may follow the system message; message {} is '{}'", i + 1,
                    messages[i].role);
      }
    }
    if (add_generation_prompt) s.scaffold("### Response:\n");
    return s.list;
  }
};

}  // namespace

const std::vector<std::string>& chat_template_names() {
  static const std::vector<std::string> names = {"llama3", "llama2", "mistral", "chatml",    "qwen2_5",     "qwen3",  "gemma",
                                                 "gemma3", "phi3",   "phi3_5",  "phi4",      "phi4_mini",   "deepseek_v3", "alpaca"};
  return names;
}

std::unique_ptr<ChatTemplate> make_chat_template(const std::string& name, const TemplateTokens& tokens) {
  if (name == "llama3") return std::make_unique<Llama3Template>(name, tokens);
  if (name == "llama2") return std::make_unique<Llama2Template>(name, tokens);
  if (name == "mistral") return std::make_unique<MistralTemplate>(name, tokens);
  if (name == "chatml") return std::make_unique<ChatmlTemplate>(name, tokens, "", false);
  if (name == "qwen2_5")
    return std::make_unique<ChatmlTemplate>(name, tokens, "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.", true);
  if (name == "qwen3") return std::make_unique<Qwen3Template>(name, tokens);
  if (name == "gemma") return std::make_unique<GemmaTemplate>(name, tokens, true);
  if (name == "gemma3") return std::make_unique<GemmaTemplate>(name, tokens, false);
  if (name == "phi3") return std::make_unique<RoleTagTemplate>(name, tokens, phi3_format(false));
  if (name == "phi3_5") return std::make_unique<RoleTagTemplate>(name, tokens, phi3_format(true));
  if (name == "phi4") return std::make_unique<RoleTagTemplate>(name, tokens, phi4_format());
  if (name == "phi4_mini") return std::make_unique<RoleTagTemplate>(name, tokens, phi4_mini_format());
  if (name == "deepseek_v3") return std::make_unique<DeepSeekV3Template>(name, tokens);
  if (name == "alpaca") return std::make_unique<AlpacaTemplate>(name, tokens);
  input_error("chat_template '{}' is unknown; use one of: {}, tokenizer_default", name, fmt::join(chat_template_names(), ", "));
}

namespace {

[[noreturn]] void no_builtin_format(const std::string& where) {
  input_error("{}: its chat_template matches none of the built-in formats; set chat_template: to one of {}", where,
              fmt::join(chat_template_names(), ", "));
}

// Phi-3 mini / 3.5 mini: <|system|>, <|user|>, <|assistant|> written as tags, <|end|>, EOS at the end.
// (Phi-3 medium writes the assistant tag after every user turn and drops system messages: not this format.)
bool is_phi3_format(const std::string& jinja) {
  for (const char* marker : {"<|system|>", "<|user|>", "<|assistant|>", "<|end|>", "eos_token"})
    if (jinja.find(marker) == std::string::npos) return false;
  return true;
}

}  // namespace

std::string recognize_chat_template(const std::string& jinja, const std::string& where) {
  auto has = [&](const char* marker) { return jinja.find(marker) != std::string::npos; };
  if (jinja.empty()) input_error("{}: has no chat_template; set chat_template: to one of {}", where, fmt::join(chat_template_names(), ", "));
  // Phi-4 reasoning puts a fixed thinking system prompt first: not the plain Phi-4 format.
  if (has("<|im_sep|>")) {
    if (has("<think>")) no_builtin_format(where);
    return "phi4";
  }
  if (has("<|start_header_id|>") && has("<|eot_id|>")) return "llama3";
  if (has("<|im_start|>") && has("<think>")) return "qwen3";
  if (has("<|im_start|>") && has("You are Qwen")) return "qwen2_5";
  if (has("<|im_start|>")) return "chatml";
  if (has("<start_of_turn>") && has("first_user_prefix")) return "gemma3";
  if (has("<start_of_turn>")) return "gemma";
  if (has("<|end|>") && has("<|/tool|>")) return "phi4_mini";
  if (is_phi3_format(jinja)) return has("'system' and message['content']") ? "phi3_5" : "phi3";
  // DeepSeek R1's template also strips <think> blocks and opens one after the prompt: not this format.
  if (has("<\uff5cUser\uff5c>") && has("<\uff5cAssistant\uff5c>") && !has("</think>")) return "deepseek_v3";
  if (has("[INST]") && has("<<SYS>>")) return "llama2";
  if (has("[INST]")) return "mistral";
  if (has("### Instruction")) return "alpaca";
  no_builtin_format(where);
}

std::string join_segments(const std::vector<TemplateSegment>& segments) {
  std::string text;
  for (const auto& segment : segments) text += segment.text;
  return text;
}

}  // namespace qtune
