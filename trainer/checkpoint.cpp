// Checkpoint writing and reading.
#include "trainer/checkpoint.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "adapters/peft_format.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/json_file.h"
#include "models/layer_checkpoint.h"
#include "models/safetensors.h"

namespace qtune {
namespace {

namespace fs = std::filesystem;
constexpr const char* kStateFormat = "qtune-trainer-state";
constexpr int kStateVersion = 1;

int64_t step_of(const fs::path& dir) {
  const std::string name = dir.filename().string();
  if (name.rfind("checkpoint-", 0) != 0) return -1;
  try {
    return std::stoll(name.substr(11));
  } catch (const std::exception&) {
    return -1;
  }
}

std::string rng_file(std::size_t rank) { return "rng_state_" + std::to_string(rank) + ".safetensors"; }

std::vector<fs::path> checkpoints_by_step(const std::string& output_dir) {
  std::vector<fs::path> found;
  if (!fs::is_directory(output_dir)) return found;
  for (const auto& entry : fs::directory_iterator(output_dir))
    if (entry.is_directory() && step_of(entry.path()) >= 0 && fs::exists(entry.path() / "trainer_state.json")) found.push_back(entry.path());
  std::sort(found.begin(), found.end(), [](const fs::path& a, const fs::path& b) { return step_of(a) < step_of(b); });
  return found;
}

}  // namespace

std::string checkpoint_dir(const std::string& output_dir, int64_t step) {
  return (fs::path(output_dir) / ("checkpoint-" + std::to_string(step))).string();
}

RankRng current_rng(const torch::Device& device) {
  return {generator_state(torch::kCPU), device.is_cuda() ? generator_state(device).cpu() : torch::Tensor()};
}

std::string save_checkpoint(const std::string& output_dir, CheckpointContents c, const TrainerState& state, const std::vector<RankRng>& ranks) {
  const fs::path final_dir = checkpoint_dir(output_dir, state.step);
  const fs::path tmp = fs::path(output_dir) / (".checkpoint-" + std::to_string(state.step) + ".tmp." + std::to_string(::getpid()));
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  save_peft_adapter(c.model, c.lora, tmp.string(), c.base.base_model, PeftSave::kAsTrained);  // resume continues the adapter as it is
  save_safetensors((tmp / "optimizer.safetensors").string(), c.optimizer.state(), {{"format", "qtune-optimizer"}});
  for (std::size_t r = 0; r < ranks.size(); ++r) {
    std::vector<std::pair<std::string, torch::Tensor>> rng = {{"cpu", ranks[r].cpu}};
    if (ranks[r].cuda.defined()) rng.emplace_back("cuda", ranks[r].cuda);  // dropout on the GPU
    save_safetensors((tmp / rng_file(r)).string(), rng, {{"format", "qtune-rng"}});
  }
  nlohmann::ordered_json json = {{"format", kStateFormat},
                                 {"version", kStateVersion},
                                 {"step", state.step},
                                 {"micro_batch", state.micro_batch},
                                 {"world_size", state.world_size},
                                 {"micro_batches_per_epoch", state.micro_batches_per_epoch},
                                 {"optimizer_steps", c.optimizer.steps_taken()},
                                 {"last_loss", state.last_loss}};
  AtomicFile::write_all((tmp / "trainer_state.json").string(), json.dump(2) + "\n");
  AtomicFile::write_all((tmp / kTrainingConfigFile).string(), c.config_yaml);
  write_training_base(tmp.string(), c.base);
  fs::remove_all(final_dir);
  fs::rename(tmp, final_dir);
  return final_dir.string();
}

TrainerState load_checkpoint(const std::string& dir, CheckpointContents c, int rank) {
  const std::string state_path = (fs::path(dir) / "trainer_state.json").string();
  nlohmann::json json = read_json_file(state_path);
  if (json.value("format", "") != kStateFormat || json.value("version", 0) != kStateVersion)
    input_error("{}: not a qtune trainer state of version {}", state_path, kStateVersion);
  // The adapter, as trained, into the live parameters (read and checked as any PEFT adapter).
  copy_peft_adapter(c.model, read_peft_adapter(dir, &c.model->config()), dir);
  torch::NoGradGuard no_grad;
  // Optimizer moments and the RNG.
  const std::string optimizer_path = (fs::path(dir) / "optimizer.safetensors").string();
  auto optimizer_file = SafetensorsFile::open(optimizer_path);
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& info : optimizer_file->tensors()) tensors.emplace_back(info.name, optimizer_file->view(info).clone());
  c.optimizer.load_state(tensors, json.value("optimizer_steps", int64_t(0)), optimizer_path);
  // This rank's RNG; checkpoints of earlier versions kept rank 0's as rng.* in the optimizer file.
  const fs::path rng_path = fs::path(dir) / rng_file(static_cast<std::size_t>(rank));
  std::shared_ptr<SafetensorsFile> rng_source = fs::exists(rng_path) ? SafetensorsFile::open(rng_path.string()) : nullptr;
  const std::string prefix = rng_source ? "" : "rng.";
  if (!rng_source && rank == 0) rng_source = optimizer_file;
  if (rng_source) {
    if (const TensorInfo* rng = rng_source->find(prefix + "cpu")) set_generator_state(torch::kCPU, rng_source->view(*rng).clone());
    if (const TensorInfo* rng = rng_source->find(prefix + "cuda"); rng && c.model->device().is_cuda())
      set_generator_state(c.model->device(), rng_source->view(*rng).clone());
  }
  TrainerState state;
  state.step = json.value("step", int64_t(0));
  state.micro_batch = json.value("micro_batch", int64_t(0));
  state.last_loss = json.value("last_loss", 0.0);
  state.world_size = json.value("world_size", 1);
  state.micro_batches_per_epoch = json.value("micro_batches_per_epoch", int64_t(0));
  return state;
}

std::string latest_checkpoint(const std::string& output_dir) {
  auto found = checkpoints_by_step(output_dir);
  return found.empty() ? std::string() : found.back().string();
}

void prune_checkpoints(const std::string& output_dir, int64_t limit) {
  if (limit <= 0) return;
  auto found = checkpoints_by_step(output_dir);
  for (std::size_t i = 0; i + static_cast<std::size_t>(limit) < found.size(); ++i) fs::remove_all(found[i]);
}

}  // namespace qtune
