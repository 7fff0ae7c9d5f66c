// Helpers shared by the tests: temporary folders, running the qtune binary, comparing tensors.
// Depends on: GoogleTest, core/torch.h.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "core/torch.h"

namespace qtune::test {

// A fresh empty folder under the system temp dir, unique per test and process.
std::string temp_dir(const std::string& name);

struct CommandResult {
  int exit_code;
  std::string out;  // stdout and stderr together
};
// Runs the qtune binary built with the tests, with `args` (already shell-quoted where needed).
CommandResult run_qtune(const std::string& args);

std::string read_file(const std::string& path);
void write_file(const std::string& path, const std::string& content);

// max|a - b| / max|b|: the relative error the parity tests report.
double max_relative_error(const torch::Tensor& actual, const torch::Tensor& expected);

// Writes a small random model with `qtune init-model` into a temp folder and returns its path.
std::string make_tiny_model(const std::string& arch, const std::string& extra_args = "");

}  // namespace qtune::test
