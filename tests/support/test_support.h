// Helpers for tests that use torch: comparing tensors, making tiny models (plus everything in files.h).
// Depends on: GoogleTest, core/torch.h, tests/support/files.h.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "core/torch.h"
#include "tests/support/files.h"

namespace qtune::test {

// max|a - b| / max|b|: the relative error the parity tests report.
double max_relative_error(const torch::Tensor& actual, const torch::Tensor& expected);

// Writes a small random model with `qtune init-model` into a temp folder and returns its path.
std::string make_tiny_model(const std::string& arch, const std::string& extra_args = "");

}  // namespace qtune::test
