// Reading a training output folder for the report.
#include "report/run_files.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>

#include "core/error.h"
#include "core/json_file.h"

namespace qtune {
namespace {

namespace fs = std::filesystem;

// metrics.jsonl's objects; a final line without its newline is a write in progress and is skipped.
std::vector<nlohmann::json> read_metrics(const fs::path& path) {
  std::vector<nlohmann::json> lines;
  if (!fs::exists(path)) return lines;
  const std::string text = read_text_file(path.string());
  std::size_t begin = 0, number = 0;
  while (begin < text.size()) {
    const std::size_t end = text.find('\n', begin);
    if (end == std::string::npos) break;  // cut short
    ++number;
    const std::string line = text.substr(begin, end - begin);
    begin = end + 1;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json value = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!value.is_object() || !value.contains("step") || !value["step"].is_number())
      input_error("{}:{}: not a JSON object with a numeric \"step\"; the file holds one such object per line, as qtune train writes it",
                  path.string(), number);
    lines.push_back(std::move(value));
  }
  return lines;
}

// The record's sections the report reads have the types qtune train writes (a hand-edited or foreign
// file gets an error naming it, not a failure inside the report).
void check_record(const nlohmann::json& record, const std::string& path) {
  if (!record.is_object()) input_error("{}: not a JSON object; rerun qtune train or remove the file", path);
  for (const char* section : {"data", "memory_plan", "final"})
    if (record.contains(section) && !record[section].is_object()) input_error("{}: '{}' is not an object; rerun qtune train or remove the file", path, section);
  const bool datasets_ok = !record.contains("data") || !record["data"].contains("datasets") || record["data"]["datasets"].is_array();
  const bool eval_ok = !record.contains("final") || !record["final"].contains("eval") || record["final"]["eval"].is_object();
  if (!datasets_ok || !eval_ok) input_error("{}: 'data.datasets' or 'final.eval' has the wrong type; rerun qtune train or remove the file", path);
  if (record.contains("config") && !record["config"].is_string()) input_error("{}: 'config' is not a string; rerun qtune train or remove the file", path);
}

}  // namespace

RunFiles read_run_files(const std::string& dir) {
  const fs::path folder(dir);
  if (!fs::is_directory(folder)) input_error("{}: no such folder; give the output_dir of a qtune train run", dir);
  RunFiles run;
  run.dir = dir;
  run.name = folder.lexically_normal().filename().string();
  if (run.name.empty()) run.name = folder.lexically_normal().parent_path().filename().string();
  const fs::path record = folder / kRunRecordFile, metrics = folder / kMetricsFile;
  if (!fs::exists(record) && !fs::exists(metrics))
    input_error("{}: neither {} nor {} is there; give the output_dir of a qtune train run", dir, kMetricsFile, kRunRecordFile);
  run.metrics = read_metrics(metrics);
  if (fs::exists(record)) {
    run.record = read_json_file(record.string());
    check_record(run.record, record.string());
    run.config_yaml = run.record.value("config", "");
  }
  const fs::path config = folder / "qtune_training.yaml";
  if (run.config_yaml.empty() && fs::exists(config)) run.config_yaml = read_text_file(config.string());
  return run;
}

std::vector<std::pair<double, double>> logged_values(const RunFiles& run, const std::string& key) {
  std::vector<std::pair<double, double>> values;
  for (const auto& line : run.metrics) {  // each has a numeric "step" (read_metrics checks)
    const auto value = line.find(key);
    if (value != line.end()) values.emplace_back(line["step"].get<double>(), value->is_number() ? value->get<double>() : std::nan(""));
  }
  return values;
}

void name_runs(std::vector<RunFiles>& runs) {
  std::map<std::string, int> uses;
  for (const auto& run : runs) ++uses[run.name];
  for (auto& run : runs)
    if (uses[run.name] > 1) run.name = fs::path(run.dir).lexically_normal().string();
}

}  // namespace qtune
