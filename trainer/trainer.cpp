// The training run, top to bottom: the pieces of a run (struct Run), their setup (device and ranks, data,
// memory plan, model, optimizer, resume), one optimizer step, checkpoints, and the outputs.
#include "trainer/trainer.h"

#include <torch/cuda.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>

#include <fmt/format.h>

#include "adapters/lora.h"
#include "adapters/peft_format.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "models/model_files.h"
#include "report/report_html.h"
#include "trainer/checkpoint.h"
#include "trainer/device_memory.h"
#include "trainer/device_probe.h"
#include "trainer/distributed.h"
#include "trainer/gradient_reducer.h"
#include "trainer/lr_schedule.h"
#include "trainer/progress.h"
#include "trainer/run_record.h"
#include "trainer/training_task.h"

namespace qtune {

torch::Device pick_device(const TrainConfig& config) {
  if (config.device == "cpu") return torch::kCPU;
  if (config.device == "cuda" && !torch::cuda::is_available()) input_error("{}: key 'device' is cuda but no CUDA device is available", config.source);
  return torch::cuda::is_available() ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
}

MemoryPlan plan_training_memory(const TrainConfig& config, torch::Device device, const BaseModelInfo& base) {
  DeviceFacts facts;
  facts.name = device.str();
  facts.cuda = device.is_cuda();
  const at::ScalarType dtype = config.compute_dtype(device);
  facts.compute_bytes = static_cast<int>(c10::elementSize(dtype));
  facts.fused_attention = fused_attention_available(device);
  if (config.gpu_memory_limit > 0) {
    facts.budget_bytes = config.gpu_memory_limit;
    facts.budget_source = "gpu_memory_limit";
  } else if (device.is_cuda()) {
    facts.budget_bytes = device_total_memory_bytes(device);
    facts.budget_source = "the GPU's memory";
  }
  facts.matmul_flops_per_s = measure_matmul_flops(device, dtype);
  facts.host_to_device_bytes_per_s = measure_host_to_device_bandwidth(device);
  facts.host_available_bytes = available_host_memory_bytes();
  return plan_memory(base.config, base_quantization(config, base), config, facts);  // a bnb-4bit base: as it is
}

MemoryPlan plan_training_memory(const TrainConfig& config, torch::Device device) {
  return plan_training_memory(config, device, BaseModelInfo::read(config.base_model));
}

TrainingModel load_training_model(const TrainConfig& config, torch::Device device) {
  // 4-bit (or 16-bit) frozen base; with offload_base its layers are loaded into host memory, never whole on the device.
  const LoadOptions load = config.load_options(device);
  TrainingModel m{load_causal_lm(config.base_model, load), {}, load.dtype};
  // LoRA: new adapters, or the ones in lora_model_dir to continue from (for DPO also frozen as the reference).
  m.lora = config.lora_model_dir.empty() ? config.lora_options() : load_peft_adapter(m.model, config.lora_model_dir);
  if (config.lora_model_dir.empty()) {
    check_expert_lora_dropout(m.model->config(), m.lora);
    inject_lora(m.model, m.lora, static_cast<uint64_t>(config.seed));
  }
  else if (config.rl == "dpo") keep_reference_copies(m.model);
  if (!config.rl.empty() && config.disable_dropout)  // the policy's log-probs must be comparable with the reference's
    for (auto& [name, linear] : m.model->projections())
      if (LoraAdapterImpl* adapter = lora_of(linear)) adapter->set_dropout(0);
  m.model->to(device);
  m.model->set_gradient_checkpointing(config.gradient_checkpointing);  // on whenever offloading is (the config's check, the plan)
  m.model->set_activation_offloading(config.activation_offloading);
  if (load.layers_on_host) m.model->stream_layers_from_host();  // a 4-bit base: plan_memory refuses others
  m.model->train();
  return m;
}

std::vector<AdamWParameter> optimizer_parameters(const std::vector<std::pair<std::string, torch::Tensor>>& trained, const TrainConfig& config) {
  std::vector<AdamWParameter> parameters;
  for (const auto& [name, tensor] : trained) {
    AdamWParameter p{name, tensor, 1.0, config.weight_decay};
    const bool group_b = name.find("lora_B") != std::string::npos || tensor.dim() == 1;
    if (config.loraplus_lr_ratio > 0 && group_b) {
      p.lr_factor = config.loraplus_lr_ratio;
      if (name.find("bias") != std::string::npos) p.weight_decay = 0;  // PEFT's groupB_no_decay (qtune trains no bias)
    }
    parameters.push_back(p);
  }
  return parameters;
}

namespace {

namespace fs = std::filesystem;

// The pieces of one run: made by setup_run, used by the loop.
struct Run {
  TrainConfig config;  // as the memory plan runs it
  torch::Device device = torch::kCPU;
  std::unique_ptr<Distributed> group;
  Distributed* ranks = nullptr;  // nullptr with one rank
  PreparedData data;
  std::unique_ptr<TrainingTask> task;  // the recipe: SFT or preference training
  CausalLM model{nullptr};
  LoraOptions lora;
  TrainingBase base;  // the record written beside checkpoints and outputs
  std::vector<std::pair<std::string, torch::Tensor>> parameters;  // the adapter's trained tensors
  std::unique_ptr<GradientReducer> reducer;
  std::unique_ptr<AdamW> optimizer;
  LrSchedule schedule;
  int64_t total_steps = 0;  // optimizer steps of the run
  int64_t budget = 0;       // micro-batches of the run (with max_steps, enough for them, also after resuming on another world size)
  TrainerState state;
  MemoryPlan plan;
  std::optional<Progress> progress;  // rank 0 alone reports, and writes checkpoints and outputs
  std::optional<RunRecord> record;   // rank 0's qtune_run.json
};

// SIGINT and SIGTERM, while the loop runs, ask it to checkpoint and stop.
std::atomic<bool> stop_requested{false};
extern "C" void on_stop_signal(int) { stop_requested = true; }

class StopSignals {
 public:
  StopSignals() {
    stop_requested = false;
    previous_int_ = std::signal(SIGINT, on_stop_signal);
    previous_term_ = std::signal(SIGTERM, on_stop_signal);
  }
  ~StopSignals() {
    std::signal(SIGINT, previous_int_);
    std::signal(SIGTERM, previous_term_);
  }

 private:
  void (*previous_int_)(int);
  void (*previous_term_)(int);
};

// Layer copies outside the steps (the preparation, evaluations) are not reported as any step's.
void forget_layer_copies(CausalLM& model) {
  if (LayerStream* stream = model->layer_stream()) stream->take_stats();
}

// This rank's device, the GPU memory cap (before anything is loaded, so that loading counts too), and the
// group of ranks: NCCL sums GPU gradients where the build has it (ddp_backend auto or nccl), Gloo the rest.
void start_ranks(Run& run, const TrainConfig& requested) {
  const LaunchEnvironment launch = launch_environment();
  run.device = rank_device(launch, pick_device(requested));
  if (requested.gpu_memory_limit > 0) {
    if (!run.device.is_cuda())
      input_error("{}: key 'gpu_memory_limit' needs a CUDA device (this run is on {}); remove the key or train on a GPU", requested.source,
                  run.device.str());
    limit_device_memory(run.device, requested.gpu_memory_limit);
  }
  const bool nccl = run.device.is_cuda() && (requested.ddp_backend == "nccl" || (requested.ddp_backend == "auto" && nccl_available()));
  if (requested.ddp_backend == "nccl" && !(run.device.is_cuda() && nccl_available()))
    input_error("{}: ddp_backend: nccl needs training on GPUs and a CUDA build of qtune with NCCL; use auto or gloo", requested.source);
  run.group = std::make_unique<Distributed>(launch, std::chrono::seconds(requested.ddp_timeout), nccl);
  run.ranks = run.group->world_size() > 1 ? run.group.get() : nullptr;
}

void create_output_dir(const TrainConfig& config) {
  std::error_code error;
  fs::create_directories(config.output_dir, error);
  if (error) input_error("{}: key 'output_dir': cannot create the folder {}: {}; choose another output_dir", config.source, config.output_dir, error.message());
}

// Data first: its errors are the most common and the cheapest to report (rank 0 fills the token cache, the
// others then read it). Then the memory plan, before the model is loaded: under a budget it may switch on
// checkpointing and offloading or split micro-batches, and the run goes by the planned config.
void prepare_data_and_plan(Run& run, const TrainConfig& requested, const BaseModelInfo& base) {
  Distributed& group = *run.group;
  if (!group.is_main()) group.barrier();
  run.data = prepare_data(requested.data_config(), requested.tokenizer_dir());
  if (group.is_main()) group.barrier();
  run.plan = plan_training_memory(requested, run.device, base);
  if (group.is_main()) std::cout << run.plan.describe();
  run.config = planned_config(requested, run.plan);
  run.task = run.config.rl.empty() ? make_sft_task(run.data, run.config, run.device, run.ranks)
                                   : make_preference_task(run.data, run.config, run.device, run.ranks);
}

// The model with its adapters (initialized from the seed: equal on every rank), the gradient sums across
// ranks, and AdamW with LoRA+'s learning rates.
void load_model_and_optimizer(Run& run) {
  TrainingModel trained = load_training_model(run.config, run.device);
  torch::manual_seed(static_cast<uint64_t>(run.config.seed + run.group->rank()));  // dropout masks differ between ranks
  run.model = trained.model;
  run.lora = trained.lora;
  run.parameters = lora_state(run.model);
  // The backward adds LoRA gradients into sums that go across ranks in buckets while it runs. On the CPU
  // the sums are float64: N ranks × b, 1 rank × N·b and any gradient accumulation then give the same
  // float32 gradients (GPUs add in float32: float64 is slow there, and bf16 compute rounds far more).
  run.reducer = std::make_unique<GradientReducer>(lora_adapters(run.model), run.device.is_cpu() ? torch::kDouble : torch::kFloat, run.ranks,
                                                  static_cast<int64_t>(run.config.ddp_bucket_cap_mb * 1024 * 1024));
  const TrainConfig& c = run.config;
  run.optimizer = std::make_unique<AdamW>(optimizer_parameters(run.parameters, c), AdamWOptions{c.adam_beta1, c.adam_beta2, c.adam_epsilon});
}

// The schedule over the whole run: its steps and micro-batches, warmup and decay.
void schedule_run(Run& run) {
  const TrainConfig& c = run.config;
  const int64_t accumulation = c.gradient_accumulation_steps;
  const auto per_epoch = static_cast<double>(run.task->batches_per_epoch());
  run.budget = c.max_steps > 0 ? c.max_steps * accumulation : static_cast<int64_t>(std::ceil(c.num_epochs * per_epoch));
  run.total_steps = c.max_steps > 0 ? c.max_steps : (run.budget + accumulation - 1) / accumulation;
  run.schedule = LrSchedule{c.lr_scheduler, warmup_steps_for(c.warmup_steps, c.warmup_ratio, run.total_steps), run.total_steps, c.cosine_min_lr_ratio};
}

CheckpointContents checkpoint_contents(Run& run) { return {run.model, run.lora, *run.optimizer, run.base, run.config.as_run_yaml}; }

// A checkpoint of another world size, or of another micro-batch split by the memory plan (another
// gpu_memory_limit or GPU): its micro-batches had another size, so continue at the same fraction of the
// epoch. Close to, but not, the run that never stopped (other batches, other dropout masks).
void continue_on_another_layout(TrainerState& state, int world_size, std::size_t per_epoch, const std::string& checkpoint, bool report) {
  if (state.world_size == world_size && (state.micro_batches_per_epoch <= 0 || state.micro_batches_per_epoch == static_cast<int64_t>(per_epoch)))
    return;
  const int64_t before = state.micro_batch;
  if (state.micro_batches_per_epoch > 0)
    state.micro_batch = static_cast<int64_t>(std::llround(static_cast<double>(before) / static_cast<double>(state.micro_batches_per_epoch) *
                                                          static_cast<double>(per_epoch)));
  if (report)
    fmt::print(stderr,
               "note: {} was written {}: continuing at the same point of the epoch (global micro-batch {} "
               "instead of {}); data order and dropout masks differ from an uninterrupted run, so the result is close, not identical\n",
               checkpoint,
               state.world_size != world_size ? fmt::format("by {} rank(s), this run has {}", state.world_size, world_size)
                                              : fmt::format("with {} micro-batches per epoch, this run has {} (micro_batch_size changed, or the memory plan split it)",
                                                            state.micro_batches_per_epoch, per_epoch),
               state.micro_batch, before);
}

// The checkpoint resume_from_checkpoint names (auto: the latest in output_dir), or "" to start afresh.
std::string checkpoint_to_resume(const TrainConfig& c) {
  if (c.resume_from_checkpoint.empty()) return "";
  return c.resume_from_checkpoint == "auto" ? latest_checkpoint(c.output_dir) : c.resume_from_checkpoint;
}

// The record of the base this run trains on; a checkpoint to resume must have trained on the same (checked
// before any work).
void record_base(Run& run, const TrainConfig& requested, const BaseModelInfo& base) {
  run.base = training_base_of(requested, base, requested.compute_dtype(run.device));
  const std::string checkpoint = checkpoint_to_resume(requested);
  if (!checkpoint.empty()) check_same_training_base(read_training_base(checkpoint), run.base);
}

// Resume: the checkpoint's adapter, optimizer moments, RNG and data position.
void resume(Run& run) {
  const TrainConfig& c = run.config;
  const std::string dir = checkpoint_to_resume(c);
  if (!dir.empty()) {
    run.state = load_checkpoint(dir, checkpoint_contents(run), run.group->rank());
    continue_on_another_layout(run.state, run.group->world_size(), run.task->batches_per_epoch(), dir, run.group->is_main());
    if (c.max_steps > 0) run.budget = run.state.micro_batch + (run.total_steps - run.state.step) * c.gradient_accumulation_steps;
  }
  run.state.world_size = run.group->world_size();
  run.state.micro_batches_per_epoch = static_cast<int64_t>(run.task->batches_per_epoch());
}

void setup_run(Run& run, const TrainConfig& requested, const BaseModelInfo& base) {
  start_ranks(run, requested);
  record_base(run, requested, base);
  create_output_dir(requested);
  prepare_data_and_plan(run, requested, base);
  load_model_and_optimizer(run);
  schedule_run(run);
  resume(run);
  run.task->prepare(run.model);
  forget_layer_copies(run.model);
  if (!run.group->is_main()) return;
  const std::size_t adapted = lora_adapters(run.model).size();
  run.progress.emplace(run.config, run.total_steps, run.state.step, adapted, run.task->row_plan().report, run.device);
  run.record.emplace(RunStart{run.config, run.plan, run.data, run.task->row_plan(), run.device, run.group->world_size(), run.total_steps,
                              run.state.step, adapted});
}

// The adapter's gradient norm, summed on the device and read once: one host sync per step, not one per tensor.
double gradient_norm(const Run& run) {
  torch::Tensor squares = torch::zeros({}, torch::TensorOptions().dtype(torch::kDouble).device(run.device));
  for (const auto& [name, p] : run.parameters)
    if (p.grad().defined()) squares += p.grad().to(torch::kFloat).pow(2).sum().to(torch::kDouble);
  return std::sqrt(squares.item<double>());
}

void clip_gradients(Run& run, double grad_norm) {
  const double max_norm = run.config.max_grad_norm;
  if (!(max_norm > 0 && grad_norm > max_norm)) return;
  for (auto& [name, p] : run.parameters)
    if (p.grad().defined()) p.mutable_grad().mul_(max_norm / (grad_norm + 1e-6));
}

// offload_base: what the streaming moved and hid this step.
void add_layer_stream_metrics(CausalLM& model, Metrics& metrics) {
  LayerStream* stream = model->layer_stream();
  if (stream == nullptr) return;
  const LayerStreamStats copies = stream->take_stats();
  metrics.emplace_back("offload_h2d_bytes", static_cast<double>(copies.bytes));
  metrics.emplace_back("offload_h2d_gb_per_s", copies.copy_seconds > 0 ? static_cast<double>(copies.bytes) / copies.copy_seconds / 1e9 : 0.0);
  metrics.emplace_back("offload_copy_hidden", copies.hidden_fraction());
}

// One optimizer step: its micro-batches' gradients (normalized over all of them by the recipe) summed
// across ranks, the non-finite check, clipping, AdamW at the scheduled rate; evaluation when it is due.
StepRecord train_step(Run& run) {
  const TrainConfig& c = run.config;
  const int64_t count = std::min(c.gradient_accumulation_steps, run.budget - run.state.micro_batch);
  const auto start = std::chrono::steady_clock::now();
  StepResult result = run.task->accumulate(run.model, run.state.micro_batch, count, [&] { run.reducer->last_backward_begins(); });
  run.reducer->finish();  // .grad: the step's gradients summed over the ranks
  const double grad_norm = gradient_norm(run);
  const bool finite = std::isfinite(result.loss) && std::isfinite(grad_norm);
  if (!finite && !c.skip_nonfinite_steps)
    input_error("step {}: the {} is not finite ({}); lower learning_rate, check the data, or set skip_nonfinite_steps: true", run.state.step + 1,
                std::isfinite(result.loss) ? "gradient norm" : "loss", std::isfinite(result.loss) ? grad_norm : result.loss);
  const double lr = c.learning_rate * run.schedule.factor(run.state.step);
  if (finite) {
    clip_gradients(run, grad_norm);
    run.optimizer->step(lr);
  }
  run.optimizer->zero_grad();
  if (run.device.is_cuda()) torch::cuda::synchronize();  // the step's kernels are done: its time is all of it
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  run.state.step += 1;
  run.state.micro_batch += count;
  run.state.last_loss = result.loss;
  add_layer_stream_metrics(run.model, result.metrics);
  StepRecord record{run.state.step, static_cast<double>(run.state.micro_batch) / static_cast<double>(run.task->batches_per_epoch()), result.loss, lr,
                    grad_norm, result.trained_tokens, result.tokens, !finite, std::move(result.metrics), {}, seconds};
  if (c.eval_steps > 0 && run.state.step % c.eval_steps == 0) {
    record.eval = run.task->evaluate(run.model);
    forget_layer_copies(run.model);
  }
  return record;
}

// A signal to any rank, or stop_after_steps, stops them all (a collective: every rank asks each step).
bool stop_now(Run& run) {
  std::vector<double> stops = {stop_requested ? 1.0 : 0.0};
  run.group->all_reduce_sum(stops);
  return stops[0] > 0 || (run.config.stop_after_steps > 0 && run.state.step == run.config.stop_after_steps);
}

// Every rank's generator states, in rank order (a collective: all ranks call it at the same step).
std::vector<RankRng> all_ranks_rng(Distributed& group, const torch::Device& device) {
  const RankRng mine = current_rng(device);
  const std::vector<torch::Tensor> cpu = group.all_gather(mine.cpu);
  const std::vector<torch::Tensor> cuda = mine.cuda.defined() ? group.all_gather(mine.cuda) : std::vector<torch::Tensor>(cpu.size());
  std::vector<RankRng> ranks;
  for (std::size_t r = 0; r < cpu.size(); ++r) ranks.push_back({cpu[r], cuda[r]});
  return ranks;
}

// Every save_steps and at a stop: rank 0 writes the checkpoint with every rank's RNG.
void maybe_checkpoint(Run& run, bool stop) {
  const TrainConfig& c = run.config;
  if (!((c.save_steps > 0 && run.state.step % c.save_steps == 0) || stop)) return;
  const std::vector<RankRng> rng = all_ranks_rng(*run.group, run.device);
  if (!run.group->is_main()) return;
  save_checkpoint(c.output_dir, checkpoint_contents(run), run.state, rng);
  prune_checkpoints(c.output_dir, c.save_total_limit);
}

// The adapter in PEFT format, the training base record, the config as run, the tokenizer files.
void write_outputs(Run& run) {
  const TrainConfig& c = run.config;
  save_peft_adapter(run.model, run.lora, c.output_dir, c.base_model);
  write_training_base(c.output_dir, run.base);
  AtomicFile::write_all((fs::path(c.output_dir) / kTrainingConfigFile).string(), c.as_run_yaml);
  copy_tokenizer_files(c.tokenizer_dir(), c.output_dir, /*generation_config=*/false);
}

// output_dir/report.html; "; report <path>" for the last line, or "" with a warning when it could not be
// written (the run's results are already saved: a report is not worth failing the run for).
std::string write_run_report(const std::string& output_dir) {
  const std::string path = (fs::path(output_dir) / kReportFile).string();
  try {
    write_report({output_dir}, path);
    return "; report " + path;
  } catch (const InputError& e) {
    std::cerr << "warning: no report: " << e.what() << "\n";
    return "";
  }
}

// After the loop: the final evaluation (every rank takes a share), then rank 0 writes the outputs and reports.
TrainSummary finish_run(Run& run, TrainSummary summary) {
  summary.steps = run.state.step;
  const Metrics final_eval = summary.interrupted ? Metrics{} : run.task->evaluate(run.model);
  if (!run.group->is_main()) return summary;
  run.record->finish(summary.interrupted ? "stopped" : "done", run.state.step, summary.final_loss, final_eval);
  if (!summary.interrupted) write_outputs(run);
  const std::string report = write_run_report(run.config.output_dir);
  if (summary.interrupted) {
    run.progress->finish(fmt::format("stopped after step {}; checkpoint {}. Resume with: qtune train {} resume_from_checkpoint=auto{}", run.state.step,
                                     summary.checkpoint, run.config.source, report));
    return summary;
  }
  const double eval_loss = metric_or_nan(final_eval, "eval_loss"), eval_accuracy = metric_or_nan(final_eval, "eval_rewards/accuracies");
  run.progress->finish(fmt::format("done: {} steps, last loss {:.4f}{}; adapter in {}{}", run.state.step, summary.final_loss,
                                   std::isnan(eval_loss) ? "" : fmt::format(", eval loss {:.4f}", eval_loss) +
                                       (std::isnan(eval_accuracy) ? "" : fmt::format(", eval rewards/accuracies {:.4f}", eval_accuracy)),
                                   run.config.output_dir, report));
  return summary;
}

}  // namespace

TrainSummary run_training(const TrainConfig& config, const BaseModelInfo& base) {
  Run run;
  setup_run(run, config, base);
  TrainSummary summary;
  {
    const StopSignals signals;
    while (run.state.step < run.total_steps && run.state.micro_batch < run.budget) {
      const StepRecord record = train_step(run);
      summary.final_loss = record.loss;
      if (run.progress) run.progress->step(record);
      const bool stop = stop_now(run);
      maybe_checkpoint(run, stop);
      if (stop) {
        summary.interrupted = true;
        summary.checkpoint = checkpoint_dir(run.config.output_dir, run.state.step);
        break;
      }
    }
  }
  return finish_run(run, summary);
}

}  // namespace qtune
