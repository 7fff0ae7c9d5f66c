// The data pipeline: per dataset, cache lookup or read + parallel encode + cache write; then the mix and
// the train/validation split (dataset_mix.h) on record indices (tokens are never copied).
#include "data/prepare_data.h"

#include <algorithm>
#include <chrono>
#include <exception>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "core/error.h"
#include "core/hash.h"
#include "data/dataset_mix.h"
#include "data/dataset_reader.h"
#include "data/tokenizer_config.h"

namespace qtune {
namespace {

namespace fs = std::filesystem;

// Bumped whenever tokenization, templates or masking change behaviour, so old caches are not reused.
constexpr uint64_t kCacheFormat = 1;

void hash_file(Fnv1a64& hash, const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> buffer(1 << 20);
  hash.add(path.filename().string());
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    hash.add(buffer.data(), static_cast<std::size_t>(in.gcount()));
  }
}

// Every file a dataset path stands for, in reading order.
std::vector<fs::path> dataset_files(const std::string& path) {
  std::vector<fs::path> files;
  if (fs::is_directory(path)) {
    for (const auto& entry : fs::directory_iterator(path)) {
      auto ext = entry.path().extension();
      if (entry.is_regular_file() && (ext == ".jsonl" || ext == ".json")) files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
  } else if (fs::exists(path)) {
    files.push_back(path);
  }
  return files;
}

// What determines a dataset's tokens: its files, its spec, the tokenizer files, template and masking.
uint64_t cache_key(const DatasetSpec& spec, const std::string& model_dir, const std::string& template_name, const MaskingOptions& masking) {
  Fnv1a64 hash;
  hash.add_u64(kCacheFormat);
  for (const auto& file : dataset_files(spec.path)) hash_file(hash, file);
  hash.add(dataset_type_name(spec.type)).add(spec.messages_field()).add(spec.field).add(spec.field_instruction).add(spec.field_input);
  hash.add(spec.field_output).add(spec.field_system).add(spec.field_prompt).add(spec.field_chosen).add(spec.field_rejected);
  for (const auto& [k, v] : spec.message_property_mappings) hash.add(k).add(v);
  for (const auto& [k, v] : spec.roles) hash.add(k).add(v);
  hash.add_u64(spec.skip_bad_lines);
  for (const char* name : {"tokenizer.json", "tokenizer.model", "tokenizer_config.json", "chat_template.jinja"}) {
    fs::path file = fs::path(model_dir) / name;
    if (fs::exists(file)) hash_file(hash, file);
  }
  hash.add(template_name).add_u64(masking.train_on_inputs).add_u64(static_cast<uint64_t>(masking.train_on_eos));
  for (const auto& role : masking.roles_to_train) hash.add(role);
  return hash.value();
}

// Encodes samples on `threads` threads. A sample the template cannot render stops everything with its
// file:line, or is skipped and counted when the dataset allows it.
std::vector<TokenizedSample> encode_all(const std::vector<Sample>& samples, const SampleEncoder& encoder, bool pairs, bool skip_bad,
                                        unsigned threads, DatasetReport& report) {
  const std::size_t per_record = pairs ? 2 : 1;
  std::vector<TokenizedSample> encoded(samples.size() * per_record);
  std::vector<char> ok(samples.size(), 1);
  std::mutex mutex;
  std::exception_ptr first_error;
  std::size_t first_error_index = SIZE_MAX;
  auto work = [&](std::size_t begin, std::size_t end) {
    for (std::size_t i = begin; i < end; ++i) {
      try {
        const auto& content = samples[i].content;
        if (const auto* pair = std::get_if<PreferencePair>(&content)) {
          TokenizedPair p = encoder.encode(*pair);
          encoded[2 * i] = std::move(p.chosen);
          encoded[2 * i + 1] = std::move(p.rejected);
        } else if (const auto* conversation = std::get_if<Conversation>(&content)) {
          encoded[i] = encoder.encode(*conversation);
        } else {
          encoded[i] = encoder.encode(std::get<CompletionText>(content));
        }
      } catch (const InputError& e) {
        ok[i] = 0;
        std::lock_guard<std::mutex> lock(mutex);
        std::string reason = samples[i].origin.describe() + ": " + e.what();
        if (skip_bad) {
          if (report.skip_reasons.size() < ReadReport::kMaxSkipReasons) report.skip_reasons.push_back(reason);
        } else if (i < first_error_index) {
          first_error_index = i;
          first_error = std::make_exception_ptr(InputError(reason));
        }
      }
    }
  };
  const std::size_t n = samples.size();
  threads = std::max(1u, std::min<unsigned>(threads, static_cast<unsigned>((n + 63) / 64)));
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < threads; ++t) pool.emplace_back(work, n * t / threads, n * (t + 1) / threads);
  for (auto& thread : pool) thread.join();
  if (first_error) std::rethrow_exception(first_error);

  // Drop the skipped samples.
  std::vector<TokenizedSample> kept;
  kept.reserve(encoded.size());
  for (std::size_t i = 0; i < n; ++i) {
    if (!ok[i]) {
      ++report.skipped;
      continue;
    }
    for (std::size_t part = 0; part < per_record; ++part) kept.push_back(std::move(encoded[i * per_record + part]));
  }
  return kept;
}

// The tokenizer, template and sample encoder every dataset of a run is encoded with.
struct RunEncoder {
  std::unique_ptr<Tokenizer> tokenizer;
  std::string template_name;  // the configured one, or the one recognized in the tokenizer's config
  std::unique_ptr<ChatTemplate> chat;
  std::unique_ptr<SampleEncoder> encoder;
};

RunEncoder make_encoder(const std::string& model_dir, const std::string& chat_template, const MaskingOptions& masking) {
  RunEncoder e;
  e.tokenizer = load_tokenizer(model_dir);
  const TokenizerConfig tokenizer_config = TokenizerConfig::load(model_dir);
  e.template_name = chat_template == "tokenizer_default" ? recognize_chat_template(tokenizer_config.chat_template, tokenizer_config.source)
                                                         : chat_template;
  e.chat = make_chat_template(e.template_name, {tokenizer_config.bos_token, tokenizer_config.eos_token});
  auto id_of = [&](const std::string& token) -> TokenId {
    if (token.empty()) return -1;
    auto id = e.tokenizer->token_to_id(token);
    if (!id) input_error("{}: token '{}' is not in the tokenizer's vocabulary", tokenizer_config.source, token);
    return *id;
  };
  const TokenId bos = id_of(tokenizer_config.bos_token), eos = id_of(tokenizer_config.eos_token);
  // BOS is prepended where the model's tokenizer would add it (add_bos_token, or a post-processor
  // that starts every sequence with it).
  auto probe = e.tokenizer->encode_with_special_tokens("a");
  const bool add_bos = bos >= 0 && tokenizer_config.add_bos_token.value_or(!probe.empty() && probe.front() == bos);
  e.encoder = std::make_unique<SampleEncoder>(*e.tokenizer, *e.chat, masking, bos, eos, add_bos);
  return e;
}

// One dataset's tokens: its cache file when that holds them, else read, encoded on `threads` threads and
// cached. Fills `report`.
std::shared_ptr<const TokenStore> dataset_tokens(const DatasetSpec& spec, const DataConfig& config, const std::string& model_dir,
                                                 const std::string& template_name, const SampleEncoder& encoder, bool pairs,
                                                 unsigned threads, DatasetReport& report) {
  const auto start = std::chrono::steady_clock::now();
  report.path = spec.path;
  const uint64_t key = cache_key(spec, model_dir, template_name, config.masking);
  std::optional<TokenStore> store;
  if (!config.cache_dir.empty()) {
    report.cache_file = (fs::path(config.cache_dir) / fmt::format("{:016x}.tokens", key)).string();
    store = TokenStore::load(report.cache_file, key);
    report.cache_hit = store.has_value();
  }
  if (!store) {
    ReadReport read;
    std::vector<Sample> samples = read_dataset(spec, read);
    report.skipped = read.skipped;
    report.skip_reasons = read.skip_reasons;
    auto encoded = encode_all(samples, encoder, pairs, spec.skip_bad_lines, threads, report);
    if (encoded.empty()) input_error("{}: no usable samples (all {} were skipped)", spec.path, samples.size());
    store = TokenStore::from_samples(encoded, pairs ? 2 : 1);
    if (!report.cache_file.empty()) store->save(report.cache_file, key);
  }
  report.samples = store->size() / store->samples_per_record();
  report.tokens = store->total_tokens();
  for (std::size_t i = 0; i < store->size(); ++i) {
    SampleView v = store->sample(i);
    for (std::size_t t = 0; t < v.length; ++t) report.trained_tokens += v.labels[t] != kIgnoreLabel;
  }
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return std::make_shared<const TokenStore>(std::move(*store));
}

}  // namespace

PreparedData prepare_data(const DataConfig& config, const std::string& model_dir) {
  if (config.datasets.empty()) input_error("datasets: at least one dataset is needed");
  PreparedData prepared;
  prepared.pairs = config.datasets[0].type == DatasetType::preference;
  for (const auto& spec : config.datasets)
    if ((spec.type == DatasetType::preference) != prepared.pairs)
      input_error("datasets: preference datasets (DPO/ORPO) cannot be mixed with SFT datasets ({} is {})", spec.path, dataset_type_name(spec.type));

  const RunEncoder encoder = make_encoder(model_dir, config.chat_template, config.masking);
  prepared.template_name = encoder.template_name;
  const unsigned threads = config.threads > 0 ? config.threads : std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::size_t> records_per_dataset;
  for (const DatasetSpec& spec : config.datasets) {
    DatasetReport& report = prepared.datasets.emplace_back();
    auto store = dataset_tokens(spec, config, model_dir, prepared.template_name, *encoder.encoder, prepared.pairs, threads, report);
    records_per_dataset.push_back(report.samples);
    prepared.train.add_store(store);
    prepared.validation.add_store(store);
  }
  const MixedRecords mixed = mix_and_split(records_per_dataset, config.shuffle, config.val_set_size, config.seed);
  for (const auto& [d, r] : mixed.train) prepared.train.add(d, r);
  for (const auto& [d, r] : mixed.validation) prepared.validation.add(d, r);
  return prepared;
}

}  // namespace qtune
