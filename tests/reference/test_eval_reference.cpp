// `qtune eval` against transformers (tests/reference/eval_perplexity.py, ctest Reference.eval): on the four tiny
// models, the perplexity of a text in overlapping windows (HF's perplexity guide), in windows sharing one token,
// of dataset records scored one by one, and of a text under a PEFT adapter, each computed by transformers from
// model(input_ids, labels=...) on the same windows.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <iostream>

#include "tests/reference/reference_files.h"
#include "tests/support/files.h"

namespace qtune {
namespace {

// float32 on both sides, the same weights and formulas: the logits agree to ~1e-6 relative (TransformersModel
// allows 1e-5), each token's NLL to about that, and the sums differ in summation order only (qtune adds the
// per-token NLLs in float64, transformers averages each window in float32 and the script multiplies back).
// Measured on the 2-core CPU machine: at most 2.6e-8 relative in the NLL sums.
constexpr double kTolerance = 1e-5;

void check_case(const std::string& arch, const std::string& name) {
  const std::string file = test::reference_path("eval", arch + "/" + name + ".json");
  QTUNE_REQUIRE_REFERENCE_FILE(file, "eval");
  const nlohmann::json both = nlohmann::json::parse(test::read_file(file));
  const nlohmann::json &qtune = both["qtune"], &hf = both["transformers"];
  EXPECT_EQ(qtune["tokens"], hf["tokens"]) << arch << " " << name << ": a different number of tokens scored";
  const double nll = qtune["nll_sum"], expected = hf["nll_sum"];
  const double ppl = qtune["perplexity"], expected_ppl = hf["perplexity"];
  EXPECT_NEAR(nll, expected, kTolerance * expected) << arch << " " << name;
  // perplexity = exp(mean NLL): a relative error e in the sum is a relative error of e·(mean NLL) in the perplexity.
  const double mean = expected / hf["tokens"].get<double>();
  EXPECT_NEAR(ppl, expected_ppl, kTolerance * mean * expected_ppl) << arch << " " << name;
  std::cout << arch << " " << name << ": perplexity " << ppl << " (transformers " << expected_ppl << ") over " << qtune["tokens"]
            << " tokens; NLL sum relative difference " << std::abs(nll - expected) / expected << "\n";
}

void check_architecture(const std::string& arch) {
  for (const char* name : {"windows", "shared", "records", "adapter"}) check_case(arch, name);
}

TEST(EvalReference, Llama) { check_architecture("llama"); }
TEST(EvalReference, MistralWithSlidingWindow) { check_architecture("mistral"); }
TEST(EvalReference, Qwen2) { check_architecture("qwen2"); }
TEST(EvalReference, Qwen3) { check_architecture("qwen3"); }
TEST(EvalReference, Gemma2) { check_architecture("gemma2"); }
TEST(EvalReference, Gemma3) { check_architecture("gemma3"); }
TEST(EvalReference, Phi3) { check_architecture("phi3"); }

}  // namespace
}  // namespace qtune
