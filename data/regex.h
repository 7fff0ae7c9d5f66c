// qtune::Regex: a compiled PCRE2 pattern (UTF + Unicode properties, JIT) used by the tokenizers'
// pre-tokenizers and normalizers.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace qtune {

class Regex {
 public:
  // Throws InputError mentioning `where` when the pattern does not compile.
  Regex(const std::string& pattern, const std::string& where);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Every non-overlapping match in `text`, left to right, as [begin, end) byte offsets. Empty matches
  // are skipped. `text` must be valid UTF-8. Thread-safe.
  std::vector<std::pair<std::size_t, std::size_t>> find_all(std::string_view text) const;

 private:
  struct Compiled;
  std::unique_ptr<Compiled> compiled_;
  std::string where_;
};

// A literal string as a pattern that matches exactly it.
std::string regex_escape(std::string_view literal);

}  // namespace qtune
