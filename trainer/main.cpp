// qtune entry point: parses the command line and maps failures to exit statuses (2: bad usage or
// input, with one "error:" line; 1: internal failure or out of memory, also one line).
#include <c10/util/Exception.h>
#include <fmt/format.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include <algorithm>
#include <iostream>
#include <new>
#include <string>
#include <vector>

#include "core/error.h"
#include "trainer/commands.h"

namespace {

// One line, so that scripts (bench/train_throughput.sh --max-seq) can tell "too big" from a failure.
int out_of_memory(std::string message) {
  std::replace(message.begin(), message.end(), '\n', ' ');
  std::cerr << "error: out of memory: " << message << " (lower sequence_len or micro_batch_size; gradient_checkpointing and activation_offloading save memory)\n";
  return 1;
}

// `qtune --version`: what this binary was built with and the GPUs it sees.
std::string version_text() {
#ifdef QTUNE_WITH_CUDA
  const std::string kernels = "CUDA kernels for sm_" QTUNE_CUDA_ARCHITECTURES_TEXT;
#else
  const std::string kernels = "no CUDA kernels (CPU build)";
#endif
  const int64_t gpus = torch::cuda::device_count();
  return fmt::format("qtune: LibTorch {}, {}; {} GPU{} visible", TORCH_VERSION, kernels, gpus, gpus == 1 ? "" : "s");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"qtune: QLoRA fine-tuning of Llama-family models (see README.md)", "qtune"};
  app.set_version_flag("--version", std::function<std::string()>(version_text));
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
  add(qtune::add_export_command);
  add(qtune::add_generate_command);
  add(qtune::add_eval_command);
  add(qtune::add_validate_command);
  add(qtune::add_data_command);
  add(qtune::add_report_command);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
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
  } catch (const c10::OutOfMemoryError& e) {
    return out_of_memory(e.what_without_backtrace());
  } catch (const std::bad_alloc&) {
    return out_of_memory("the host has no memory left");
  } catch (const c10::Error& e) {
    // LibTorch's CPU allocator reports a failed allocation as a plain c10::Error.
    const std::string message = e.what_without_backtrace();
    if (message.find("can't allocate memory") != std::string::npos || message.find("not enough memory") != std::string::npos)
      return out_of_memory(message);
    std::cerr << "error: internal: " << message << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "error: internal: " << e.what() << "\n";
    return 1;
  }
  return 1;
}
