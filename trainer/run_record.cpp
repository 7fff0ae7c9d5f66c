// The run record.
#include "trainer/run_record.h"

#include <ctime>
#include <filesystem>

#include <fmt/format.h>

#include "core/atomic_file.h"
#include "report/run_files.h"

namespace qtune {
namespace {

// Now as ISO 8601 UTC ("2026-12-06T06:41:07Z").
std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

nlohmann::ordered_json data_json(const PreparedData& data, const RowPlan& rows, const TrainConfig& config) {
  nlohmann::ordered_json datasets = nlohmann::ordered_json::array();
  for (const auto& d : data.datasets)
    datasets.push_back({{"path", d.path}, {"samples", d.samples}, {"skipped", d.skipped}, {"tokens", d.tokens}, {"trained_tokens", d.trained_tokens}});
  const PackingReport r = epoch_report(rows, data.pairs, config.packing_options());  // with the first epoch's padding
  return {{"template", data.template_name}, {"pairs", data.pairs}, {"datasets", datasets}, {"train_samples", data.train.size()},
          {"validation_samples", data.validation.size()}, {"rows", r.rows}, {"tokens", r.tokens}, {"trained_tokens", r.trained_tokens},
          {"padding_tokens", r.padding_tokens}, {"packing_efficiency", r.fill_ratio}, {"truncated", r.truncated},
          {"dropped_overlong", r.dropped_overlong}, {"dropped_untrained", r.dropped_untrained}, {"dropped_identical", r.dropped_identical}};
}

nlohmann::ordered_json plan_json(const MemoryPlan& plan) {
  return {{"text", plan.describe()},        {"device_bytes", plan.device_bytes()},         {"host_bytes", plan.host_bytes()},
          {"budget_bytes", plan.facts.budget_bytes}, {"fits", plan.fits}, {"turned_on", plan.turned_on}};
}

}  // namespace

RunRecord::RunRecord(const RunStart& s)
    : path_((std::filesystem::path(s.config.output_dir) / kRunRecordFile).string()), start_(std::chrono::steady_clock::now()) {
  const TrainConfig& c = s.config;
  json_ = {{"status", "running"},
           {"started", utc_now()},
           {"config_file", c.source},
           {"recipe", c.rl.empty() ? "sft" : c.rl},
           {"base_model", c.base_model},
           {"device", s.device.str()},
           {"world_size", s.world_size},
           {"adapter", fmt::format("LoRA r={} alpha={} on {} projections", c.lora_r, c.lora_alpha, s.adapted_modules)},
           {"total_steps", s.total_steps},
           {"start_step", s.start_step},
           {"data", data_json(s.data, s.rows, c)},
           {"memory_plan", plan_json(s.plan)},
           {"config", c.as_run_yaml}};
  write();
}

void RunRecord::finish(const std::string& status, int64_t steps, double final_loss, const Metrics& final_eval) {
  nlohmann::ordered_json eval = nlohmann::ordered_json::object();
  for (const auto& [name, value] : final_eval) eval[name] = value;
  json_["status"] = status;
  json_["finished"] = utc_now();
  json_["final"] = {{"steps", steps},
                    {"loss", final_loss},
                    {"eval", eval},
                    {"runtime_s", std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count()}};
  write();
}

void RunRecord::write() const { AtomicFile::write_all(path_, json_.dump(2) + "\n"); }

}  // namespace qtune
