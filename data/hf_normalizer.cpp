// The tokenizer.json normalizers; Unicode normalization forms and lowercasing come from ICU.
#include "data/hf_normalizer.h"

#include <unicode/bytestream.h>
#include <unicode/normalizer2.h>
#include <unicode/uchar.h>

#include <memory>
#include <vector>

#include "core/error.h"
#include "data/regex.h"
#include "data/utf8.h"

namespace qtune {
namespace {

bool is_ascii(const std::string& text) {
  for (unsigned char c : text)
    if (c >= 0x80) return false;
  return true;
}

// Rebuilds `text` by replacing each [begin, end) span with `content`; replaced bytes take the origin
// of the span's first byte.
void replace_spans(AlignedText& text, const std::vector<std::pair<std::size_t, std::size_t>>& spans, const std::string& content) {
  if (spans.empty()) return;
  AlignedText out = text.empty_like();
  std::size_t pos = 0;
  for (auto [begin, end] : spans) {
    out.append_range(text, pos, begin);
    out.append(content, text.origin_at(begin));
    pos = end;
  }
  out.append_range(text, pos, text.text.size());
  text = std::move(out);
}

HfNormalizer unicode_form(const std::string& type, const std::string& where) {
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* normalizer = type == "NFC"    ? icu::Normalizer2::getNFCInstance(status)
                                       : type == "NFD"  ? icu::Normalizer2::getNFDInstance(status)
                                       : type == "NFKC" ? icu::Normalizer2::getNFKCInstance(status)
                                                        : icu::Normalizer2::getNFKDInstance(status);
  if (U_FAILURE(status)) input_error("{}: normalizer {} is unavailable in this ICU build", where, type);
  return [normalizer](AlignedText& text) {
    if (is_ascii(text.text)) return;  // ASCII is invariant under every normalization form
    UErrorCode error = U_ZERO_ERROR;
    if (normalizer->isNormalizedUTF8(text.text, error) && U_SUCCESS(error)) return;
    // Normalize chunk by chunk, cutting where the form has a boundary, so each output byte keeps the
    // origin of the chunk it came from.
    AlignedText out = text.empty_like();
    const std::string& s = text.text;
    std::size_t chunk = 0;
    auto flush = [&](std::size_t end) {
      if (end <= chunk) return;
      std::string normalized;
      icu::StringByteSink<std::string> sink(&normalized);
      UErrorCode e = U_ZERO_ERROR;
      normalizer->normalizeUTF8(0, icu::StringPiece(s.data() + chunk, static_cast<int32_t>(end - chunk)), sink, nullptr, e);
      if (U_FAILURE(e)) normalized.assign(s, chunk, end - chunk);
      out.append(normalized, text.origin_at(chunk));
      chunk = end;
    };
    for (std::size_t pos = 0; pos < s.size();) {
      std::size_t length = std::max<std::size_t>(1, utf8::valid_sequence_length(s, pos));
      if (pos > chunk && normalizer->hasBoundaryBefore(static_cast<UChar32>(utf8::decode_at(s, pos, length)))) flush(pos);
      pos += length;
    }
    flush(s.size());
    text = std::move(out);
  };
}

std::vector<std::pair<std::size_t, std::size_t>> find_literal(const std::string& text, const std::string& literal) {
  std::vector<std::pair<std::size_t, std::size_t>> spans;
  if (literal.empty()) return spans;
  for (std::size_t hit = text.find(literal); hit != std::string::npos; hit = text.find(literal, hit + literal.size()))
    spans.emplace_back(hit, hit + literal.size());
  return spans;
}

void lowercase(AlignedText& text) {
  if (is_ascii(text.text)) {
    for (char& c : text.text)
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return;
  }
  AlignedText out = text.empty_like();
  for (std::size_t pos = 0; pos < text.text.size();) {
    std::size_t length = std::max<std::size_t>(1, utf8::valid_sequence_length(text.text, pos));
    std::string lowered;
    utf8::append(lowered, static_cast<char32_t>(u_tolower(static_cast<UChar32>(utf8::decode_at(text.text, pos, length)))));
    out.append(lowered, text.origin_at(pos));
    pos += length;
  }
  text = std::move(out);
}

}  // namespace

HfNormalizer make_hf_normalizer(const nlohmann::json& spec, const std::string& where) {
  if (spec.is_null()) return [](AlignedText&) {};
  const std::string type = spec.is_object() ? spec.value("type", "") : "";
  if (type == "Sequence") {
    std::vector<HfNormalizer> parts;
    for (const auto& part : spec.value("normalizers", nlohmann::json::array())) parts.push_back(make_hf_normalizer(part, where));
    return [parts](AlignedText& text) {
      for (const auto& part : parts) part(text);
    };
  }
  if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD") return unicode_form(type, where);
  if (type == "Prepend") {
    std::string prefix = spec.value("prepend", "");
    return [prefix](AlignedText& text) {
      if (text.text.empty()) return;
      AlignedText out = text.empty_like();
      out.append(prefix, text.origin_at(0));
      out.append_range(text, 0, text.text.size());
      text = std::move(out);
    };
  }
  if (type == "Replace") {
    const auto& pattern = spec.value("pattern", nlohmann::json::object());
    std::string content = spec.value("content", "");
    if (pattern.contains("String")) {
      std::string from = pattern["String"].get<std::string>();
      return [from, content](AlignedText& text) { replace_spans(text, find_literal(text.text, from), content); };
    }
    if (pattern.contains("Regex")) {
      auto regex = std::make_shared<Regex>(pattern["Regex"].get<std::string>(), where + ": normalizer Replace");
      return [regex, content](AlignedText& text) { replace_spans(text, regex->find_all(text.text), content); };
    }
    input_error("{}: normalizer Replace needs pattern.String or pattern.Regex", where);
  }
  if (type == "Lowercase") return lowercase;
  if (type == "Strip") {
    bool left = spec.value("strip_left", true), right = spec.value("strip_right", true);
    return [left, right](AlignedText& text) {
      const char* blanks = " \t\n\r\v\f";
      std::size_t end = right ? text.text.find_last_not_of(blanks) + 1 : text.text.size();
      std::size_t begin = left ? std::min(end, text.text.find_first_not_of(blanks)) : 0;
      text = text.slice(begin, end);
    };
  }
  input_error("{}: normalizer type '{}' is not supported (supported: Sequence, NFC, NFD, NFKC, NFKD, Prepend, Replace, "
              "Lowercase, Strip)", where, type);
}

}  // namespace qtune
