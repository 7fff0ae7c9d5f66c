// qtune eval --model DIR|FILE.gguf [--adapter DIR] --text FILE [--context N] [--stride S] [--batch-size B]
// [--max-tokens N] [--dtype ..] [--load-in-4bit] [--json]: the perplexity of a model (or base + adapter) on a text,
// exp(Σ NLL / tokens scored).
//   FILE.jsonl / FILE.json: records with a "text" field, each scored as its own sequence (with what the tokenizer
//     adds around one, e.g. BOS), truncated to the context; every record's token NLLs pooled.
//   any other file: UTF-8 text, tokenized once and scored in windows of `context` tokens `stride` apart, as HF's
//     perplexity guide does (see stride_windows).
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/dataset_reader.h"
#include "data/utf8.h"
#include "trainer/commands.h"
#include "trainer/inference_model.h"

namespace qtune {
namespace {

namespace fs = std::filesystem;

struct EvalArgs {
  InferenceOptions load;
  std::string text;
  int64_t context = 0;     // 0: 512, or the model's positions if fewer
  int64_t stride = 0;      // 0: the context
  int64_t batch_size = 4;
  int64_t max_tokens = 0;  // 0: all
  bool json = false;
};

// What was scored, and how it was cut.
struct EvalInput {
  std::vector<ScoredSpan> spans;
  int64_t records = 0, truncated = 0;  // dataset files only
};

bool is_dataset_file(const std::string& path) {
  std::string ext = fs::path(path).extension().string();
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext == ".jsonl" || ext == ".json";
}

void check_args(const EvalArgs& a) {
  if (a.context != 0 && a.context < 2)
    input_error("--context must be at least 2 tokens (one to predict from, one to score), not {}", a.context);
  if (a.stride < 0) input_error("--stride must be at least 1 (or 0: the context), not {}", a.stride);
  if (a.batch_size < 1) input_error("--batch-size must be at least 1, not {}", a.batch_size);
  if (a.max_tokens < 0) input_error("--max-tokens must be at least 1 (or 0: all), not {}", a.max_tokens);
  std::error_code error;
  if (!fs::is_regular_file(a.text, error)) input_error("{}: no such file; --text names the text to score", a.text);
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) input_error("{}: cannot open the file (permissions?)", path);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  std::string text = bytes.str();
  if (text.find_first_not_of(" \t\r\n") == std::string::npos) input_error("{}: the file is empty; nothing to score", path);
  if (!utf8::is_valid(text)) input_error("{}: not valid UTF-8; re-save the text as UTF-8", path);
  return text;
}

// Plain text: one token stream (at most max_tokens + 1 tokens: the first is never scored), cut into windows.
EvalInput text_windows(const EvalArgs& a, const Tokenizer& tokenizer) {
  std::vector<TokenId> ids = tokenizer.encode_with_special_tokens(read_text_file(a.text));
  if (a.max_tokens > 0 && static_cast<int64_t>(ids.size()) > a.max_tokens + 1) ids.resize(a.max_tokens + 1);
  if (ids.size() < 2) input_error("{}: the text is a single token; perplexity needs at least 2", a.text);
  EvalInput input;
  for (const TokenWindow& w : stride_windows(static_cast<int64_t>(ids.size()), a.context, a.stride == 0 ? a.context : a.stride))
    input.spans.push_back({std::vector<TokenId>(ids.begin() + w.begin, ids.begin() + w.end), w.first_scored - w.begin});
  return input;
}

// The {"text": ...} records of a dataset file; anything else is refused naming its line. read_dataset's messages
// end with advice for a training config (field:, skip_bad_lines:), which eval has not: that part is replaced.
std::vector<Sample> read_text_records(const std::string& path) {
  DatasetSpec spec;
  spec.path = path;
  spec.type = DatasetType::completion;
  ReadReport report;
  try {
    return read_dataset(spec, report);
  } catch (const InputError& e) {
    const std::string message = e.what();
    const std::size_t advice = message.find("; ", path.size());
    input_error("{}; qtune eval reads one {{\"text\": \"...\"}} object per line", message.substr(0, advice));
  }
}

// Dataset records: each "text" its own sequence, cut to the context (and to what is left of max_tokens).
EvalInput record_sequences(const EvalArgs& a, const Tokenizer& tokenizer) {
  EvalInput input;
  int64_t budget = a.max_tokens > 0 ? a.max_tokens : INT64_MAX;
  for (const Sample& sample : read_text_records(a.text)) {
    if (budget == 0) break;
    std::vector<TokenId> ids = tokenizer.encode_with_special_tokens(std::get<CompletionText>(sample.content).text);
    ++input.records;
    if (static_cast<int64_t>(ids.size()) > a.context) {
      ids.resize(a.context);
      ++input.truncated;
    }
    if (static_cast<int64_t>(ids.size()) - 1 > budget) ids.resize(budget + 1);
    if (ids.size() < 2) continue;  // a one-token record predicts nothing
    budget -= static_cast<int64_t>(ids.size()) - 1;
    input.spans.push_back({std::move(ids), 1});
  }
  if (input.spans.empty()) input_error("{}: no record is 2 tokens or longer; nothing to score", a.text);
  return input;
}

// "10,240"
std::string grouped(int64_t n) {
  std::string digits = std::to_string(n), out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

void report(const EvalArgs& a, const EvalInput& input, const NllSum& sum, bool records) {
  const double mean = sum.nll / static_cast<double>(sum.tokens), perplexity = std::exp(mean);
  if (a.json) {
    nlohmann::json out = {{"perplexity", perplexity}, {"mean_nll", mean}, {"nll_sum", sum.nll}, {"tokens", sum.tokens},
                          {"context", a.context}, {"text", a.text}, {"model", a.load.model}};
    if (!a.load.adapter.empty()) out["adapter"] = a.load.adapter;
    if (records) {
      out["records"] = input.records;
      out["truncated_records"] = input.truncated;
    } else {
      out["windows"] = input.spans.size();
      out["stride"] = a.stride == 0 ? a.context : a.stride;
    }
    std::cout << out.dump() << std::endl;
    return;
  }
  std::cout << fmt::format("perplexity {:.3f} over {} tokens (mean NLL {:.3f} nats)\n", perplexity, grouped(sum.tokens), mean);
  if (input.truncated > 0)
    std::cout << fmt::format("note: {} of {} records were cut to the context of {} tokens\n", input.truncated, input.records, a.context);
}

}  // namespace

Command add_eval_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("eval", "Perplexity of a model (and optionally a LoRA adapter) on a text");
  auto a = std::make_shared<EvalArgs>();
  add_inference_options(cmd, a->load);
  cmd->add_option("--text", a->text, "a UTF-8 text file, or a .jsonl/.json file of {\"text\": ...} records")->required();
  cmd->add_option("--context", a->context, "tokens per window (longer records are cut), default 512 or the model's positions if fewer");
  cmd->add_option("--stride", a->stride, "tokens between window starts, default the context (windows then share one token)");
  cmd->add_option("--batch-size", a->batch_size, "windows per forward pass, default 4");
  cmd->add_option("--max-tokens", a->max_tokens, "score only the first N tokens (default: all)");
  cmd->add_flag("--json", a->json, "print one JSON object instead of the sentence");
  return [a]() {
    check_args(*a);
    InferenceModel loaded = load_inference_model(a->load);
    const int64_t positions = loaded.model->config().max_position_embeddings;
    if (a->context == 0) a->context = std::min<int64_t>(512, positions);
    if (a->context > positions)
      input_error("--context {} is more than the model's {} positions (max_position_embeddings)", a->context, positions);
    const bool records = is_dataset_file(a->text);
    const EvalInput input = records ? record_sequences(*a, *loaded.tokenizer) : text_windows(*a, *loaded.tokenizer);
    report(*a, input, score_spans(loaded.model, input.spans, a->batch_size), records);
    return 0;
  };
}

}  // namespace qtune
