// Progress output and metrics.jsonl.
#include "trainer/progress.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace qtune {
namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

std::string clock_text(double seconds) {
  const auto s = static_cast<int64_t>(seconds);
  return s >= 3600 ? fmt::format("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60) : fmt::format("{:02}:{:02}", s / 60, s % 60);
}

// On a GPU the caching allocator's peaks since the previous line: bytes in tensors and bytes held from the
// driver (what nvidia-smi shows); on the CPU the process's resident memory.
std::string memory_text(torch::Device device, const DeviceMemoryPeak& peak) {
  if (device.is_cuda())
    return fmt::format("gpu {:.2f} GiB alloc, {:.2f} GiB reserved", static_cast<double>(peak.allocated) / kGiB, static_cast<double>(peak.reserved) / kGiB);
  return fmt::format("rss {:.2f} GiB", static_cast<double>(resident_bytes()) / kGiB);
}

// Keeps the lines of `path` whose "step" is at most `step`.
void truncate_metrics(const std::string& path, int64_t step) {
  std::ifstream in(path);
  if (!in) return;
  std::vector<std::string> kept;
  for (std::string line; std::getline(in, line);) {
    try {
      if (nlohmann::json::parse(line).value("step", int64_t(0)) <= step) kept.push_back(line);
    } catch (const nlohmann::json::exception&) {
    }
  }
  in.close();
  std::ofstream out(path, std::ios::trunc);
  for (const auto& line : kept) out << line << "\n";
}

// Every number of a metrics.jsonl line as a TensorBoard scalar (tensorboard_tag's names) but "step" and
// "wall_time", which are the event's own fields.
std::vector<std::pair<std::string, double>> tensorboard_scalars(const nlohmann::ordered_json& line) {
  std::vector<std::pair<std::string, double>> scalars;
  for (const auto& [key, value] : line.items())
    if (value.is_number() && key != "step" && key != "wall_time") scalars.emplace_back(tensorboard_tag(key), value.get<double>());
  return scalars;
}

}  // namespace

double metric_or_nan(const Metrics& metrics, const std::string& name) {
  for (const auto& [key, value] : metrics)
    if (key == name) return value;
  return std::nan("");
}

int64_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  int64_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * static_cast<int64_t>(::sysconf(_SC_PAGESIZE));
}

Progress::Progress(const TrainConfig& config, int64_t total_steps, int64_t start_step, std::size_t adapted_modules, const PackingReport& data,
                   torch::Device device)
    : config_(config), device_(device), total_steps_(total_steps), start_step_(start_step), tty_(::isatty(STDOUT_FILENO) != 0), start_(std::chrono::steady_clock::now()) {
  const std::string path = (std::filesystem::path(config.output_dir) / "metrics.jsonl").string();
  if (start_step > 0) truncate_metrics(path, start_step);
  else std::filesystem::remove(path);
  metrics_.open(path, std::ios::app);
  if (config.reports_to_tensorboard()) tensorboard_.emplace(config.logging_dir, start_step, config.as_run_yaml);
  std::cout << fmt::format("train  {} steps on {} ({}), LoRA r={} on {} projections; {} rows, {} tokens ({} trained){}\n", total_steps, device.str(),
                           config.load_in_4bit ? config.bnb_4bit_quant_type + " base" : "16-bit base", config.lora_r, adapted_modules, data.rows,
                           data.tokens, data.trained_tokens, start_step > 0 ? fmt::format("; resuming after step {}", start_step) : "");
  if (device.is_cuda() && config.gpu_memory_limit > 0) {
    const double total = static_cast<double>(device_total_memory_bytes(device));
    std::cout << fmt::format("gpu memory limit {:.2f} GiB of {:.2f} GiB on {}\n", static_cast<double>(config.gpu_memory_limit) / kGiB, total / kGiB,
                             device.str());
  }
  reset_peak_device_memory(device);  // the first line's peak: the first steps, not the loading before them
}

void Progress::write_metrics(const StepRecord& r, const DeviceMemoryPeak& peak) {
  nlohmann::ordered_json line = {{"step", r.step},     {"epoch", r.epoch},        {"loss", r.loss},         {"lr", r.lr},
                                 {"grad_norm", r.grad_norm}, {"trained_tokens", r.trained_tokens}, {"tokens", r.tokens}};
  if (r.skipped) line["skipped_nonfinite"] = true;
  for (const auto& [name, value] : r.metrics) line[name] = value;
  for (const auto& [name, value] : r.eval) line[name] = value;
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  line["elapsed_s"] = elapsed;
  line["wall_time"] = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();  // Unix seconds
  line["tokens_per_s"] = elapsed > 0 ? static_cast<double>(tokens_since_start_) / elapsed : 0.0;
  line["step_time_s"] = r.step_seconds;
  line["host_memory_bytes"] = resident_bytes();
  if (device_.is_cuda()) {
    line["device_peak_allocated_bytes"] = peak.allocated;
    line["device_peak_reserved_bytes"] = peak.reserved;
  }
  metrics_ << line.dump() << "\n";
  metrics_.flush();
  if (tensorboard_) tensorboard_->scalars(line["wall_time"].get<double>(), r.step, tensorboard_scalars(line));
}

void Progress::step(const StepRecord& r) {
  tokens_since_start_ += r.tokens;
  const bool logged = config_.logging_steps <= 1 || r.step % config_.logging_steps == 0 || r.step == total_steps_ || !r.eval.empty();
  if (!logged) return;
  const DeviceMemoryPeak peak = peak_device_memory_bytes(device_);
  reset_peak_device_memory(device_);  // the next line's peak covers the steps after this one
  write_metrics(r, peak);
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double per_step = elapsed / static_cast<double>(std::max<int64_t>(1, r.step - start_step_));
  const double eta = per_step * static_cast<double>(total_steps_ - r.step);
  std::string text = fmt::format("step {}/{}  loss {:.4f}  lr {:.2e}  grad {:.3f}  {:.0f} tok/s  {}  eta {}", r.step, total_steps_, r.loss, r.lr,
                                 r.grad_norm, elapsed > 0 ? tokens_since_start_ / elapsed : 0.0, memory_text(device_, peak), clock_text(eta));
  // Preference runs: the pair accuracy and reward margin, the numbers DPO users watch.
  const double accuracy = metric_or_nan(r.metrics, "rewards/accuracies"), margin = metric_or_nan(r.metrics, "rewards/margins");
  if (!std::isnan(accuracy)) text += fmt::format("  acc {:.2f}  margin {:.3f}", accuracy, margin);
  const double eval_loss = metric_or_nan(r.eval, "eval_loss"), eval_accuracy = metric_or_nan(r.eval, "eval_rewards/accuracies");
  if (!std::isnan(eval_loss)) text += fmt::format("  eval {:.4f}", eval_loss);
  if (!std::isnan(eval_accuracy)) text += fmt::format("  eval acc {:.2f}", eval_accuracy);
  if (r.skipped) text += "  (non-finite: skipped)";
  if (tty_) {
    const int width = 20, filled = static_cast<int>(width * r.step / std::max<int64_t>(1, total_steps_));
    std::cout << "\r\033[K[" << std::string(filled, '#') << std::string(width - filled, '.') << "] " << text << std::flush;
    if (!r.eval.empty()) std::cout << "\n";
  } else {
    std::cout << text << "\n";
  }
}

void Progress::finish(const std::string& message) {
  if (tty_) std::cout << "\n";
  std::cout << message << std::endl;
}

}  // namespace qtune
