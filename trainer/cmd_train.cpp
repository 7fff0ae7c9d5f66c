// qtune train CONFIG.yaml [key=value ...]: fine-tune as the config says. Depends on: trainer/commands.h,
// trainer/trainer.h.
#include <fstream>
#include <sstream>

#include "trainer/commands.h"
#include "trainer/trainer.h"

namespace qtune {

Command add_train_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("train", "Fine-tune a model with LoRA as CONFIG.yaml says");
  auto config_path = std::make_shared<std::string>();
  auto overrides = std::make_shared<std::vector<std::string>>();
  cmd->add_option("config", *config_path, "the YAML config")->required();
  cmd->add_option("overrides", *overrides, "key=value overrides (YAML values)");
  return [config_path, overrides]() {
    TrainConfig config = TrainConfig::load(*config_path, *overrides);
    config.check_paths();
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
