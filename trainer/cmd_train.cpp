// qtune train CONFIG.yaml [key=value ...] [--nproc N]: fine-tune as the config says.
#include <fstream>
#include <sstream>

#include "trainer/commands.h"
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
    TrainConfig config = TrainConfig::load(*config_path, *overrides);
    config.check_paths();
    if (*nproc > 1 && !launched_as_rank()) return run_local_ranks(*nproc);
    std::ifstream in(*config_path);
    std::stringstream text;
    text << in.rdbuf();
    std::string resolved = text.str();
    // Overrides are appended as YAML keys (a later key wins when the file is read back).
    for (const auto& o : *overrides) resolved += "\n" + o.substr(0, o.find('=')) + ": " + o.substr(o.find('=') + 1);
    run_training(config, resolved + "\n");
    return 0;
  };
}

}  // namespace qtune
