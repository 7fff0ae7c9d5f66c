// qtune data preview CONFIG.yaml [--n N]: the first N training samples as the model will see them, with
// trained tokens highlighted (green on a terminal, [[bracketed]] otherwise) and token counts.
#include <unistd.h>

#include <iostream>

#include <fmt/format.h>

#include "data/tokenizer.h"
#include "trainer/commands.h"
#include "trainer/data_report.h"

namespace qtune {
namespace {

// The sample's text with trained runs marked. Runs are cut out of one decode of the whole sample (at
// the decoded lengths of each prefix), so spacing is exactly what the tokenizer produces.
std::string marked_text(const Tokenizer& tokenizer, const SampleView& v, bool color) {
  std::vector<TokenId> ids(v.ids, v.ids + v.length);
  const std::string full = tokenizer.decode(ids);
  std::string out;
  std::size_t start_token = 0, start_char = 0;
  for (std::size_t t = 1; t <= v.length; ++t) {
    const bool trained = v.labels[start_token] != -100;
    if (t < v.length && (v.labels[t] != -100) == trained) continue;
    std::size_t end_char = t == v.length ? full.size() : tokenizer.decode({ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(t)}).size();
    end_char = std::min(std::max(end_char, start_char), full.size());
    std::string piece = full.substr(start_char, end_char - start_char);
    if (trained) out += color ? "\033[32m" + piece + "\033[0m" : "[[" + piece + "]]";
    else out += piece;
    start_token = t;
    start_char = end_char;
  }
  return out;
}

}  // namespace

Command add_data_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("data", "Inspect the training data");
  cmd->require_subcommand(1);
  auto* preview = cmd->add_subcommand("preview", "Show tokenized samples with the trained tokens marked");
  auto config_path = std::make_shared<std::string>();
  auto overrides = std::make_shared<std::vector<std::string>>();
  auto count = std::make_shared<std::size_t>(3);
  preview->add_option("config", *config_path, "the YAML config")->required();
  preview->add_option("overrides", *overrides, "key=value overrides");
  preview->add_option("--n", *count, "how many samples (default 3)");
  return [config_path, overrides, count]() {
    TrainConfig config = TrainConfig::load(*config_path, *overrides);
    config.check_paths();
    PreparedData data = prepare_data(config.data_config(), config.tokenizer_dir());
    auto tokenizer = load_tokenizer(config.tokenizer_dir());
    const bool color = ::isatty(STDOUT_FILENO) != 0;
    for (std::size_t i = 0; i < std::min(*count, data.train.size()); ++i) {
      for (int part = 0; part < (data.pairs ? 2 : 1); ++part) {
        SampleView v = data.train.get(i, part);
        std::size_t trained = 0;
        for (std::size_t t = 0; t < v.length; ++t) trained += v.labels[t] != -100;
        std::cout << fmt::format("--- sample {}{}: {} tokens, {} trained\n", i + 1, data.pairs ? (part == 0 ? " chosen" : " rejected") : "",
                                 v.length, trained);
        std::cout << marked_text(*tokenizer, v, color) << "\n";
      }
    }
    RowPlan plan = plan_training_rows(data, config);
    std::cout << "---\n";
    print_data_report(std::cout, data, plan, config);
    return 0;
  };
}

}  // namespace qtune
