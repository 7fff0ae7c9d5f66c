// The SFT recipe, top to bottom. Depends on: trainer/sft_trainer.h, trainer/{adamw,lr_schedule,checkpoint,
// data_report,progress}.h, adapters/{lora,peft_format}.h, models/model_loader.h, data/prepare_data.h.
#include "trainer/sft_trainer.h"

#include <torch/cuda.h>

#include <atomic>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "adapters/lora.h"
#include "adapters/peft_format.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "models/model_files.h"
#include "trainer/adamw.h"
#include "trainer/checkpoint.h"
#include "trainer/data_report.h"
#include "trainer/lr_schedule.h"
#include "trainer/progress.h"

namespace qtune {
namespace {

namespace fs = std::filesystem;

std::atomic<bool> stop_requested{false};
extern "C" void on_stop_signal(int) { stop_requested = true; }

torch::Device pick_device(const TrainConfig& config) {
  if (config.device == "cpu") return torch::kCPU;
  if (config.device == "cuda" && !torch::cuda::is_available()) input_error("{}: key 'device' is cuda but no CUDA device is available", config.source);
  return torch::cuda::is_available() ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
}

LoraOptions lora_options(const TrainConfig& config) {
  LoraOptions o;
  o.r = config.lora_r;
  o.alpha = config.lora_alpha;
  o.dropout = config.lora_dropout;
  o.rslora = config.peft_use_rslora;
  o.init = config.lora_init;
  o.target_modules = config.lora_target_modules;
  o.target_linear = config.lora_target_linear || config.lora_target_modules.empty();
  return o;
}

// A micro-batch as tensors on the device.
struct DeviceBatch {
  torch::Tensor input_ids, labels;  // [B, T] int64
  SequenceLayout layout;
  int64_t trained_tokens = 0;       // loss terms: labels[:, 1:] != -100
  int64_t tokens = 0;               // non-padding tokens
};

DeviceBatch to_device(const Batch& b, torch::Device device) {
  auto as_tensor = [&](const std::vector<int32_t>& v) {
    return torch::from_blob(const_cast<int32_t*>(v.data()), {static_cast<int64_t>(b.rows), static_cast<int64_t>(b.width)}, torch::kInt32)
        .to(device, torch::kLong);
  };
  DeviceBatch d{as_tensor(b.input_ids), as_tensor(b.labels), {as_tensor(b.segment_ids), as_tensor(b.position_ids)}, 0, 0};
  d.trained_tokens = static_cast<int64_t>(b.trained_tokens);
  for (int32_t s : b.segment_ids) d.tokens += s != 0;
  return d;
}

// Summed cross-entropy of next-token prediction over the trained positions (fp32).
torch::Tensor summed_loss(CausalLM& model, const DeviceBatch& batch) {
  torch::Tensor logits = model->forward(batch.input_ids, batch.layout);  // [B, T, V]
  const int64_t vocab = logits.size(-1);
  torch::Tensor shifted = logits.slice(1, 0, -1).reshape({-1, vocab}).to(torch::kFloat);
  torch::Tensor targets = batch.labels.slice(1, 1).reshape({-1});
  return at::cross_entropy_loss(shifted, targets, {}, at::Reduction::Sum, -100, 0.0);
}

// The data stream: micro-batch m of the whole run is batch (m mod n) of epoch (m div n).
class MicroBatches {
 public:
  MicroBatches(const PreparedData& data, const TrainConfig& config)
      : data_(data), options_(packing_options(config)), plan_(plan_training_rows(data, config)), pad_id_(0) {
    per_epoch_ = plan_batches(plan_.row_lengths, options_, 0).size();
    if (per_epoch_ == 0) input_error("{}: no training sample is left after packing (see qtune validate)", config.source);
  }
  std::size_t per_epoch() const { return per_epoch_; }
  const PackingReport& report() const { return plan_.report; }
  Batch get(int64_t m) {
    const uint64_t epoch = static_cast<uint64_t>(m) / per_epoch_;
    if (epoch != cached_epoch_) {
      batches_ = plan_batches(plan_.row_lengths, options_, epoch);
      cached_epoch_ = epoch;
    }
    const SampleSet& train = data_.train;
    return collate(plan_.rows, batches_[static_cast<std::size_t>(m) % per_epoch_], [&](std::size_t i) { return train.get(i); }, pad_id_, options_);
  }

 private:
  const PreparedData& data_;
  PackingOptions options_;
  RowPlan plan_;
  TokenId pad_id_;
  std::size_t per_epoch_ = 0;
  uint64_t cached_epoch_ = UINT64_MAX;
  std::vector<std::vector<std::size_t>> batches_;
};

// Mean loss per trained token over the validation set (adapters on, dropout off).
double evaluate(CausalLM& model, const PreparedData& data, const TrainConfig& config, torch::Device device) {
  if (data.validation.size() == 0) return std::nan("");
  PackingOptions options = packing_options(config);
  const SampleSet& validation = data.validation;
  RowPlan plan = plan_rows(validation.size(), [&](std::size_t i) { return validation.get(i); }, options);
  torch::NoGradGuard no_grad;
  model->eval();
  double sum = 0;
  int64_t count = 0;
  for (const auto& batch : plan_batches(plan.row_lengths, options, 0)) {
    DeviceBatch d = to_device(collate(plan.rows, batch, [&](std::size_t i) { return validation.get(i); }, 0, options), device);
    if (d.trained_tokens == 0) continue;
    sum += summed_loss(model, d).item<double>();
    count += d.trained_tokens;
  }
  model->train();
  return count > 0 ? sum / static_cast<double>(count) : std::nan("");
}


}  // namespace

TrainSummary run_sft(const TrainConfig& config, const std::string& config_text) {
  if (!config.rl.empty()) input_error("{}: rl: {} is a preference method; this build trains SFT only", config.source, config.rl);
  const torch::Device device = pick_device(config);
  torch::manual_seed(static_cast<uint64_t>(config.seed));

  // Data first: its errors are the most common and the cheapest to report.
  PreparedData data = prepare_data(config.data_config(), config.tokenizer_dir());
  MicroBatches micro_batches(data, config);

  // Model: 4-bit (or 16-bit) frozen base + LoRA. Compute in bf16 on a GPU (bf16: true), fp32 on the CPU.
  LoadOptions load = config.load_options();
  load.device = device;
  load.dtype = device.is_cuda() && config.bf16 ? torch::kBFloat16 : torch::kFloat;
  CausalLM model = load_causal_lm(config.base_model, load);
  const LoraOptions lora = lora_options(config);
  const auto adapted = inject_lora(model, lora, static_cast<uint64_t>(config.seed));
  model->to(device);
  model->set_gradient_checkpointing(config.gradient_checkpointing);
  model->train();
  std::vector<std::pair<std::string, torch::Tensor>> parameters = lora_state(model);
  AdamW optimizer(parameters, {config.adam_beta1, config.adam_beta2, config.adam_epsilon, config.weight_decay});

  // Schedule over the whole run.
  const int64_t accumulation = config.gradient_accumulation_steps;
  const int64_t budget = config.max_steps > 0 ? config.max_steps * accumulation
                                              : static_cast<int64_t>(std::ceil(config.num_epochs * static_cast<double>(micro_batches.per_epoch())));
  const int64_t total_steps = config.max_steps > 0 ? config.max_steps : (budget + accumulation - 1) / accumulation;
  LrSchedule schedule{config.lr_scheduler, warmup_steps_for(config.warmup_steps, config.warmup_ratio, total_steps), total_steps, config.cosine_min_lr_ratio};

  fs::create_directories(config.output_dir);
  // Saved with every adapter: the config, plus the compute dtype this run used (merge and generate
  // rebuild the same dequantized weights from it).
  const std::string saved_config = config_text + "\nbnb_4bit_compute_dtype: " +
                                   (load.dtype == torch::kBFloat16 ? "bfloat16" : load.dtype == torch::kHalf ? "float16" : "float32") + "\n";
  CheckpointContents contents{model, lora, optimizer, config.base_model, saved_config};
  TrainerState state;
  if (!config.resume_from_checkpoint.empty()) {
    const std::string dir = config.resume_from_checkpoint == "auto" ? latest_checkpoint(config.output_dir) : config.resume_from_checkpoint;
    if (!dir.empty()) state = load_checkpoint(dir, contents);
    else if (config.resume_from_checkpoint != "auto") input_error("{}: no checkpoint to resume from", config.resume_from_checkpoint);
  }

  Progress progress(config, total_steps, state.step, adapted.size(), micro_batches.report(), device);
  stop_requested = false;
  auto previous_int = std::signal(SIGINT, on_stop_signal);
  auto previous_term = std::signal(SIGTERM, on_stop_signal);
  TrainSummary summary;

  while (state.step < total_steps && state.micro_batch < budget) {
    // One optimizer step: its micro-batches, with the loss normalized by all their trained tokens.
    std::vector<DeviceBatch> step_batches;
    int64_t step_trained = 0, step_tokens = 0;
    for (int64_t k = 0; k < accumulation && state.micro_batch + k < budget; ++k) {
      step_batches.push_back(to_device(micro_batches.get(state.micro_batch + k), device));
      step_trained += step_batches.back().trained_tokens;
      step_tokens += step_batches.back().tokens;
    }
    double step_loss = 0;
    for (const auto& batch : step_batches) {
      torch::Tensor loss = summed_loss(model, batch) / static_cast<double>(std::max<int64_t>(1, step_trained));
      loss.backward();
      step_loss += loss.item<double>();
    }
    // Gradient norm over the adapter, clipping, and the non-finite check.
    double squares = 0;
    for (auto& [name, p] : parameters)
      if (p.grad().defined()) squares += p.grad().to(torch::kFloat).pow(2).sum().item<double>();
    const double grad_norm = std::sqrt(squares);
    const bool finite = std::isfinite(step_loss) && std::isfinite(grad_norm);
    if (!finite && !config.skip_nonfinite_steps)
      input_error("step {}: the {} is not finite ({}); lower learning_rate, check the data, or set skip_nonfinite_steps: true", state.step + 1,
                  std::isfinite(step_loss) ? "gradient norm" : "loss", std::isfinite(step_loss) ? grad_norm : step_loss);
    const double lr = config.learning_rate * schedule.factor(state.step);
    if (finite) {
      if (config.max_grad_norm > 0 && grad_norm > config.max_grad_norm)
        for (auto& [name, p] : parameters)
          if (p.grad().defined()) p.mutable_grad().mul_(config.max_grad_norm / (grad_norm + 1e-6));
      optimizer.step(lr);
    }
    optimizer.zero_grad();
    state.step += 1;
    state.micro_batch += static_cast<int64_t>(step_batches.size());
    state.last_loss = step_loss;
    summary.final_loss = step_loss;

    StepRecord record{state.step, static_cast<double>(state.micro_batch) / static_cast<double>(micro_batches.per_epoch()), step_loss, lr, grad_norm,
                      step_trained, step_tokens, !finite};
    if (config.eval_steps > 0 && state.step % config.eval_steps == 0) record.eval_loss = evaluate(model, data, config, device);
    progress.step(record);

    const bool stop = stop_requested || (config.stop_after_steps > 0 && state.step == config.stop_after_steps);
    if ((config.save_steps > 0 && state.step % config.save_steps == 0) || stop) {
      const std::string path = save_checkpoint(config.output_dir, contents, state);
      prune_checkpoints(config.output_dir, config.save_total_limit);
      if (stop) {
        summary.interrupted = true;
        summary.checkpoint = path;
        break;
      }
    }
  }
  std::signal(SIGINT, previous_int);
  std::signal(SIGTERM, previous_term);
  summary.steps = state.step;
  if (summary.interrupted) {
    progress.finish(fmt::format("stopped after step {}; checkpoint {}. Resume with: qtune train {} resume_from_checkpoint=auto", state.step,
                                summary.checkpoint, config.source));
    return summary;
  }

  // Outputs: the adapter in PEFT format, the resolved config, the tokenizer files.
  const double final_eval = evaluate(model, data, config, device);
  save_peft_adapter(model, lora, config.output_dir, config.base_model);
  AtomicFile::write_all((fs::path(config.output_dir) / kTrainingConfigFile).string(), saved_config);
  copy_tokenizer_files(config.tokenizer_dir(), config.output_dir, /*generation_config=*/false);
  progress.finish(fmt::format("done: {} steps, last loss {:.4f}{}; adapter in {}", state.step, summary.final_loss,
                              std::isnan(final_eval) ? "" : fmt::format(", eval loss {:.4f}", final_eval), config.output_dir));
  return summary;
}

}  // namespace qtune
