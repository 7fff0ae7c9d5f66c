// qtune eval: the window arithmetic (every token after the first scored exactly once), the scoring of spans
// against the model's own logits, the pooling of dataset records, bad input, and base + adapter against the
// merged model. transformers' numbers on the same windows: tests/reference/test_eval_reference.cpp.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <vector>

#include "adapters/lora.h"
#include "adapters/peft_format.h"
#include "models/model_loader.h"
#include "tests/support/test_support.h"
#include "trainer/inference_model.h"

namespace qtune {
namespace {

// Checks the windows of `tokens` against their definition; returns how often each token is scored.
std::vector<int> scored_counts(int64_t tokens, int64_t context, int64_t stride) {
  std::vector<int> counts(tokens, 0);
  int64_t previous_end = 0;
  for (const TokenWindow& w : stride_windows(tokens, context, stride)) {
    EXPECT_LE(w.end - w.begin, context);
    EXPECT_LT(w.begin, w.first_scored) << "a scored token without context";
    EXPECT_LT(w.first_scored, w.end) << "a window that scores nothing";
    EXPECT_EQ(w.first_scored, std::max<int64_t>(previous_end, 1)) << "scores only what the previous window did not";
    previous_end = w.end;
    for (int64_t t = w.first_scored; t < w.end; ++t) ++counts[t];
  }
  EXPECT_EQ(previous_end, tokens < 2 ? 0 : tokens);
  return counts;
}

TEST(EvalWindows, EveryTokenAfterTheFirstIsScoredExactlyOnce) {
  for (int64_t tokens : {2, 3, 7, 16, 17, 100, 513})
    for (int64_t context : {2, 3, 8, 16, 512})
      for (int64_t stride : {int64_t{1}, context / 2 + 1, context - 1, context, context + 5}) {
        SCOPED_TRACE(testing::Message() << "tokens " << tokens << " context " << context << " stride " << stride);
        const std::vector<int> counts = scored_counts(tokens, context, stride);
        EXPECT_EQ(counts[0], 0);
        for (int64_t t = 1; t < tokens; ++t) EXPECT_EQ(counts[t], 1) << "token " << t;
      }
  EXPECT_TRUE(stride_windows(0, 4, 4).empty());
  EXPECT_TRUE(stride_windows(1, 4, 4).empty());
}

TEST(EvalWindows, StartsAsHfsPerplexityGuideBelowTheContext) {
  // The guide: begin = k·stride, end = min(begin + max_length, n), scoring from the previous end.
  const auto windows = stride_windows(20, 8, 3);
  ASSERT_EQ(windows.size(), 5u);  // begins 0, 3, 6, 9, 12 (12 + 8 = 20 reaches the end)
  for (std::size_t k = 0; k < windows.size(); ++k) {
    EXPECT_EQ(windows[k].begin, static_cast<int64_t>(3 * k));
    EXPECT_EQ(windows[k].end, std::min<int64_t>(3 * k + 8, 20));
  }
  // stride = context: windows share one token, 1 + 7 + 7 + 7 ... covers 20 with begins 0, 7, 14.
  const auto shared = stride_windows(20, 8, 8);
  ASSERT_EQ(shared.size(), 3u);
  EXPECT_EQ(shared[1].begin, 7);
  EXPECT_EQ(shared[1].first_scored, 8);
  EXPECT_EQ(shared[2].begin, 14);
  EXPECT_EQ(shared[2].end, 20);
}

std::vector<TokenId> random_ids(int64_t n, uint64_t seed) {
  torch::manual_seed(seed);
  const torch::Tensor t = torch::randint(3, 256, {n}, torch::kLong);
  std::vector<TokenId> ids;
  for (int64_t i = 0; i < n; ++i) ids.push_back(static_cast<TokenId>(t[i].item<int64_t>()));
  return ids;
}

// Σ −log softmax(logits)[t, ids[t + 1]] over t + 1 in [first, n), from the model's full logits in float64.
double direct_nll(CausalLM& model, const std::vector<TokenId>& ids, int64_t first) {
  torch::NoGradGuard no_grad;
  const torch::Tensor input = torch::tensor(std::vector<int64_t>(ids.begin(), ids.end()), torch::kLong).view({1, -1});
  const torch::Tensor log_probs = model->forward(input)[0].to(torch::kDouble).log_softmax(-1);
  double nll = 0;
  for (int64_t t = first - 1; t + 1 < static_cast<int64_t>(ids.size()); ++t) nll -= log_probs[t][ids[t + 1]].item<double>();
  return nll;
}

TEST(EvalScoring, SpansScoreTheirTokensAsTheFullLogitsDoAlsoWhenBatched) {
  CausalLM model = load_causal_lm(test::make_tiny_model("llama"));
  const std::vector<ScoredSpan> spans = {{random_ids(20, 1), 5}, {random_ids(9, 2), 1}, {random_ids(14, 3), 13}};
  double expected = 0;
  for (const auto& s : spans) expected += direct_nll(model, s.ids, s.first_scored);
  const int64_t expected_tokens = (20 - 5) + (9 - 1) + (14 - 13);
  // Float32 logits in both, the direct one's log-softmax in float64 and one token count apart in summation
  // order: the sums agree to a few float32 ulps of the total (~1e-6 relative); 1e-5 leaves headroom.
  for (int64_t batch : {1, 2, 3}) {
    const NllSum sum = score_spans(model, spans, batch);
    EXPECT_EQ(sum.tokens, expected_tokens);
    EXPECT_NEAR(sum.nll, expected, 1e-5 * expected) << "batch " << batch;
  }
}

// The last line of a --json run, parsed.
nlohmann::json eval_json(const std::string& args) {
  const test::CommandResult r = test::run_qtune("eval --json " + args);
  EXPECT_EQ(r.exit_code, 0) << r.out;
  const std::string trimmed = r.out.substr(0, r.out.find_last_not_of('\n') + 1);
  return nlohmann::json::parse(trimmed.substr(trimmed.find_last_of('\n') + 1));
}

const char* kText =
    "The quick brown fox jumps over the lazy dog. A perplexity is the exponential of the mean negative "
    "log-likelihood of each token given those before it.";

TEST(EvalCommand, TextWindowsScoreEveryTokenButTheFirstAndMatchTheWholeTextInOneWindow) {
  const std::string dir = test::temp_dir("eval"), model = dir + "/model";
  test::make_byte_model(model);  // byte tokenizer: one token per byte, nothing added around a sequence
  test::write_file(dir + "/text.txt", kText);
  const int64_t n = static_cast<int64_t>(std::string(kText).size());
  const nlohmann::json whole = eval_json("--model " + model + " --text " + dir + "/text.txt --context 512");
  EXPECT_EQ(whole["tokens"], n - 1);
  EXPECT_EQ(whole["windows"], 1);
  CausalLM loaded = load_causal_lm(model);
  const std::vector<TokenId> bytes(kText, kText + n);
  const double expected = direct_nll(loaded, bytes, 1);
  EXPECT_NEAR(whole["nll_sum"].get<double>(), expected, 1e-5 * expected);  // as in EvalScoring
  EXPECT_NEAR(whole["perplexity"].get<double>(), std::exp(expected / (n - 1)), 1e-5 * whole["perplexity"].get<double>());

  for (const char* stride : {"32", "20", "7"}) {
    const nlohmann::json windows = eval_json("--model " + model + " --text " + dir + "/text.txt --context 32 --stride " + stride);
    EXPECT_EQ(windows["tokens"], n - 1) << "stride " << stride;
    EXPECT_EQ(windows["windows"], stride_windows(n, 32, std::stoi(stride)).size());
    // Less context per token than one whole window: not the same number, but the same model on the same text.
    EXPECT_NE(windows["nll_sum"].get<double>(), whole["nll_sum"].get<double>());
  }
}

TEST(EvalCommand, DatasetRecordsArePooledAsSeparateSequences) {
  const std::string dir = test::temp_dir("eval"), model = dir + "/model";
  test::make_byte_model(model);
  const std::vector<std::string> texts = {"first record, a short one", "the second record is somewhat longer than that", "third"};
  std::string all;
  double nll = 0;
  int64_t tokens = 0;
  for (std::size_t i = 0; i < texts.size(); ++i) {
    const std::string one = dir + "/one" + std::to_string(i) + ".txt";
    test::write_file(one, texts[i]);
    const nlohmann::json alone = eval_json("--model " + model + " --text " + one);
    nll += alone["nll_sum"].get<double>();
    tokens += alone["tokens"].get<int64_t>();
    all += nlohmann::json{{"text", texts[i]}}.dump() + "\n";
  }
  test::write_file(dir + "/records.jsonl", all);
  const nlohmann::json pooled = eval_json("--model " + model + " --text " + dir + "/records.jsonl");
  EXPECT_EQ(pooled["tokens"], tokens);
  EXPECT_EQ(pooled["records"], 3);
  EXPECT_NEAR(pooled["nll_sum"].get<double>(), nll, 1e-5 * nll);  // batched with padding vs alone: float32 rounding
  EXPECT_NEAR(pooled["perplexity"].get<double>(), std::exp(nll / tokens), 1e-5 * std::exp(nll / tokens));

  // Cut to the context: each record keeps its first 8 tokens, 7 of them scored.
  const nlohmann::json cut = eval_json("--model " + model + " --text " + dir + "/records.jsonl --context 8");
  EXPECT_EQ(cut["tokens"], 7 + 7 + 4);
  EXPECT_EQ(cut["truncated_records"], 2);
}

void expect_input_error(const std::string& args, const std::string& fragment) {
  const test::CommandResult r = test::run_qtune("eval " + args);
  EXPECT_EQ(r.exit_code, 2) << args << "\n" << r.out;
  EXPECT_EQ(r.out.rfind("error: ", 0), 0u) << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << "one line: " << r.out;
  EXPECT_NE(r.out.find(fragment), std::string::npos) << "expected '" << fragment << "' in: " << r.out;
}

TEST(EvalCommand, BadInputIsOneErrorLineWithExitStatus2) {
  const std::string dir = test::temp_dir("eval"), model = dir + "/model";
  test::make_byte_model(model);
  const std::string m = "--model " + model + " --text ";
  test::write_file(dir + "/empty.txt", "");
  test::write_file(dir + "/one.txt", "x");
  test::write_file(dir + "/bad.txt", std::string("ok \xff\xfe", 5));
  test::write_file(dir + "/malformed.jsonl", "{\"text\": \"fine\"}\n{\"text\": \"unterminated}\n");
  test::write_file(dir + "/chat.jsonl", "{\"text\": \"fine\"}\n{\"text\": \"also fine\"}\n{\"messages\": []}\n");
  test::write_file(dir + "/ok.txt", kText);
  expect_input_error(m + dir + "/missing.txt", dir + "/missing.txt: no such file");
  expect_input_error(m + dir + "/empty.txt", "empty.txt: the file is empty");
  expect_input_error(m + dir + "/one.txt", "one.txt: the text is a single token");
  expect_input_error(m + dir + "/bad.txt", "bad.txt: not valid UTF-8");
  expect_input_error(m + dir + "/malformed.jsonl", "malformed.jsonl:2:");
  expect_input_error(m + dir + "/chat.jsonl", "chat.jsonl:3: missing field 'text'");
  expect_input_error(m + dir + "/ok.txt --context 1", "--context must be at least 2");
  expect_input_error(m + dir + "/ok.txt --context 100000", "more than the model's");
  expect_input_error(m + dir + "/ok.txt --stride -1", "--stride must be at least 1");
  expect_input_error("--model " + dir + "/nothing --text " + dir + "/ok.txt", dir + "/nothing");
  expect_input_error("--model " + dir + "/ok.txt --text " + dir + "/ok.txt", "ok.txt: neither a model folder nor a GGUF file");

  // An adapter made for a wider model of the same family does not fit this one.
  const std::string wide = dir + "/wide";
  const auto made = test::run_qtune("init-model --arch qwen2 --out " + wide + " --hidden 128 --layers 2 --heads 4 --kv-heads 2 --vocab 300");
  ASSERT_EQ(made.exit_code, 0) << made.out;
  CausalLM other = load_causal_lm(wide);
  LoraOptions lora;
  lora.r = 4;
  lora.target_linear = true;
  inject_lora(other, lora, 1);
  save_peft_adapter(other, lora, dir + "/wide_adapter", wide);
  expect_input_error(m + dir + "/ok.txt --adapter " + dir + "/wide_adapter", "wide_adapter");
}

TEST(EvalCommand, BasePlusAdapterScoresAsTheMergedModel) {
  const std::string dir = test::temp_dir("eval"), model = dir + "/model";
  test::make_byte_model(model);
  test::write_file(dir + "/text.txt", kText);
  CausalLM base = load_causal_lm(model);
  LoraOptions lora;
  lora.r = 4;
  lora.alpha = 8;
  lora.target_linear = true;
  inject_lora(base, lora, 1);
  {
    torch::NoGradGuard no_grad;
    torch::manual_seed(4);
    for (auto& [name, t] : lora_state(base)) t.copy_(torch::randn(t.sizes()) * 0.3);  // B ≠ 0: the adapter changes the output
  }
  save_peft_adapter(base, lora, dir + "/adapter", model);
  const auto merged = test::run_qtune("merge --base " + model + " --adapter " + dir + "/adapter --out " + dir + "/merged --dtype f32");
  ASSERT_EQ(merged.exit_code, 0) << merged.out;

  const std::string text = " --text " + dir + "/text.txt --context 48 --stride 20";
  const nlohmann::json with_adapter = eval_json("--model " + model + " --adapter " + dir + "/adapter" + text);
  const nlohmann::json merged_model = eval_json("--model " + dir + "/merged" + text);
  const nlohmann::json base_alone = eval_json("--model " + model + text);
  EXPECT_EQ(with_adapter["tokens"], merged_model["tokens"]);
  // x·(W + s·B·A)ᵀ in float32 against x·Wᵀ + s·(x·Aᵀ)·Bᵀ: float32 rounding of the weights and the sums, ~1e-6
  // relative in the logits; 1e-5 relative on the mean NLL leaves room for the softmax to amplify it (measured 1.6e-8).
  const double expected = merged_model["mean_nll"].get<double>();
  EXPECT_NEAR(with_adapter["mean_nll"].get<double>(), expected, 1e-5 * expected);
  // And the adapter matters far more than that.
  EXPECT_GT(std::abs(base_alone["mean_nll"].get<double>() - expected), 1e-2 * expected);
}

TEST(EvalCommand, GgufBaseWithAdapterScoresAsTheHfFolder) {
  // GGUF needs a tokenizer llama.cpp knows by name (not the byte tokenizer): Qwen 2.5's, over a 64-wide model.
  const std::string tokenizer = test::tokenizer_dir("qwen2_5");
  if (tokenizer.empty()) GTEST_SKIP() << "no qwen2_5 tokenizer under " << test::tokenizers_root();
  const std::string dir = test::temp_dir("eval"), model = dir + "/model";
  const auto made = test::run_qtune("init-model --arch qwen2 --out " + model + " --hidden 64 --layers 2 --heads 4 --kv-heads 2 "
                                    "--intermediate 128 --vocab 151936 --dtype f32 --init-std 0.2");
  ASSERT_EQ(made.exit_code, 0) << made.out;
  for (const char* file : {"tokenizer.json", "tokenizer_config.json"})
    std::filesystem::copy_file(tokenizer + "/" + file, model + "/" + file);
  const auto exported = test::run_qtune("export --model " + model + " --out " + dir + "/model.gguf --type f32");
  ASSERT_EQ(exported.exit_code, 0) << exported.out;
  CausalLM base = load_causal_lm(model);
  LoraOptions lora;
  lora.r = 4;
  lora.target_modules = {"q_proj", "k_proj", "down_proj"};  // q/k: the rows GGUF keeps in ggml's order
  inject_lora(base, lora, 1);
  {
    torch::NoGradGuard no_grad;
    torch::manual_seed(5);
    for (auto& [name, t] : lora_state(base)) t.copy_(torch::randn(t.sizes()) * 0.3);
  }
  save_peft_adapter(base, lora, dir + "/adapter", model);  // no tokenizer in it: the GGUF's own is used
  test::write_file(dir + "/text.txt", kText);
  const std::string rest = " --adapter " + dir + "/adapter --text " + dir + "/text.txt --context 24 --stride 10";
  const nlohmann::json hf = eval_json("--model " + model + rest), gguf = eval_json("--model " + dir + "/model.gguf" + rest);
  EXPECT_EQ(gguf["tokens"], hf["tokens"]) << "the GGUF's tokenizer splits the text as tokenizer.json does";
  // An F32 file holds the very float32 weights: the same numbers but for a kernel summing a differently laid-out
  // tensor in another order (measured: bit-equal).
  EXPECT_NEAR(gguf["nll_sum"].get<double>(), hf["nll_sum"].get<double>(), 1e-6 * hf["nll_sum"].get<double>());
}

}  // namespace
}  // namespace qtune
