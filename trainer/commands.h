// The qtune subcommands: each registers its options on the CLI11 app and returns the function to run.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>

namespace qtune {

using Command = std::function<int()>;  // returns the exit status

Command add_init_model_command(CLI::App& app);
Command add_inspect_command(CLI::App& app);
Command add_tokenize_command(CLI::App& app);
Command add_quantize_command(CLI::App& app);
Command add_train_command(CLI::App& app);
Command add_merge_command(CLI::App& app);
Command add_export_command(CLI::App& app);
Command add_generate_command(CLI::App& app);
Command add_eval_command(CLI::App& app);
struct InferenceOptions;
// --model, --adapter, --dtype and --load-in-4bit: how generate and eval load what they run (trainer/inference_model.h).
void add_inference_options(CLI::App* cmd, InferenceOptions& options);
Command add_validate_command(CLI::App& app);
Command add_data_command(CLI::App& app);
Command add_report_command(CLI::App& app);

}  // namespace qtune
