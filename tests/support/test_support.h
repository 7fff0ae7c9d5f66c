// Helpers for tests that use torch: comparing tensors, making tiny models (plus everything in files.h).
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <functional>
#include <string>

#include "adapters/lora.h"
#include "core/torch.h"
#include "tests/support/files.h"
#include "trainer/distributed.h"

namespace qtune::test {

// max|a - b| / max|b|: the relative error the parity tests report.
double max_relative_error(const torch::Tensor& actual, const torch::Tensor& expected);

// Why a GPU test cannot run here ("no GPU present", "not a CUDA build"), or nullptr when it can.
// QTUNE_REQUIRE_GPU=1 (scripts/cuda_build.sh on the GPU machine) turns the skip into a failure.
const char* gpu_missing();
#define QTUNE_SKIP_WITHOUT_GPU()                                                                  \
  if (const char* qtune_gpu_missing = ::qtune::test::gpu_missing()) {                             \
    if (std::getenv("QTUNE_REQUIRE_GPU") != nullptr) FAIL() << qtune_gpu_missing << " (QTUNE_REQUIRE_GPU is set)"; \
    GTEST_SKIP() << qtune_gpu_missing;                                                             \
  }

// Writes a small random model with `qtune init-model` into a temp folder and returns its path.
std::string make_tiny_model(const std::string& arch, const std::string& extra_args = "");

// LoRA r 4, alpha 8, no dropout, on all 7 decoder projections.
LoraOptions all_linear_lora();

// Injects LoRA into `model` with random A and B (B ≠ 0, so the adapter changes the model; seeded) and saves it to a
// fresh temp folder as a PEFT adapter of `base`; returns the folder.
std::string save_random_adapter(CausalLM& model, const LoraOptions& options, uint64_t seed, const std::string& base = "tiny");

// Rank `rank` of 2 meeting at 127.0.0.1:`port`.
LaunchEnvironment rank_of_two(int rank, int port);

// Runs `rank(environment)` for rank 1 of 2 in a forked child and for rank 0 in this process, meeting on a
// free loopback port; each returns "" when all was right, else what went wrong, and the test expects "".
// Call it before any torch thread pool exists in this process (a forked child has no threads).
void expect_two_ranks(const std::function<std::string(const LaunchEnvironment&)>& rank);

}  // namespace qtune::test
