// The tokenizer.json decoders.
#include "data/hf_decoder.h"

#include "core/error.h"
#include "data/utf8.h"

namespace qtune {
namespace {

void replace_all(std::string& text, const std::string& from, const std::string& to) {
  if (from.empty()) return;
  for (std::size_t pos = text.find(from); pos != std::string::npos; pos = text.find(from, pos + to.size())) text.replace(pos, from.size(), to);
}

// Byte-level characters -> the bytes they stand for; characters outside the map are kept as they are
// (added tokens such as "<|eot_id|>" are plain text).
void byte_level(std::vector<std::string>& tokens) {
  for (auto& token : tokens) {
    std::string bytes;
    for (std::size_t pos = 0; pos < token.size();) {
      std::size_t length = utf8::valid_sequence_length(token, pos);
      if (length == 0) {
        bytes += token[pos++];
        continue;
      }
      int b = utf8::char_to_byte(utf8::decode_at(token, pos, length));
      if (b >= 0) bytes += static_cast<char>(b);
      else bytes.append(token, pos, length);
      pos += length;
    }
    token = std::move(bytes);
  }
}

// "<0x41>" -> 0x41, or -1 when `token` is not a byte token.
int byte_token_value(const std::string& token) {
  if (token.size() != 6 || token.compare(0, 3, "<0x") != 0 || token[5] != '>') return -1;
  int value = 0;
  for (int i = 3; i < 5; ++i) {
    char c = token[i];
    int digit = (c >= '0' && c <= '9') ? c - '0' : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
    if (digit < 0) return -1;
    value = value * 16 + digit;
  }
  return value;
}

// Runs of byte tokens become the text they encode; a run that is not valid UTF-8 becomes one U+FFFD
// per byte, as HF's ByteFallback decoder does.
void byte_fallback(std::vector<std::string>& tokens) {
  std::vector<std::string> out;
  std::string run;
  std::size_t run_count = 0;
  auto flush = [&] {
    if (run_count == 0) return;
    if (utf8::is_valid(run)) {
      out.push_back(run);
    } else {
      for (std::size_t i = 0; i < run_count; ++i) out.push_back("\xEF\xBF\xBD");
    }
    run.clear();
    run_count = 0;
  };
  for (auto& token : tokens) {
    int b = byte_token_value(token);
    if (b >= 0) {
      run += static_cast<char>(b);
      ++run_count;
    } else {
      flush();
      out.push_back(std::move(token));
    }
  }
  flush();
  tokens = std::move(out);
}

}  // namespace

HfDecoder make_hf_decoder(const nlohmann::json& spec, const std::string& where) {
  if (spec.is_null()) return [](std::vector<std::string>&) {};
  const std::string type = spec.is_object() ? spec.value("type", "") : "";
  if (type == "Sequence") {
    std::vector<HfDecoder> parts;
    for (const auto& part : spec.value("decoders", nlohmann::json::array())) parts.push_back(make_hf_decoder(part, where));
    return [parts](std::vector<std::string>& tokens) {
      for (const auto& part : parts) part(tokens);
    };
  }
  if (type == "ByteLevel") return byte_level;
  if (type == "ByteFallback") return byte_fallback;
  if (type == "Fuse") {
    return [](std::vector<std::string>& tokens) {
      std::string all;
      for (const auto& token : tokens) all += token;
      tokens.assign(1, std::move(all));
    };
  }
  if (type == "Replace") {
    const auto& pattern = spec.value("pattern", nlohmann::json::object());
    if (!pattern.contains("String")) input_error("{}: decoder Replace supports pattern.String only", where);
    std::string from = pattern["String"].get<std::string>(), to = spec.value("content", "");
    return [from, to](std::vector<std::string>& tokens) {
      for (auto& token : tokens) replace_all(token, from, to);
    };
  }
  if (type == "Strip") {
    // Removes up to `start` leading and `stop` trailing copies of `content` from every token.
    std::string content = spec.value("content", " ");
    int start = spec.value("start", 0), stop = spec.value("stop", 0);
    return [content, start, stop](std::vector<std::string>& tokens) {
      for (auto& token : tokens) {
        for (int i = 0; i < start && token.compare(0, content.size(), content) == 0; ++i) token.erase(0, content.size());
        for (int i = 0; i < stop && token.size() >= content.size() &&
                        token.compare(token.size() - content.size(), content.size(), content) == 0; ++i)
          token.erase(token.size() - content.size());
      }
    };
  }
  if (type == "Metaspace") {
    std::string replacement = spec.value("replacement", "\xE2\x96\x81");
    bool strip_first = spec.contains("prepend_scheme") && spec["prepend_scheme"].is_string()
                           ? spec["prepend_scheme"].get<std::string>() != "never"
                           : spec.value("add_prefix_space", true);
    return [replacement, strip_first](std::vector<std::string>& tokens) {
      for (std::size_t i = 0; i < tokens.size(); ++i) {
        replace_all(tokens[i], replacement, " ");
        if (i == 0 && strip_first && !tokens[i].empty() && tokens[i][0] == ' ') tokens[i].erase(0, 1);
      }
    };
  }
  input_error("{}: decoder type '{}' is not supported (supported: Sequence, ByteLevel, ByteFallback, Fuse, Replace, Strip, "
              "Metaspace)", where, type);
}

}  // namespace qtune
