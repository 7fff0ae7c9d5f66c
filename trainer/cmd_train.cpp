// qtune train CONFIG.yaml [key=value ...] [--nproc N]: fine-tune as the config says.
#include <iostream>

#include "trainer/commands.h"
#include "trainer/distributed.h"
#include "trainer/launcher.h"
#include "trainer/trainer.h"

namespace qtune {

Command add_train_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("train", "Fine-tune a model with LoRA as CONFIG.yaml says");
  auto config_path = std::make_shared<std::string>();
  auto overrides = std::make_shared<std::vector<std::string>>();
  cmd->add_option("config", *config_path, "the YAML config")->required();
  cmd->add_option("overrides", *overrides, "key=value overrides (YAML values)");
  auto nproc = std::make_shared<int>(1);
  cmd->add_option("--nproc", *nproc, "run N local data-parallel ranks (torchrun's RANK/WORLD_SIZE/... are used when set)")
      ->check(CLI::Range(1, 1024));
  return [config_path, overrides, nproc]() {
    // Every check that needs only the config and the base's config.json, before any work (and before ranks start).
    const TrainConfig config = TrainConfig::load(*config_path, *overrides);
    config.check_paths();
    const BaseModelInfo base = BaseModelInfo::read(config.base_model);
    const std::optional<std::string> warning = check_sequence_len(config, base.config, base.dir + "/config.json");
    if (*nproc > 1 && !launched_as_rank()) return run_local_ranks(*nproc);
    if (warning && launch_environment().rank == 0) std::cerr << "warning: " << *warning << "\n";  // once, by rank 0
    run_training(config, base);
    return 0;
  };
}

}  // namespace qtune
