// Progress output and metrics.jsonl. Depends on: trainer/progress.h.
#include "trainer/progress.h"

#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <sstream>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace qtune {
namespace {

std::string clock_text(double seconds) {
  const auto s = static_cast<int64_t>(seconds);
  return s >= 3600 ? fmt::format("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60) : fmt::format("{:02}:{:02}", s / 60, s % 60);
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

}  // namespace

int64_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  int64_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * static_cast<int64_t>(::sysconf(_SC_PAGESIZE));
}

Progress::Progress(const TrainConfig& config, int64_t total_steps, int64_t start_step, std::size_t adapted_modules, const PackingReport& data,
                   torch::Device device)
    : config_(config), total_steps_(total_steps), start_step_(start_step), tty_(::isatty(STDOUT_FILENO) != 0), start_(std::chrono::steady_clock::now()) {
  const std::string path = (std::filesystem::path(config.output_dir) / "metrics.jsonl").string();
  if (start_step > 0) truncate_metrics(path, start_step);
  else std::filesystem::remove(path);
  metrics_.open(path, std::ios::app);
  std::cout << fmt::format("train  {} steps on {} ({}), LoRA r={} on {} projections; {} rows, {} tokens ({} trained){}\n", total_steps, device.str(),
                           config.load_in_4bit ? config.bnb_4bit_quant_type + " base" : "16-bit base", config.lora_r, adapted_modules, data.rows,
                           data.tokens, data.trained_tokens, start_step > 0 ? fmt::format("; resuming after step {}", start_step) : "");
}

void Progress::write_metrics(const StepRecord& r) {
  nlohmann::ordered_json line = {{"step", r.step},     {"epoch", r.epoch},        {"loss", r.loss},         {"lr", r.lr},
                                 {"grad_norm", r.grad_norm}, {"trained_tokens", r.trained_tokens}, {"tokens", r.tokens}};
  if (r.skipped) line["skipped_nonfinite"] = true;
  if (!std::isnan(r.eval_loss)) line["eval_loss"] = r.eval_loss;
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  line["elapsed_s"] = elapsed;
  line["tokens_per_s"] = elapsed > 0 ? static_cast<double>(tokens_since_start_) / elapsed : 0.0;
  line["host_memory_bytes"] = resident_bytes();
  metrics_ << line.dump() << "\n";
  metrics_.flush();
}

void Progress::step(const StepRecord& r) {
  tokens_since_start_ += r.tokens;
  const bool logged = config_.logging_steps <= 1 || r.step % config_.logging_steps == 0 || r.step == total_steps_ || !std::isnan(r.eval_loss);
  if (!logged) return;
  write_metrics(r);
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double per_step = elapsed / static_cast<double>(std::max<int64_t>(1, r.step - start_step_));
  const double eta = per_step * static_cast<double>(total_steps_ - r.step);
  std::string text = fmt::format("step {}/{}  loss {:.4f}  lr {:.2e}  grad {:.3f}  {:.0f} tok/s  mem {:.2f} GB  eta {}", r.step, total_steps_, r.loss,
                                 r.lr, r.grad_norm, elapsed > 0 ? tokens_since_start_ / elapsed : 0.0, resident_bytes() / 1e9, clock_text(eta));
  if (!std::isnan(r.eval_loss)) text += fmt::format("  eval {:.4f}", r.eval_loss);
  if (r.skipped) text += "  (non-finite: skipped)";
  if (tty_) {
    const int width = 20, filled = static_cast<int>(width * r.step / std::max<int64_t>(1, total_steps_));
    std::cout << "\r\033[K[" << std::string(filled, '#') << std::string(width - filled, '.') << "] " << text << std::flush;
    if (!std::isnan(r.eval_loss)) std::cout << "\n";
  } else {
    std::cout << text << "\n";
  }
}

void Progress::finish(const std::string& message) {
  if (tty_) std::cout << "\n";
  std::cout << message << std::endl;
}

}  // namespace qtune
