// qtune_run.json in output_dir: the facts of a training run that metrics.jsonl does not hold (config, data
// summary, memory plan, device, status and final numbers), for `qtune report`. Rank 0 writes it when the
// loop starts (status "running") and again when the run ends ("done", or "stopped" at a checkpoint).
#pragma once

#include <chrono>
#include <string>

#include <nlohmann/json.hpp>

#include "core/torch.h"
#include "data/batch_source.h"
#include "data/prepare_data.h"
#include "trainer/memory_plan.h"
#include "trainer/progress.h"
#include "trainer/train_config.h"

namespace qtune {

struct RunStart {
  const TrainConfig& config;  // as the memory plan runs it
  const MemoryPlan& plan;
  const PreparedData& data;
  const RowPlan& rows;  // the training rows as packed
  torch::Device device;
  int world_size = 1;
  int64_t total_steps = 0, start_step = 0;
  std::size_t adapted_modules = 0;
};

class RunRecord {
 public:
  explicit RunRecord(const RunStart& start);  // writes the record with status "running"
  // status "done" or "stopped"; final_eval: the evaluation after the last step (empty when none).
  void finish(const std::string& status, int64_t steps, double final_loss, const Metrics& final_eval);

 private:
  void write() const;
  std::string path_;
  nlohmann::ordered_json json_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace qtune
