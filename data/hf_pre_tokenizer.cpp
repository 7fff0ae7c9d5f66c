// The tokenizer.json pre-tokenizers. Regex splitting goes through PCRE2 with Unicode properties.
#include "data/hf_pre_tokenizer.h"

#include <memory>

#include "core/error.h"
#include "data/regex.h"
#include "data/utf8.h"

namespace qtune {
namespace {

// GPT-2's pattern, used by ByteLevel when use_regex is true.
const char* kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
const char* kMetaspace = "\xE2\x96\x81";  // U+2581 "▁"

enum class SplitBehavior { Isolated, Removed, MergedWithPrevious, MergedWithNext, Contiguous };

SplitBehavior parse_behavior(const std::string& name, const std::string& where) {
  if (name == "Isolated") return SplitBehavior::Isolated;
  if (name == "Removed") return SplitBehavior::Removed;
  if (name == "MergedWithPrevious") return SplitBehavior::MergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::MergedWithNext;
  if (name == "Contiguous") return SplitBehavior::Contiguous;
  input_error("{}: pre_tokenizer Split behavior '{}' is unknown", where, name);
}

// Cuts `text` at the regex matches (or at the gaps between them when `invert`), keeping the pieces the
// behavior asks for, and appends them to `out`.
void split_piece(const AlignedText& piece, const Regex& regex, SplitBehavior behavior, bool invert, std::vector<AlignedText>& out) {
  const std::string& text = piece.text;
  struct Span {
    std::size_t begin, end;
    bool matched;
  };
  std::vector<Span> spans;
  std::size_t pos = 0;
  for (auto [begin, end] : regex.find_all(text)) {
    if (begin > pos) spans.push_back({pos, begin, invert});
    spans.push_back({begin, end, !invert});
    pos = end;
  }
  if (pos < text.size()) spans.push_back({pos, text.size(), invert});

  // MergedWithNext: a match waiting for the text after it, as the span where it starts.
  std::size_t pending_begin = std::string::npos;
  for (std::size_t i = 0; i < spans.size(); ++i) {
    const Span& s = spans[i];
    const bool joins_previous = i > 0 && ((behavior == SplitBehavior::MergedWithPrevious && s.matched && !spans[i - 1].matched) ||
                                          (behavior == SplitBehavior::Contiguous && s.matched && spans[i - 1].matched));
    switch (behavior) {
      case SplitBehavior::Removed:
        if (!s.matched) out.push_back(piece.slice(s.begin, s.end));
        break;
      case SplitBehavior::MergedWithNext:
        if (s.matched) {
          if (pending_begin == std::string::npos) pending_begin = s.begin;
        } else {
          out.push_back(piece.slice(pending_begin == std::string::npos ? s.begin : pending_begin, s.end));
          pending_begin = std::string::npos;
        }
        break;
      default:
        if (joins_previous) out.back().append_range(piece, s.begin, s.end);
        else out.push_back(piece.slice(s.begin, s.end));
    }
  }
  if (pending_begin != std::string::npos) out.push_back(piece.slice(pending_begin, text.size()));
}

HfPreTokenizer regex_split(std::shared_ptr<Regex> regex, SplitBehavior behavior, bool invert) {
  return [regex, behavior, invert](std::vector<AlignedText>& pieces, bool) {
    std::vector<AlignedText> out;
    out.reserve(pieces.size() * 4);
    for (const auto& piece : pieces) split_piece(piece, *regex, behavior, invert, out);
    pieces = std::move(out);
  };
}

// Bytes -> byte-level characters, piece by piece; each character keeps its byte's origin.
void to_byte_level(std::vector<AlignedText>& pieces) {
  const auto& table = utf8::byte_to_char();
  for (auto& piece : pieces) {
    if (piece.tracking) {
      AlignedText mapped = piece.empty_like();
      for (std::size_t i = 0; i < piece.text.size(); ++i) mapped.append(table[static_cast<unsigned char>(piece.text[i])], piece.origin_at(i));
      piece = std::move(mapped);
      continue;
    }
    // Hot path of every byte-level tokenizer: each character is 1 or 2 bytes, written in place.
    std::string mapped(piece.text.size() * 2, '\0');
    std::size_t n = 0;
    for (unsigned char b : piece.text) {
      const std::string& c = table[b];
      mapped[n++] = c[0];
      if (c.size() == 2) mapped[n++] = c[1];
    }
    mapped.resize(n);
    piece.text = std::move(mapped);
  }
}

HfPreTokenizer byte_level(const nlohmann::json& spec, const std::string& where) {
  const bool add_prefix_space = spec.value("add_prefix_space", false);
  std::shared_ptr<Regex> regex;
  if (spec.value("use_regex", true)) regex = std::make_shared<Regex>(kGpt2Pattern, where + ": ByteLevel");
  return [regex, add_prefix_space](std::vector<AlignedText>& pieces, bool) {
    if (add_prefix_space) {
      for (auto& piece : pieces) {
        if (piece.text.empty() || piece.text[0] == ' ') continue;
        AlignedText prefixed = piece.empty_like();
        prefixed.append(" ", piece.origin_at(0));
        prefixed.append_range(piece, 0, piece.text.size());
        piece = std::move(prefixed);
      }
    }
    if (regex) {
      std::vector<AlignedText> out;
      for (const auto& piece : pieces) split_piece(piece, *regex, SplitBehavior::Isolated, false, out);
      pieces = std::move(out);
    }
    to_byte_level(pieces);
  };
}

HfPreTokenizer metaspace(const nlohmann::json& spec) {
  std::string replacement = spec.value("replacement", std::string(kMetaspace));
  std::string scheme = spec.contains("prepend_scheme") && spec["prepend_scheme"].is_string()
                           ? spec["prepend_scheme"].get<std::string>()
                           : (spec.value("add_prefix_space", true) ? "always" : "never");
  bool split = spec.value("split", true);
  return [replacement, scheme, split](std::vector<AlignedText>& pieces, bool first_segment) {
    std::vector<AlignedText> out;
    for (auto& piece : pieces) {
      AlignedText text = piece.empty_like();
      bool prepend = scheme == "always" || (scheme == "first" && first_segment);
      if (prepend && !piece.text.empty() && piece.text[0] != ' ' && piece.text.compare(0, replacement.size(), replacement) != 0)
        text.append(replacement, piece.origin_at(0));
      for (std::size_t i = 0; i < piece.text.size(); ++i) {
        if (piece.text[i] == ' ') text.append(replacement, piece.origin_at(i));
        else text.append_range(piece, i, i + 1);
      }
      if (!split) {
        out.push_back(std::move(text));
        continue;
      }
      // Each word starts at a replacement character (MergedWithNext).
      std::size_t start = 0;
      for (std::size_t hit = text.text.find(replacement, 1); hit != std::string::npos; hit = text.text.find(replacement, hit + 1)) {
        if (hit > start) out.push_back(text.slice(start, hit));
        start = hit;
      }
      if (start < text.text.size()) out.push_back(text.slice(start, text.text.size()));
    }
    pieces = std::move(out);
  };
}

}  // namespace

HfPreTokenizer make_hf_pre_tokenizer(const nlohmann::json& spec, const std::string& where) {
  if (spec.is_null()) return [](std::vector<AlignedText>&, bool) {};
  const std::string type = spec.is_object() ? spec.value("type", "") : "";
  if (type == "Sequence") {
    std::vector<HfPreTokenizer> parts;
    for (const auto& part : spec.value("pretokenizers", nlohmann::json::array())) parts.push_back(make_hf_pre_tokenizer(part, where));
    return [parts](std::vector<AlignedText>& pieces, bool first_segment) {
      for (const auto& part : parts) part(pieces, first_segment);
    };
  }
  if (type == "Split") {
    const auto& pattern = spec.value("pattern", nlohmann::json::object());
    std::string regex;
    if (pattern.contains("Regex")) regex = pattern["Regex"].get<std::string>();
    else if (pattern.contains("String")) regex = regex_escape(pattern["String"].get<std::string>());
    else input_error("{}: pre_tokenizer Split needs pattern.Regex or pattern.String", where);
    return regex_split(std::make_shared<Regex>(regex, where + ": pre_tokenizer Split"),
                       parse_behavior(spec.value("behavior", "Isolated"), where), spec.value("invert", false));
  }
  if (type == "ByteLevel") return byte_level(spec, where);
  if (type == "Metaspace") return metaspace(spec);
  if (type == "Digits") {
    const char* pattern = spec.value("individual_digits", false) ? R"(\p{N})" : R"(\p{N}+)";
    return regex_split(std::make_shared<Regex>(pattern, where + ": Digits"), SplitBehavior::Isolated, false);
  }
  if (type == "WhitespaceSplit") return regex_split(std::make_shared<Regex>(R"(\s+)", where), SplitBehavior::Removed, false);
  input_error("{}: pre_tokenizer type '{}' is not supported (supported: Sequence, Split, ByteLevel, Metaspace, Digits, "
              "WhitespaceSplit)", where, type);
}

}  // namespace qtune
