// `qtune tokenize` (the binary, as users call it) against HF tokenizers on the corpus, for the nine real
// tokenizer families: each single-line corpus text goes in as one stdin line, each output line must be
// HF's ids (with --special: HF's ids with add_special_tokens=True).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <sstream>

#include <nlohmann/json.hpp>

#include "tests/data/hf_reference.h"
#include "tests/support/files.h"

namespace qtune {
namespace {

using json = nlohmann::json;
using Ids = std::vector<int>;

// The CLI reads lines: a text with '\n' cannot be one line, and a trailing '\r' is dropped as a CRLF
// line ending (trainer/cmd_tokenize.cpp).
bool fits_one_line(const std::string& text) { return text.find('\n') == std::string::npos && (text.empty() || text.back() != '\r'); }

// Runs qtune tokenize on `input` (one text per line); the output lines, or a failure with qtune's message.
std::vector<std::string> run_tokenize(const std::string& folder, const std::string& input, bool special) {
  const std::string dir = test::temp_dir(special ? "special" : "plain");
  test::write_file(dir + "/in.txt", input);
  const std::string args = "tokenize --tokenizer '" + folder + "'" + (special ? " --special" : "") + " < " + dir + "/in.txt > " + dir + "/out.txt";
  test::CommandResult result = test::run_qtune(args);
  const std::string out = test::read_file(dir + "/out.txt");
  EXPECT_EQ(result.exit_code, 0) << result.out << out.substr(0, 2000);
  std::vector<std::string> lines;
  std::istringstream stream(out);
  for (std::string line; std::getline(stream, line);) lines.push_back(line);
  return lines;
}

class TokenizeCli : public ::testing::TestWithParam<std::string> {};

TEST_P(TokenizeCli, IdsMatchHfTokenizers) {
  QTUNE_REQUIRE_REFERENCE(ref, test::load_tokenizer_reference, GetParam());
  const auto start = std::chrono::steady_clock::now();
  std::string input;
  std::vector<const json*> fed;
  for (const auto& line : ref->lines) {
    const std::string text = line.at("text");
    if (!fits_one_line(text)) continue;
    input += text + "\n";
    fed.push_back(&line);
  }
  ASSERT_GE(fed.size(), 3000u);
  for (const bool special : {false, true}) {
    const char* field = special ? "ids_with_special" : "ids";
    const std::vector<std::string> out = run_tokenize(ref->folder, input, special);
    ASSERT_EQ(out.size(), fed.size()) << field;
    int mismatches = 0;
    for (std::size_t k = 0; k < fed.size(); ++k) {
      const Ids want = fed[k]->at(field).get<Ids>();
      Ids got;
      try {
        got = json::parse(out[k]).get<Ids>();
      } catch (const json::exception&) {
        got = {-1};
      }
      if (got != want && ++mismatches <= 5)
        ADD_FAILURE() << GetParam() << " " << field << ": " << fed[k]->at("text").dump() << "\n qtune " << out[k] << "\n HF    " << json(want).dump();
    }
    EXPECT_EQ(mismatches, 0) << GetParam() << " " << field << ": " << mismatches << " of " << fed.size() << " lines differ";
    std::printf("[qtune tokenize%s] %s: %zu strings (of %zu; the rest hold a line break), %d mismatches\n", special ? " --special" : "",
                GetParam().c_str(), fed.size(), ref->lines.size(), mismatches);
  }
  std::printf("[qtune tokenize] %s: both runs %.2f s\n", GetParam().c_str(), test::seconds_since(start));
}

INSTANTIATE_TEST_SUITE_P(RealFiles, TokenizeCli, ::testing::ValuesIn(test::tokenizer_families()));

}  // namespace
}  // namespace qtune
