// Regex over PCRE2 (8-bit, UTF, UCP, JIT with a per-thread stack). Depends on: data/regex.h, PCRE2.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "data/regex.h"

#include <pcre2.h>

#include "core/error.h"

namespace qtune {

struct Regex::Compiled {
  pcre2_code* code = nullptr;
  bool jit = false;
};

Regex::Regex(const std::string& pattern, const std::string& where) : compiled_(std::make_unique<Compiled>()), where_(where) {
  int error = 0;
  PCRE2_SIZE offset = 0;
  // UCP: \s, \w, \d and friends use Unicode properties, as the Rust and JS engines of the references do.
  compiled_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), PCRE2_UTF | PCRE2_UCP,
                                  &error, &offset, nullptr);
  if (compiled_->code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof message);
    input_error("{}: regex does not compile at offset {}: {}", where, offset, reinterpret_cast<const char*>(message));
  }
  compiled_->jit = pcre2_jit_compile(compiled_->code, PCRE2_JIT_COMPLETE) == 0;
}

Regex::~Regex() {
  if (compiled_ && compiled_->code) pcre2_code_free(compiled_->code);
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
  std::size_t start = 0;
  while (start <= text.size()) {
    // The text was validated once by the caller; NO_UTF_CHECK avoids re-scanning it per match.
    int rc = compiled_->jit ? pcre2_jit_match(compiled_->code, subject, text.size(), start, PCRE2_NO_UTF_CHECK, state.data, state.context)
                            : pcre2_match(compiled_->code, subject, text.size(), start, PCRE2_NO_UTF_CHECK, state.data, state.context);
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
