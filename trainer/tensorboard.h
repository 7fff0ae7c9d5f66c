// TensorBoard event files (report_to: tensorboard), written without TensorFlow or protobuf: TFRecord framing
// (length, masked CRC-32C of it, data, masked CRC-32C of the data) around hand-encoded `Event` protos with
// `Summary` scalars (simple_value, float32 as TensorBoard stores them) and one text summary of the config.
// Rank 0 writes them from trainer/progress.cpp, next to metrics.jsonl: one scalar per number of its lines.
#pragma once

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

namespace qtune {

// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) and TFRecord's masked form of it.
uint32_t crc32c(const void* data, std::size_t size);
uint32_t masked_crc32c(const void* data, std::size_t size);

// One TFRecord: uint64 length (little-endian), its masked CRC, the data, the data's masked CRC.
std::string tfrecord(const std::string& data);
// The records' data from a file's bytes, in order; stops at the first truncated or corrupt record (the tail of
// a file a crashed run was writing).
std::vector<std::string> read_tfrecords(const std::string& bytes);

// Encoded `Event`s: the file's first (file_version "brain.Event:2"), scalars, a text summary (plugin "text").
std::string file_version_event(double wall_time);
std::string scalars_event(double wall_time, int64_t step, const std::vector<std::pair<std::string, double>>& values);
std::string text_event(double wall_time, int64_t step, const std::string& tag, const std::string& text);
// The step field of an encoded Event (0 when absent, as protobuf reads it).
int64_t event_step(const std::string& event);

// The TensorBoard tag of a metrics.jsonl key, HF TensorBoardCallback's rule: "eval_X" -> "eval/X", any other
// key K -> "train/K" ("loss" -> "train/loss", "rewards/accuracies" -> "train/rewards/accuracies").
std::string tensorboard_tag(const std::string& metric);

// The run's event file in `logging_dir` (created). A fresh run (start_step 0) removes qtune's earlier event
// files there (as metrics.jsonl starts over) and writes `config_text` as the text summary "config". A resumed
// run rewrites the existing ones keeping only events up to start_step (through a temporary file and a rename),
// then appends to the newest: each step once on every curve.
class TensorBoardWriter {
 public:
  TensorBoardWriter(const std::string& logging_dir, int64_t start_step, const std::string& config_text);
  void scalars(double wall_time, int64_t step, const std::vector<std::pair<std::string, double>>& values);
  const std::string& path() const { return path_; }

 private:
  void append(const std::string& event);
  std::string path_;
  std::ofstream file_;
};

}  // namespace qtune
