// Regex over PCRE2 (8-bit, UTF, UCP, JIT with a per-thread stack), with patterns rewritten to match as
// Oniguruma does in HF tokenizers.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "data/regex.h"

#include <fmt/format.h>
#include <pcre2.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <iterator>

#include "core/error.h"
#include "data/unicode_additions.h"
#include "data/utf8.h"

namespace qtune {

// The pattern compiled twice: with the classes PCRE2 knows (Unicode 14.0), and with the code points
// Unicode 15.0-16.0 added to them. The second, slower because of its longer classes, runs only on text
// that holds such a code point; on any other text both match alike. `exact` is null when the pattern
// has no general-category class.
struct Regex::Compiled {
  pcre2_code* fast = nullptr;
  pcre2_code* exact = nullptr;
  bool fast_jit = false, exact_jit = false;
};

namespace {

// HF tokenizers runs tokenizer.json patterns with Oniguruma; PCRE2 differs from it in two ways that change
// how text splits, and the pattern is rewritten for both before compiling:
//  * Oniguruma's \s is the Unicode White_Space property. PCRE2's \s (UCP) is a fixed list that also has
//    U+180E MONGOLIAN VOWEL SEPARATOR (white space before Unicode 6.3): \s and \S become the property,
//    which also works inside character classes ([^\s\p{L}]).
//  * Oniguruma (tokenizers 0.23) knows Unicode 16.0, PCRE2 10.42 Unicode 14.0: with `with_additions`,
//    \p{X} for a general category X also matches the code points assigned to X since
//    (data/unicode_additions.h). \P{X} gets them outside a character class only (no tokenizer.json
//    negates a category inside one).
class OnigurumaCompatible {
 public:
  OnigurumaCompatible(const std::string& pattern, bool with_additions) : in_(pattern), with_additions_(with_additions) {}

  std::string translate() {
    while (pos_ < in_.size()) {
      const char c = in_[pos_++];
      if (c == '\\' && pos_ < in_.size()) {
        escape(in_[pos_++]);
      } else if (c == '[' && !in_class_) {
        open_class();
      } else if (c == '[' && in_class_ && pos_ < in_.size() && in_[pos_] == ':') {
        copy_through(":]");  // POSIX [:name:] inside a class
      } else {
        if (c == ']' && in_class_) in_class_ = false;
        out_ += c;
      }
    }
    return out_;
  }

 private:
  void open_class() {
    out_ += '[';
    in_class_ = true;
    if (pos_ < in_.size() && in_[pos_] == '^') out_ += in_[pos_++];
    if (pos_ < in_.size() && in_[pos_] == ']') out_ += in_[pos_++];  // a leading ']' is literal
  }

  void copy_through(const char* terminator) {
    const std::size_t end = in_.find(terminator, pos_);
    const std::size_t stop = end == std::string::npos ? in_.size() : end + std::strlen(terminator);
    out_.append(in_, pos_ - 1, stop - (pos_ - 1));
    pos_ = stop;
  }

  void escape(char e) {
    if (e == 'Q') {  // \Q...\E quotes a literal (regex_escape): copied unchanged
      --pos_;  // copy_through starts at the character before pos_: the backslash
      copy_through("\\E");
    } else if (e == 's' || e == 'S') {
      out_ += e == 's' ? "\\p{White_Space}" : "\\P{White_Space}";
    } else if ((e == 'p' || e == 'P') && pos_ < in_.size()) {
      property(e == 'P');
    } else {
      out_ += {'\\', e};  // any other escape, "\\" included, stays as written
    }
  }

  // \p{X} / \pX (or \P): the property plus the code points Unicode 15.0-16.0 gave to category X.
  void property(bool negated) {
    std::string name;
    std::size_t next = pos_;
    if (in_[pos_] == '{') {
      const std::size_t close = in_.find('}', pos_);
      if (close == std::string::npos) {  // unterminated: left for PCRE2 to report
        out_ += negated ? "\\P" : "\\p";
        return;
      }
      name = in_.substr(pos_ + 1, close - pos_ - 1);
      next = close + 1;
    } else {
      name = in_.substr(pos_, 1);
      next = pos_ + 1;
    }
    const std::string written = std::string(negated ? "\\P{" : "\\p{") + name + "}";
    pos_ = next;
    const std::string added = with_additions_ ? added_ranges(name) : std::string();
    if (added.empty() || (negated && in_class_)) {
      out_ += written;
    } else if (in_class_) {
      out_ += written + added;
    } else {
      out_ += (negated ? "[^\\p{" + name + "}" : "[" + written) + added + "]";
    }
  }

  // "\x{a}-\x{b}..." for the additions whose category is `name` ("Lo") or starts with it ("L").
  static std::string added_ranges(const std::string& name) {
    std::string ranges;
    if (name.empty() || name.size() > 2 || !std::isupper(static_cast<unsigned char>(name[0]))) return ranges;
    for (const auto& range : unicode_additions::kRanges) {
      if (name[0] != range.category[0] || (name.size() == 2 && name[1] != range.category[1])) continue;
      ranges += fmt::format("\\x{{{:X}}}-\\x{{{:X}}}", static_cast<uint32_t>(range.first), static_cast<uint32_t>(range.last));
    }
    return ranges;
  }

  const std::string& in_;
  const bool with_additions_;
  std::string out_;
  std::size_t pos_ = 0;
  bool in_class_ = false;
};

// Compiles `pattern` (UTF, UCP: \w, \d and the properties follow Unicode); sets `jit` when the JIT
// compiler took it.
pcre2_code* compile(const std::string& pattern, const std::string& where, bool& jit) {
  int error = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), PCRE2_UTF | PCRE2_UCP, &error, &offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof message);
    input_error("{}: regex does not compile at offset {}: {}", where, offset, reinterpret_cast<const char*>(message));
  }
  jit = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
  return code;
}

// True when `text` (valid UTF-8) holds a code point of data/unicode_additions.h.
bool has_added_code_point(std::string_view text) {
  const auto& ranges = unicode_additions::kRanges;
  for (std::size_t pos = 0; pos < text.size(); ++pos) {
    if (static_cast<unsigned char>(text[pos]) < 0xE0) continue;  // all additions are above U+0800
    const std::size_t length = utf8::valid_sequence_length(text, pos);
    if (length == 0) continue;
    const char32_t cp = utf8::decode_at(text, pos, length);
    auto after = std::upper_bound(std::begin(ranges), std::end(ranges), cp, [](char32_t c, const auto& r) { return c < r.first; });
    if (after != std::begin(ranges) && cp <= std::prev(after)->last) return true;
    pos += length - 1;
  }
  return false;
}

}  // namespace

Regex::Regex(const std::string& pattern, const std::string& where) : compiled_(std::make_unique<Compiled>()), where_(where) {
  const std::string fast = OnigurumaCompatible(pattern, false).translate();
  const std::string exact = OnigurumaCompatible(pattern, true).translate();
  compiled_->fast = compile(fast, where, compiled_->fast_jit);
  if (exact != fast) compiled_->exact = compile(exact, where, compiled_->exact_jit);
}

Regex::~Regex() {
  if (!compiled_) return;
  if (compiled_->fast) pcre2_code_free(compiled_->fast);
  if (compiled_->exact) pcre2_code_free(compiled_->exact);
}

namespace {
// Match data and a JIT stack big enough for long whitespace runs, one per thread.
struct ThreadMatchState {
  pcre2_match_data* data = pcre2_match_data_create(4, nullptr);
  pcre2_jit_stack* stack = pcre2_jit_stack_create(64 * 1024, 8 * 1024 * 1024, nullptr);
  pcre2_match_context* context = pcre2_match_context_create(nullptr);
  ThreadMatchState() { pcre2_jit_stack_assign(context, nullptr, stack); }
  ~ThreadMatchState() {
    pcre2_match_context_free(context);
    pcre2_jit_stack_free(stack);
    pcre2_match_data_free(data);
  }
};
}  // namespace

std::vector<std::pair<std::size_t, std::size_t>> Regex::find_all(std::string_view text) const {
  thread_local ThreadMatchState state;
  std::vector<std::pair<std::size_t, std::size_t>> matches;
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  const bool exact = compiled_->exact != nullptr && has_added_code_point(text);
  const pcre2_code* code = exact ? compiled_->exact : compiled_->fast;
  const bool jit = exact ? compiled_->exact_jit : compiled_->fast_jit;
  std::size_t start = 0;
  while (start <= text.size()) {
    // The text was validated once by the caller; NO_UTF_CHECK avoids re-scanning it per match.
    int rc = jit ? pcre2_jit_match(code, subject, text.size(), start, PCRE2_NO_UTF_CHECK, state.data, state.context)
                 : pcre2_match(code, subject, text.size(), start, PCRE2_NO_UTF_CHECK, state.data, state.context);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) input_error("{}: regex matching failed (PCRE2 error {})", where_, rc);
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(state.data);
    std::size_t begin = ovector[0], end = ovector[1];
    if (end > begin) {
      matches.emplace_back(begin, end);
      start = end;
    } else {
      // Empty match: step over one whole code point.
      start = end + 1;
      while (start < text.size() && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) ++start;
    }
  }
  return matches;
}

std::string regex_escape(std::string_view literal) {
  // \Q...\E quotes everything except a literal "\E", which is split out.
  std::string out = "\\Q";
  for (std::size_t i = 0; i < literal.size(); ++i) {
    if (literal[i] == '\\' && i + 1 < literal.size() && literal[i + 1] == 'E') {
      out += "\\E\\\\\\QE";
      ++i;
    } else {
      out += literal[i];
    }
  }
  return out + "\\E";
}

}  // namespace qtune
