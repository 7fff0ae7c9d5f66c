// What `qtune report` reads from a training output folder: metrics.jsonl (one JSON object per logged
// step), qtune_run.json (the run record `qtune train` writes: data summary, memory plan, config, final
// numbers) and, for runs without a record, qtune_training.yaml.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace qtune {

inline constexpr const char* kMetricsFile = "metrics.jsonl";
inline constexpr const char* kRunRecordFile = "qtune_run.json";

struct RunFiles {
  std::string dir;                           // as given on the command line
  std::string name;                          // what legends and table headings call the run
  std::vector<nlohmann::json> metrics;       // metrics.jsonl's lines, in order
  nlohmann::json record;                     // qtune_run.json; null when the folder has none
  std::string config_yaml;                   // the config as run ("" when neither file has it)
};

// Reads a run's folder. InputError naming the file for a missing folder, a folder without metrics.jsonl or
// qtune_run.json, or a line that is not a JSON object; a last line cut short (a run still writing, or
// killed mid-line) is left out.
RunFiles read_run_files(const std::string& dir);

// (step, value) of every metrics.jsonl line that has `key`, in order; a value that is not a number (a non-finite one
// is written as null) is NaN.
std::vector<std::pair<double, double>> logged_values(const RunFiles& run, const std::string& key);

// Names for the runs' legends: each folder's name, or the whole path where two runs share a name.
void name_runs(std::vector<RunFiles>& runs);

}  // namespace qtune
