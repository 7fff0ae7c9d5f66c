// qtune entry point: parses the command line and maps failures to exit statuses (2: bad usage or
// input, with one "error:" line; 1: internal failure). Depends on: trainer/commands.h, core/error.h.
#include <c10/util/Exception.h>

#include <iostream>
#include <vector>

#include "core/error.h"
#include "trainer/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"qtune: QLoRA fine-tuning of Llama-family models (see README.md)", "qtune"};
  app.require_subcommand(1);
  std::vector<std::pair<CLI::App*, qtune::Command>> commands;
  auto add = [&](qtune::Command (*adder)(CLI::App&)) {
    qtune::Command command = adder(app);
    commands.emplace_back(app.get_subcommands({}).back(), std::move(command));
  };
  add(qtune::add_init_model_command);
  add(qtune::add_inspect_command);
  add(qtune::add_tokenize_command);
  add(qtune::add_quantize_command);
  add(qtune::add_train_command);
  add(qtune::add_merge_command);
  add(qtune::add_generate_command);
  add(qtune::add_validate_command);
  add(qtune::add_data_command);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "error: " << e.what() << " (run 'qtune --help')\n";
    return 2;
  }
  try {
    for (auto& [sub, run] : commands)
      if (sub->parsed()) return run();
  } catch (const qtune::InputError& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  } catch (const c10::Error& e) {
    std::cerr << "error: internal: " << e.what_without_backtrace() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "error: internal: " << e.what() << "\n";
    return 1;
  }
  return 1;
}
