// qtune validate CONFIG.yaml [key=value ...]: checks the config, the model folder, the tokenizer and every
// dataset (reading, templating, tokenizing, packing) without training, and prints the run's memory plan.
#include <iostream>
#include <sstream>

#include <fmt/format.h>

#include "core/error.h"
#include "models/model_loader.h"
#include "trainer/commands.h"
#include "trainer/data_report.h"
#include "trainer/trainer.h"
#include "trainer/training_base.h"

namespace qtune {

Command add_validate_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("validate", "Check a training config and its data without training");
  auto config_path = std::make_shared<std::string>();
  auto overrides = std::make_shared<std::vector<std::string>>();
  cmd->add_option("config", *config_path, "the YAML config")->required();
  cmd->add_option("overrides", *overrides, "key=value overrides");
  return [config_path, overrides]() {
    TrainConfig config = TrainConfig::load(*config_path, *overrides);
    config.check_paths();
    CheckedCheckpoint model = check_checkpoint(config.base_model);
    const BaseModelInfo base{config.base_model, model.config, model.bnb};
    const std::optional<std::string> warning = check_sequence_len(config, base.config, config.base_model + "/config.json");
    // The report is printed only when every check passed, so a failure is exactly one error line.
    std::ostringstream report;
    report << fmt::format("config      {}: ok ({})\n", config.source, config.rl.empty() ? "sft" : config.rl);
    report << fmt::format("model       {}: {}, vocab {}\n", config.base_model, model.config.hf_class_name(), model.config.vocab_size);
    PreparedData data = prepare_data(config.data_config(), config.tokenizer_dir());
    // Every token id must have an embedding row.
    for (std::size_t i = 0; i < data.train.size(); ++i) {
      for (int part = 0; part < (data.pairs ? 2 : 1); ++part) {
        SampleView v = data.train.get(i, part);
        for (std::size_t t = 0; t < v.length; ++t)
          if (v.ids[t] < 0 || v.ids[t] >= model.config.vocab_size)
            input_error("{}: the tokenizer produces id {} but the model has only {} embeddings; use the model's own tokenizer",
                        config.tokenizer_dir(), v.ids[t], model.config.vocab_size);
      }
    }
    RowPlan plan = plan_training_rows(data, config);
    if (plan.rows.empty())
      input_error("{}: no training sample is left: {} longer than sequence_len {} were dropped, {} had nothing to train, {} pairs were "
                  "identical within sequence_len", config.source, plan.report.dropped_overlong, config.sequence_len, plan.report.dropped_untrained,
                  plan.report.dropped_identical);
    print_data_report(report, data, plan, config);
    report << plan_training_memory(config, pick_device(config), base).describe();  // what a run would keep where
    if (warning) std::cerr << "warning: " << *warning << "\n";
    std::cout << report.str() << "ok\n";
    return 0;
  };
}

}  // namespace qtune
