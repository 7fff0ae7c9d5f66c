// Loading a model to run (HF folder or GGUF file, plus an adapter) and scoring token windows.
#include "trainer/inference_model.h"

#include <algorithm>
#include <filesystem>

#include "adapters/peft_format.h"
#include "core/error.h"
#include "gguf/gguf_file.h"
#include "gguf/gguf_model.h"
#include "models/chunked_log_probs.h"
#include "models/model_loader.h"
#include "trainer/training_base.h"

namespace qtune {
namespace {

namespace fs = std::filesystem;

// The adapter trained against its base quantized at load and in some compute dtype; the same here unless
// --dtype / --load-in-4bit say otherwise. A GGUF base is what the user chose to run, so its dequantized weights
// are only re-quantized on request: NF4 over a Q4_K file would round the weights twice.
LoadOptions load_options(const InferenceOptions& o, bool gguf) {
  const TrainingBase trained = o.adapter.empty() ? TrainingBase{} : read_training_base(o.adapter);
  LoadOptions load;
  load.dtype = !o.dtype.empty() ? parse_dtype(o.dtype, "--dtype") : trained.compute_dtype.value_or(at::kFloat);
  load.quantize = o.load_in_4bit ? std::optional<QuantizeOptions>(QuantizeOptions{}) : gguf ? std::nullopt : trained.quantize;
  return load;
}

bool is_gguf_path(const std::string& path) {
  std::error_code error;
  if (!fs::is_regular_file(path, error)) return false;  // a folder (or nothing: the HF loader names what is missing)
  if (!is_gguf_file(path)) input_error("{}: neither a model folder nor a GGUF file", path);
  return true;
}

}  // namespace

InferenceModel load_inference_model(const InferenceOptions& options) {
  InferenceModel loaded;
  const bool gguf = is_gguf_path(options.model);
  const LoadOptions load = load_options(options, gguf);
  if (gguf) {
    GgufModel file = load_gguf_model(options.model, load);
    loaded.model = std::move(file.model);
    loaded.tokenizer = std::move(file.tokenizer);
    loaded.tokenizer_config = std::move(file.tokenizer_config);
  } else {
    loaded.model = load_causal_lm(options.model, load);
  }
  if (!options.adapter.empty()) load_peft_adapter(loaded.model, options.adapter);
  // The tokenizer travels with the adapter (qtune train copies it), else it sits with the model.
  const bool adapter_tokenizer = !options.adapter.empty() && fs::exists(fs::path(options.adapter) / "tokenizer_config.json");
  if (adapter_tokenizer || !gguf) {
    const std::string dir = adapter_tokenizer ? options.adapter : options.model;
    loaded.tokenizer = load_tokenizer(dir);
    loaded.tokenizer_config = TokenizerConfig::load(dir);
  }
  return loaded;
}

std::vector<TokenWindow> stride_windows(int64_t tokens, int64_t context, int64_t stride) {
  TORCH_CHECK(context >= 2 && stride >= 1, "stride_windows: context ", context, " and stride ", stride);
  std::vector<TokenWindow> windows;
  if (tokens < 2) return windows;
  const int64_t step = std::min(stride, context - 1);  // keeps one token of context before the first unscored one
  for (int64_t begin = 0, scored_from = 1;; begin += step) {
    const int64_t end = std::min(begin + context, tokens);
    windows.push_back({begin, end, scored_from});
    if (end == tokens) break;
    scored_from = end;
  }
  return windows;
}

namespace {

// One batch of spans, right-padded: position t of a row predicts its token t + 1 (target −100: not scored).
NllSum score_batch(CausalLM& model, const ScoredSpan* spans, int64_t rows) {
  int64_t length = 0;
  for (int64_t r = 0; r < rows; ++r) length = std::max<int64_t>(length, static_cast<int64_t>(spans[r].ids.size()));
  std::vector<int64_t> ids(rows * length, 0), mask(rows * length, 0), targets(rows * length, -100);
  NllSum sum;
  for (int64_t r = 0; r < rows; ++r) {
    const ScoredSpan& span = spans[r];
    const int64_t n = static_cast<int64_t>(span.ids.size());
    TORCH_CHECK(span.first_scored >= 1 && span.first_scored <= n, "score_spans: first_scored ", span.first_scored, " of ", n, " tokens");
    for (int64_t t = 0; t < n; ++t) {
      ids[r * length + t] = span.ids[t];
      mask[r * length + t] = 1;
      if (t + 1 >= span.first_scored && t + 1 < n) targets[r * length + t] = span.ids[t + 1];
    }
    sum.tokens += n - span.first_scored;
  }
  const auto as_tensor = [&](const std::vector<int64_t>& v) {
    return torch::tensor(v, torch::kLong).view({rows, length}).to(model->device());
  };
  const SequenceLayout layout = SequenceLayout::from_attention_mask(as_tensor(mask));
  const TargetScores scores = target_scores(model, as_tensor(ids), layout, as_tensor(targets));
  sum.nll = -scores.log_probs.to(torch::kDouble).sum().item<double>();  // untrained positions hold 0
  return sum;
}

}  // namespace

NllSum score_spans(CausalLM& model, const std::vector<ScoredSpan>& spans, int64_t batch_size) {
  TORCH_CHECK(batch_size >= 1, "score_spans: batch_size ", batch_size);
  torch::NoGradGuard no_grad;
  NllSum total;
  for (std::size_t first = 0; first < spans.size(); first += batch_size) {
    const int64_t rows = std::min<int64_t>(batch_size, static_cast<int64_t>(spans.size() - first));
    const NllSum batch = score_batch(model, spans.data() + first, rows);
    total.nll += batch.nll;
    total.tokens += batch.tokens;
  }
  return total;
}

}  // namespace qtune
