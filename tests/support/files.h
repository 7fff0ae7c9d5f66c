// Torch-free test helpers: temporary folders, files, running the qtune binary, and where the real tokenizer
// files that reference tests read live (outside the repository).
#pragma once

#include <gtest/gtest.h>

#include <string>

namespace qtune::test {

// A fresh empty folder under the system temp dir, unique per test and process.
std::string temp_dir(const std::string& name);

struct CommandResult {
  int exit_code;
  std::string out;  // stdout and stderr together
};
// Runs the qtune binary built with the tests, with `args` (already shell-quoted where needed).
CommandResult run_qtune(const std::string& args);

// Writes the tiny Qwen2-shaped model the training tests use (hidden 64, 2 layers, f32) with qtune's
// byte-level tokenizer into `dir`; a test failure when init-model fails.
void make_byte_model(const std::string& dir);

std::string read_file(const std::string& path);
void write_file(const std::string& path, const std::string& content);

// Folder of a real tokenizer family's files (<folder>/tokenizer.json, tokenizer_config.json), e.g. "llama3":
// $QTUNE_TOKENIZERS/<name> when QTUNE_TOKENIZERS is set, else ../shared/fixtures/tokenizers/<name> from the
// repository root. Empty when that folder has no tokenizer.json.
std::string tokenizer_dir(const std::string& name);
// Where tokenizer_dir() looks, for skip and failure messages.
std::string tokenizers_root();
// True when tests must not skip for lack of reference data (scripts/test.sh sets QTUNE_REQUIRE_REFERENCE=1).
bool reference_required();

}  // namespace qtune::test
