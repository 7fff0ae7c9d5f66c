// read_dataset: JSONL/JSON files -> Samples (alpaca, sharegpt, chat_template, completion, preference),
// with per-sample validation.
#include "data/dataset_reader.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/utf8.h"

namespace qtune {
namespace {

using json = nlohmann::json;

// A problem with one sample. The reader prefixes file:line, then throws or skips it.
struct BadSample : std::runtime_error {
  using std::runtime_error::runtime_error;
};

template <typename... Args>
[[noreturn]] void bad(fmt::format_string<Args...> format, Args&&... args) {
  throw BadSample(fmt::format(format, std::forward<Args>(args)...));
}

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& name : names) out += (out.empty() ? "" : ", ") + name;
  return out;
}

// "instruction, input, response" (at most 8 keys): shows what a sample holds when a field is missing.
std::string keys_of(const json& object) {
  std::vector<std::string> keys;
  for (const auto& item : object.items()) {
    if (keys.size() == 8) {
      keys.push_back("...");
      break;
    }
    keys.push_back(item.key());
  }
  return keys.empty() ? "no fields" : join(keys);
}

// Resolved field names, computed once per dataset.
struct Fields {
  const DatasetSpec& spec;
  std::string messages, role, content, reasoning, train, weight;
  explicit Fields(const DatasetSpec& s)
      : spec(s),
        messages(s.messages_field()),
        role(s.message_field("role")),
        content(s.message_field("content")),
        reasoning(s.message_field("reasoning_content")),
        train(s.message_field("train")),
        weight(s.message_field("weight")) {}
};

// ---- fields of one object --------------------------------------------------------------------------

// object[key] when present and not null, else nullptr.
json* find_field(json& object, const std::string& key) {
  auto it = object.find(key);
  return (it == object.end() || it->is_null()) ? nullptr : &*it;
}

[[noreturn]] void missing_field(const json& object, const std::string& key, const char* config_key) {
  bad("missing field '{}' (the sample has: {}); fix the data or name the right field with {}: in the dataset config",
      key, keys_of(object), config_key);
}

std::string take_string(json& value, const std::string& name) {
  if (!value.is_string()) bad("field '{}' must be a string, not {}", name, value.type_name());
  return std::move(value.get_ref<std::string&>());
}

std::string required_string(json& object, const std::string& key, const char* config_key) {
  json* value = find_field(object, key);
  if (value == nullptr) missing_field(object, key, config_key);
  return take_string(*value, key);
}

std::optional<std::string> optional_string(json& object, const std::string& key) {
  json* value = find_field(object, key);
  if (value == nullptr) return std::nullopt;
  return take_string(*value, key);
}

// ---- messages --------------------------------------------------------------------------------------

// OpenAI content: a string, or a list of parts of which only {"type": "text", "text": ...} are supported.
std::string take_content(json& value, const std::string& name) {
  if (value.is_string()) return std::move(value.get_ref<std::string&>());
  if (!value.is_array()) bad("field '{}' must be a string or a list of text parts, not {}", name, value.type_name());
  std::string text;
  for (std::size_t i = 0; i < value.size(); ++i) {
    json& part = value[i];
    auto part_name = [&] { return fmt::format("{}[{}]", name, i); };
    if (!part.is_object())
      bad("field '{}' must be an object {{\"type\": \"text\", \"text\": ...}}, not {}", part_name(), part.type_name());
    auto type = part.find("type");
    if (type == part.end() || !type->is_string() || type->get_ref<const std::string&>() != "text")
      bad("field '{}' is not a text part ({}); only {{\"type\": \"text\", \"text\": ...}} parts are supported",
          part_name(), type == part.end() ? std::string("no type") : "type " + type->dump());
    auto part_text = part.find("text");
    if (part_text == part.end() || !part_text->is_string()) bad("field '{}.text' must be a string", part_name());
    text += part_text->get_ref<const std::string&>();
  }
  return text;
}

Message take_message(json& object, const std::string& name, const Fields& fields) {
  if (!object.is_object())
    bad("field '{}' must be a message object with '{}' and '{}', not {}", name, fields.role, fields.content,
        object.type_name());
  Message message;
  json* role = find_field(object, fields.role);
  if (role == nullptr)
    bad("field '{}' has no '{}' (the message has: {}); name the role field with message_property_mappings: "
        "{{role: <field>}} in the dataset config",
        name, fields.role, keys_of(object));
  const std::string role_name = take_string(*role, name + "." + fields.role);
  auto normalized = fields.spec.normalize_role(role_name);
  if (!normalized)
    bad("field '{}' has unknown role '{}'; accepted roles: {}; map other names with roles: in the dataset config, "
        "e.g. roles: {{assistant: [{}]}}",
        name, role_name, join(fields.spec.accepted_roles()), role_name);
  message.role = std::move(*normalized);

  auto tool_calls = object.find("tool_calls");
  if (tool_calls != object.end() && !tool_calls->is_null() && !(tool_calls->is_array() && tool_calls->empty()))
    bad("field '{}' has tool_calls, which qtune does not support yet; remove them or skip the sample", name);
  auto content_it = object.find(fields.content);
  if (content_it != object.end() && content_it->is_null())
    bad("field '{}.{}' is null; give the message text (an empty string is fine)", name, fields.content);
  json* content = find_field(object, fields.content);
  if (content == nullptr)
    bad("field '{}' has no '{}' (the message has: {}); name the content field with message_property_mappings: "
        "{{content: <field>}} in the dataset config",
        name, fields.content, keys_of(object));
  message.content = take_content(*content, name + "." + fields.content);

  if (json* reasoning = find_field(object, fields.reasoning))
    message.reasoning = take_string(*reasoning, name + "." + fields.reasoning);
  if (json* train = find_field(object, fields.train)) {
    if (!train->is_boolean()) bad("field '{}.{}' must be true or false, not {}", name, fields.train, train->type_name());
    message.train = train->get<bool>();
  }
  if (json* weight = find_field(object, fields.weight)) {
    const bool number = weight->is_number();
    const double w = number ? weight->get<double>() : -1.0;
    if (!number || (w != 0.0 && w != 1.0))
      bad("field '{}.{}' must be 0 or 1, not {}", name, fields.weight, weight->dump());
    if (message.train && *message.train != (w == 1.0))
      bad("field '{}' has '{}' and '{}' that disagree; keep one", name, fields.train, fields.weight);
    message.train = (w == 1.0);
  }
  return message;
}

std::vector<Message> take_messages(json& list, const std::string& name, const Fields& fields) {
  if (!list.is_array()) bad("field '{}' must be a list of messages, not {}", name, list.type_name());
  std::vector<Message> messages;
  messages.reserve(list.size());
  for (std::size_t i = 0; i < list.size(); ++i)
    messages.push_back(take_message(list[i], fmt::format("{}[{}]", name, i), fields));
  return messages;
}

// A trainable conversation: optional system messages, then a user message, and an assistant message somewhere.
void check_conversation(const std::vector<Message>& messages, const std::string& name) {
  if (messages.empty()) bad("field '{}' is an empty conversation; remove the sample", name);
  std::size_t first = 0;
  while (first < messages.size() && messages[first].role == "system") ++first;
  if (first < messages.size() && messages[first].role != "user")
    bad("the conversation in '{}' must start with a system or user message, but {}[{}] is {}", name, name, first,
        messages[first].role);
  if (std::none_of(messages.begin(), messages.end(), [](const Message& m) { return m.role == "assistant"; }))
    bad("the conversation in '{}' has no assistant message, so there is nothing to train on", name);
}

void add_system(std::vector<Message>& messages, std::optional<std::string> system, const std::string& system_field,
                const std::string& name) {
  if (!system || system->empty()) return;
  if (!messages.empty() && messages.front().role == "system")
    bad("the sample has both a '{}' field and a system message in '{}'; keep one", system_field, name);
  messages.insert(messages.begin(), Message{"system", std::move(*system), std::nullopt, std::nullopt});
}

// ---- one sample per type ---------------------------------------------------------------------------

Conversation read_alpaca(json& object, const Fields& fields) {
  const DatasetSpec& spec = fields.spec;
  std::string user = required_string(object, spec.field_instruction, "field_instruction");
  std::optional<std::string> input = optional_string(object, spec.field_input);
  std::string output = required_string(object, spec.field_output, "field_output");
  std::optional<std::string> system = optional_string(object, spec.field_system);
  if (input && !input->empty()) {
    if (!user.empty()) user += kAlpacaInputSeparator;
    user += *input;
  }
  if (user.empty())
    bad("fields '{}' and '{}' are both empty, so the sample has no prompt", spec.field_instruction, spec.field_input);
  Conversation conversation;
  add_system(conversation.messages, std::move(system), spec.field_system, spec.field_instruction);
  conversation.messages.push_back(Message{"user", std::move(user), std::nullopt, std::nullopt});
  conversation.messages.push_back(Message{"assistant", std::move(output), std::nullopt, std::nullopt});
  return conversation;
}

Conversation read_chat(json& object, const Fields& fields) {
  json* list = find_field(object, fields.messages);
  if (list == nullptr) missing_field(object, fields.messages, "field_messages");
  Conversation conversation{take_messages(*list, fields.messages, fields)};
  if (fields.spec.type == DatasetType::sharegpt)  // LLaMA-Factory's sharegpt has an optional system column
    add_system(conversation.messages, optional_string(object, fields.spec.field_system), fields.spec.field_system,
               fields.messages);
  check_conversation(conversation.messages, fields.messages);
  return conversation;
}

CompletionText read_completion(json& object, const Fields& fields) {
  std::string text = required_string(object, fields.spec.field, "field");
  if (text.empty()) bad("field '{}' is empty; remove the sample", fields.spec.field);
  return CompletionText{std::move(text)};
}

// A preference part: a string becomes one message with `role`, a list is read as messages.
std::vector<Message> take_part(json& value, const std::string& name, const char* role, const Fields& fields) {
  if (value.is_string()) return {Message{role, take_string(value, name), std::nullopt, std::nullopt}};
  if (!value.is_array()) bad("field '{}' must be a string or a list of messages, not {}", name, value.type_name());
  return take_messages(value, name, fields);
}

bool same_message(const Message& a, const Message& b) {
  return a.role == b.role && a.content == b.content && a.reasoning == b.reasoning;
}

// TRL's implicit prompt: chosen and rejected are whole conversations; the prompt is their longest common
// prefix of messages, cut back to end with a user message.
std::vector<Message> split_shared_prompt(std::vector<Message>& chosen, std::vector<Message>& rejected,
                                         const std::string& chosen_name, const std::string& rejected_name) {
  std::size_t shared = 0;
  while (shared < chosen.size() && shared < rejected.size() && same_message(chosen[shared], rejected[shared])) ++shared;
  while (shared > 0 && chosen[shared - 1].role != "user") --shared;
  if (shared == 0)
    bad("fields '{}' and '{}' share no prompt (no common leading messages ending with a user message); add a "
        "prompt field or make both full conversations",
        chosen_name, rejected_name);
  std::vector<Message> prompt(std::make_move_iterator(chosen.begin()), std::make_move_iterator(chosen.begin() + shared));
  chosen.erase(chosen.begin(), chosen.begin() + shared);
  rejected.erase(rejected.begin(), rejected.begin() + shared);
  return prompt;
}

void check_answer(const std::vector<Message>& answer, const std::string& name) {
  if (answer.empty()) bad("field '{}' has no assistant answer", name);
  for (std::size_t i = 0; i < answer.size(); ++i) {
    if (answer[i].role != "assistant")
      bad("field '{}' must hold only assistant messages after the prompt, but message {} is {}", name, i,
          answer[i].role);
    // An empty side is a degenerate preference: DPO would learn "prefer (or avoid) saying nothing".
    if (answer[i].content.empty()) bad("field '{}' has an empty answer; remove the pair or fill it", name);
  }
}

// Checked on the answers, after any prompt split, so that it holds for every way a pair can be written.
void check_answers_differ(const std::vector<Message>& chosen, const std::vector<Message>& rejected,
                          const std::string& chosen_name, const std::string& rejected_name) {
  if (std::equal(chosen.begin(), chosen.end(), rejected.begin(), rejected.end(), same_message))
    bad("fields '{}' and '{}' are identical, so there is no preference to learn", chosen_name, rejected_name);
}

PreferencePair read_preference(json& object, const Fields& fields) {
  const DatasetSpec& spec = fields.spec;
  json* chosen_value = find_field(object, spec.field_chosen);
  if (chosen_value == nullptr) missing_field(object, spec.field_chosen, "field_chosen");
  json* rejected_value = find_field(object, spec.field_rejected);
  if (rejected_value == nullptr) missing_field(object, spec.field_rejected, "field_rejected");
  json* prompt_value = find_field(object, spec.field_prompt);
  std::optional<std::string> system = optional_string(object, spec.field_system);

  PreferencePair pair;
  if (prompt_value == nullptr && !(chosen_value->is_array() && rejected_value->is_array()))
    missing_field(object, spec.field_prompt, "field_prompt");
  if (prompt_value != nullptr) pair.prompt = take_part(*prompt_value, spec.field_prompt, "user", fields);
  pair.chosen = take_part(*chosen_value, spec.field_chosen, "assistant", fields);
  pair.rejected = take_part(*rejected_value, spec.field_rejected, "assistant", fields);

  // Whole conversations in chosen/rejected (TRL implicit prompt, or UltraFeedback's prompt + full chats).
  const bool whole = !pair.chosen.empty() && pair.chosen.front().role != "assistant";
  if (prompt_value == nullptr || whole) {
    std::vector<Message> shared = split_shared_prompt(pair.chosen, pair.rejected, spec.field_chosen, spec.field_rejected);
    if (prompt_value != nullptr && !pair.prompt.empty() && pair.prompt.back().content != shared.back().content)
      bad("field '{}' differs from the last user message that '{}' and '{}' share; fix the data", spec.field_prompt,
          spec.field_chosen, spec.field_rejected);
    pair.prompt = std::move(shared);
  }
  add_system(pair.prompt, std::move(system), spec.field_system, spec.field_prompt);
  if (pair.prompt.empty()) bad("field '{}' is empty", spec.field_prompt);
  if (pair.prompt.back().role != "user")
    bad("the prompt in '{}' must end with a user message, not {}", spec.field_prompt, pair.prompt.back().role);
  std::size_t first = 0;
  while (first < pair.prompt.size() && pair.prompt[first].role == "system") ++first;
  if (pair.prompt[first].role != "user")
    bad("the prompt in '{}' must start with a system or user message, not {}", spec.field_prompt,
        pair.prompt[first].role);
  check_answer(pair.chosen, spec.field_chosen);
  check_answer(pair.rejected, spec.field_rejected);
  check_answers_differ(pair.chosen, pair.rejected, spec.field_chosen, spec.field_rejected);
  return pair;
}

decltype(Sample::content) read_sample(json& object, const Fields& fields) {
  switch (fields.spec.type) {
    case DatasetType::alpaca: return read_alpaca(object, fields);
    case DatasetType::sharegpt:
    case DatasetType::chat_template: return read_chat(object, fields);
    case DatasetType::completion: return read_completion(object, fields);
    case DatasetType::preference: return read_preference(object, fields);
  }
  bad("unknown dataset type");
}

// ---- files -----------------------------------------------------------------------------------------

bool is_json_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::string lowercase_extension(const std::filesystem::path& path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext;
}

std::vector<std::string> dataset_files(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code error;
  const fs::file_status status = fs::status(path, error);
  if (!fs::exists(status)) input_error("{}: no such file or folder; check the dataset's path:", path);
  if (!fs::is_directory(status)) {
    const std::string ext = lowercase_extension(path);
    if (ext != ".jsonl" && ext != ".json")
      input_error("{}: unsupported file type '{}'; qtune reads JSON Lines (.jsonl) or JSON (.json) files (from "
                  "pandas: df.to_json('data.jsonl', orient='records', lines=True, force_ascii=False))",
                  path, ext);
    return {path};
  }
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(path, error)) {
    const std::string name = entry.path().filename().string();
    const std::string ext = lowercase_extension(entry.path());
    if (entry.is_regular_file() && name[0] != '.' && (ext == ".jsonl" || ext == ".json")) files.push_back(entry.path().string());
  }
  if (error) input_error("{}: cannot list the folder ({})", path, error.message());
  if (files.empty()) input_error("{}: the folder holds no .jsonl or .json files", path);
  std::sort(files.begin(), files.end());
  return files;
}

std::string read_whole_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) input_error("{}: cannot open the file (permissions?)", path);
  std::string text(static_cast<std::size_t>(in.tellg()), '\0');
  in.seekg(0);
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (!in) input_error("{}: cannot read the file", path);
  return text;
}

// Line and column (1-based) of byte `offset` in `text`.
std::pair<std::size_t, std::size_t> line_and_column(std::string_view text, std::size_t offset) {
  offset = std::min(offset, text.size());
  const std::size_t lines = static_cast<std::size_t>(std::count(text.begin(), text.begin() + offset, '\n'));
  const std::size_t line_start = text.rfind('\n', offset == 0 ? 0 : offset - 1);
  const std::size_t column = (line_start == std::string_view::npos || offset == 0) ? offset + 1 : offset - line_start;
  return {lines, column};
}

// nlohmann's message without its prefix and lexer buffer: "[json.exception.parse_error.101] parse error at
// line 1, column 5: syntax error ...; last read: '...'" -> "syntax error ...".
std::string nlohmann_description(const json::exception& error) {
  std::string what = error.what();
  if (what.rfind("[json.exception.", 0) == 0) what = what.substr(what.find(']') + 2);
  if (what.rfind("parse error", 0) == 0 && what.find(": ") != std::string::npos) what = what.substr(what.find(": ") + 2);
  what = what.substr(0, what.find("; last read:"));  // the lexer's buffer, often more confusing than useful
  if (what.size() > 160) what = what.substr(0, 160) + "...";
  return utf8::repair(what);
}

// What is wrong with JSON text nlohmann refused: invalid UTF-8, or its own description, and where.
// `first_line` is the file line the text starts on; `with_line` adds it (array elements span lines).
std::string describe_parse_error(std::string_view text, const json::parse_error& error, std::size_t first_line,
                                 bool with_line) {
  const std::size_t error_offset = error.byte > 0 ? std::min<std::size_t>(error.byte - 1, text.size()) : 0;
  std::size_t offset = 0;  // the first byte that does not start a valid UTF-8 sequence
  while (offset < text.size()) {
    const std::size_t length = utf8::valid_sequence_length(text, offset);
    if (length == 0) break;
    offset += length;
  }
  std::string what, fix = "fix the JSON";
  if (offset < text.size() && offset <= error_offset) {
    what = "invalid UTF-8";
    fix = "re-save the file as UTF-8";
  } else {
    what = nlohmann_description(error);
    offset = error_offset;
  }
  const auto [lines, column] = line_and_column(text, offset);
  if (!with_line) return fmt::format("{} at column {}; {}", what, column, fix);
  return fmt::format("{} at line {}, column {}; {}", what, first_line + lines, column, fix);
}

class Reader {
 public:
  Reader(const DatasetSpec& spec, ReadReport& report, std::vector<Sample>& out)
      : fields_(spec), report_(report), out_(out) {}

  void read_file(const std::string& path) {
    const std::string text = read_whole_file(path);
    std::string_view view(text);
    if (view.substr(0, 3) == "\xEF\xBB\xBF") view.remove_prefix(3);  // UTF-8 byte order mark
    std::size_t start = 0, line = 1;
    while (start < view.size() && is_json_space(view[start])) line += view[start++] == '\n';
    if (start < view.size() && view[start] == '[')
      read_array(view, path, start, line);
    else
      read_lines(view, path);
  }

 private:
  void read_lines(std::string_view text, const std::string& path) {
    std::size_t line = 0;
    bool first_error = true;
    for (std::size_t pos = 0; pos < text.size();) {
      std::size_t end = text.find('\n', pos);
      if (end == std::string_view::npos) end = text.size();
      std::string_view content = text.substr(pos, end - pos);
      pos = end + 1;
      ++line;
      if (std::all_of(content.begin(), content.end(), is_json_space)) continue;
      if (content.back() == '\r') content.remove_suffix(1);
      json object;
      try {
        object = json::parse(content.data(), content.data() + content.size());
      } catch (const json::parse_error& error) {
        // One JSON object spread over lines is not JSON Lines: say so instead of reporting line 1.
        if (first_error && json::accept(text.data(), text.data() + text.size()))
          input_error("{}: holds one JSON value over several lines; qtune reads JSON Lines (one object per line) or "
                      "a JSON array of objects",
                      path);
        first_error = false;
        reject(fmt::format("{}:{}: malformed JSON: {}", path, line, describe_parse_error(content, error, line, false)));
        continue;
      } catch (const json::exception& error) {  // e.g. out_of_range: a number too large for a double
        reject(fmt::format("{}:{}: malformed JSON: {}; fix the JSON", path, line, nlohmann_description(error)));
        continue;
      }
      add(object, path, line, [&] { return fmt::format("{}:{}", path, line); });
    }
  }

  // The elements of a top-level array, each parsed on its own so that one bad element can be skipped.
  void read_array(std::string_view text, const std::string& path, std::size_t pos, std::size_t line) {
    const std::size_t n = text.size();
    std::size_t element = 0;
    ++pos;  // '['
    auto skip_space = [&] {
      while (pos < n && is_json_space(text[pos])) line += text[pos++] == '\n';
    };
    skip_space();
    bool closed = pos < n && text[pos] == ']';
    if (closed) ++pos;
    while (!closed) {
      skip_space();
      const std::size_t start = pos, start_line = line;
      int depth = 0;
      bool in_string = false;
      for (; pos < n; ++pos) {
        const char c = text[pos];
        if (c == '\n') ++line;
        if (in_string) {
          if (c == '\\')
            ++pos;
          else if (c == '"')
            in_string = false;
        } else if (c == '"') {
          in_string = true;
        } else if (c == '{' || c == '[') {
          ++depth;
        } else if ((c == '}' || c == ']') && depth > 0) {
          --depth;
        } else if (depth == 0 && (c == ',' || c == ']')) {
          break;
        }
      }
      if (pos >= n)
        input_error("{}: the JSON array is not closed (the file ends inside element {}); is the file truncated?",
                    path, element + 1);
      ++element;
      closed = text[pos] == ']';
      ++pos;
      const std::string_view body = text.substr(start, pos - 1 - start);
      auto location = [&] { return fmt::format("{}:{} (array element {}, line {})", path, element, element, start_line); };
      json object;
      try {
        object = json::parse(body.data(), body.data() + body.size());
      } catch (const json::parse_error& error) {
        reject(fmt::format("{}: malformed JSON: {}", location(), describe_parse_error(body, error, start_line, true)));
        continue;
      } catch (const json::exception& error) {
        reject(fmt::format("{}: malformed JSON: {}; fix the JSON", location(), nlohmann_description(error)));
        continue;
      }
      add(object, path, element, location);
    }
    skip_space();
    if (pos < n) input_error("{}:{}: unexpected text after the JSON array's closing ']'", path, line);
  }

  template <typename Location>
  void add(json& object, const std::string& path, std::size_t number, const Location& location) {
    if (!object.is_object()) {
      reject(fmt::format("{}: expected a JSON object, found {}", location(), object.type_name()));
      return;
    }
    try {
      out_.push_back(Sample{read_sample(object, fields_), SampleOrigin{path, number}});
    } catch (const BadSample& error) {
      reject(fmt::format("{}: {}", location(), error.what()));
    }
  }

  void reject(std::string message) {
    if (!fields_.spec.skip_bad_lines)
      throw InputError(message + " (or set skip_bad_lines: true to skip bad samples)");
    ++report_.skipped;
    if (report_.skip_reasons.size() < ReadReport::kMaxSkipReasons) report_.skip_reasons.push_back(std::move(message));
  }

  Fields fields_;
  ReadReport& report_;
  std::vector<Sample>& out_;
};

}  // namespace

std::vector<Sample> read_dataset(const DatasetSpec& spec, ReadReport& report) {
  report = ReadReport{};
  std::vector<Sample> samples;
  Reader reader(spec, report, samples);
  for (const auto& file : dataset_files(spec.path)) reader.read_file(file);
  report.read = samples.size();
  if (samples.empty()) {
    if (report.skipped == 0) input_error("{}: no samples (the {} dataset is empty)", spec.path, dataset_type_name(spec.type));
    input_error("{}: no samples: all {} were bad, the first: {}", spec.path, report.skipped, report.skip_reasons.front());
  }
  return samples;
}

}  // namespace qtune
