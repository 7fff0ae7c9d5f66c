// The training run, top to bottom.
#include "trainer/trainer.h"

#include <torch/cuda.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <optional>

#include <fmt/format.h>

#include "adapters/lora.h"
#include "adapters/peft_format.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/json_file.h"
#include "models/model_files.h"
#include "trainer/adamw.h"
#include "trainer/checkpoint.h"
#include "trainer/device_memory.h"
#include "trainer/device_probe.h"
#include "trainer/distributed.h"
#include "trainer/gradient_reducer.h"
#include "trainer/lr_schedule.h"
#include "trainer/progress.h"
#include "trainer/training_task.h"

namespace qtune {
namespace {

namespace fs = std::filesystem;

std::atomic<bool> stop_requested{false};
extern "C" void on_stop_signal(int) { stop_requested = true; }

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

}  // namespace

torch::Device pick_device(const TrainConfig& config) {
  if (config.device == "cpu") return torch::kCPU;
  if (config.device == "cuda" && !torch::cuda::is_available()) input_error("{}: key 'device' is cuda but no CUDA device is available", config.source);
  return torch::cuda::is_available() ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
}

namespace {
// bf16: auto computes in bf16 on a GPU and in fp32 on the CPU; true in bf16 on both (fast on CPUs with
// AVX-512 BF16 / AMX, as HF's bf16 autocast on a CPU); false in fp32.
at::ScalarType compute_dtype(const TrainConfig& config, torch::Device device) {
  const bool bf16 = config.bf16 == "true" || (config.bf16 == "auto" && device.is_cuda());
  return bf16 ? torch::kBFloat16 : torch::kFloat;
}
}  // namespace

MemoryPlan plan_training_memory(const TrainConfig& config, torch::Device device) {
  const ModelConfig model = ModelConfig::load(config.base_model);
  std::optional<QuantizeOptions> four_bit = config.load_options().quantize;
  const std::string config_json = (fs::path(config.base_model) / "config.json").string();
  if (std::optional<BnbConfig> bnb = read_bnb_config(read_json_file(config_json), config_json))  // pre-quantized: loaded as it is
    four_bit = QuantizeOptions{bnb->type, 64, bnb->double_quant};
  DeviceFacts facts;
  facts.name = device.str();
  facts.cuda = device.is_cuda();
  const at::ScalarType dtype = compute_dtype(config, device);
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
  return plan_memory(model, four_bit, config, facts);
}

TrainingModel load_training_model(const TrainConfig& config, torch::Device device) {
  // 4-bit (or 16-bit) frozen base; with offload_base its layers are loaded into host memory, never whole on the device.
  LoadOptions load = config.load_options();
  load.device = device;
  load.dtype = compute_dtype(config, device);
  load.layers_on_host = config.offload_base == "true";
  TrainingModel m{load_causal_lm(config.base_model, load), {}, load.dtype};
  // LoRA: new adapters, or the ones in lora_model_dir to continue from (for DPO also frozen as the reference).
  m.lora = config.lora_model_dir.empty() ? lora_options(config) : load_peft_adapter(m.model, config.lora_model_dir);
  if (config.lora_model_dir.empty()) inject_lora(m.model, m.lora, static_cast<uint64_t>(config.seed));
  else if (config.rl == "dpo") keep_reference_copies(m.model);
  if (!config.rl.empty() && config.disable_dropout)  // the policy's log-probs must be comparable with the reference's
    for (auto& [name, linear] : m.model->projections())
      if (LoraAdapterImpl* adapter = lora_of(linear)) adapter->set_dropout(0);
  m.model->to(device);
  m.model->set_gradient_checkpointing(config.gradient_checkpointing);  // on whenever offloading is (the config's check, the plan)
  m.model->set_activation_offloading(config.activation_offloading);
  if (config.offload_base == "true") m.model->stream_layers_from_host();  // a 4-bit base: plan_memory refuses others
  m.model->train();
  return m;
}

namespace {

// Every rank's generator states, in rank order (a collective: all ranks call it at the same step).
std::vector<RankRng> all_ranks_rng(Distributed& group, const torch::Device& device) {
  const RankRng mine = current_rng(device);
  const std::vector<torch::Tensor> cpu = group.all_gather(mine.cpu);
  const std::vector<torch::Tensor> cuda = mine.cuda.defined() ? group.all_gather(mine.cuda) : std::vector<torch::Tensor>(cpu.size());
  std::vector<RankRng> ranks;
  for (std::size_t r = 0; r < cpu.size(); ++r) ranks.push_back({cpu[r], cuda[r]});
  return ranks;
}

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

}  // namespace

TrainSummary run_training(const TrainConfig& requested, const std::string& config_text) {
  const LaunchEnvironment launch = launch_environment();
  const torch::Device device = rank_device(launch, pick_device(requested));
  if (requested.gpu_memory_limit > 0) {  // before anything is loaded, so that loading counts too
    if (!device.is_cuda())
      input_error("{}: key 'gpu_memory_limit' needs a CUDA device (this run is on {}); remove the key or train on a GPU", requested.source, device.str());
    limit_device_memory(device, requested.gpu_memory_limit);
  }
  // NCCL sums GPU gradients where the build has it (ddp_backend auto or nccl); Gloo everything else.
  const bool nccl = device.is_cuda() && (requested.ddp_backend == "nccl" || (requested.ddp_backend == "auto" && nccl_available()));
  if (requested.ddp_backend == "nccl" && !(device.is_cuda() && nccl_available()))
    input_error("{}: ddp_backend: nccl needs training on GPUs and a CUDA build of qtune with NCCL; use auto or gloo", requested.source);
  Distributed group(launch, std::chrono::seconds(requested.ddp_timeout), nccl);
  Distributed* ranks = group.world_size() > 1 ? &group : nullptr;

  // Data first: its errors are the most common and the cheapest to report. Rank 0 fills the token cache,
  // the others then read it.
  if (!group.is_main()) group.barrier();
  PreparedData data = prepare_data(requested.data_config(), requested.tokenizer_dir());
  if (group.is_main()) group.barrier();

  // The memory plan, before the model is loaded: under a budget it may switch on checkpointing and
  // offloading or split micro-batches; the run then goes by the planned config.
  const MemoryPlan plan = plan_training_memory(requested, device);
  if (group.is_main()) std::cout << plan.describe();
  const TrainConfig config = planned_config(requested, plan);
  std::unique_ptr<TrainingTask> task =
      config.rl.empty() ? make_sft_task(data, config, device, ranks) : make_preference_task(data, config, device, ranks);
  TrainingModel trained = load_training_model(config, device);  // LoRA initialized from the seed: equal on every rank
  torch::manual_seed(static_cast<uint64_t>(config.seed + group.rank()));  // dropout masks differ between ranks
  CausalLM& model = trained.model;
  const LoraOptions& lora = trained.lora;
  const std::size_t adapted = lora_state(model).size() / 2;
  std::vector<std::pair<std::string, torch::Tensor>> parameters = lora_state(model);
  // The backward adds LoRA gradients into sums that go across ranks in buckets while it runs. On the CPU
  // the sums are float64: N ranks × b, 1 rank × N·b and any gradient accumulation then give the same
  // float32 gradients (GPUs add in float32: float64 is slow there, and bf16 compute rounds far more).
  GradientReducer reducer(use_gradient_sums(model, device.is_cpu() ? torch::kDouble : torch::kFloat), ranks,
                          static_cast<int64_t>(config.ddp_bucket_cap_mb * 1024 * 1024));
  AdamW optimizer(parameters, {config.adam_beta1, config.adam_beta2, config.adam_epsilon, config.weight_decay});

  // Schedule over the whole run.
  const int64_t accumulation = config.gradient_accumulation_steps;
  const auto per_epoch = static_cast<double>(task->batches_per_epoch());
  // Micro-batches of the run (with max_steps, enough for them, also after resuming on another world size).
  int64_t budget = config.max_steps > 0 ? config.max_steps * accumulation : static_cast<int64_t>(std::ceil(config.num_epochs * per_epoch));
  const int64_t total_steps = config.max_steps > 0 ? config.max_steps : (budget + accumulation - 1) / accumulation;
  LrSchedule schedule{config.lr_scheduler, warmup_steps_for(config.warmup_steps, config.warmup_ratio, total_steps), total_steps, config.cosine_min_lr_ratio};

  fs::create_directories(config.output_dir);
  // Saved with every adapter: the config, plus the compute dtype this run used (merge and generate
  // rebuild the same dequantized weights from it).
  const std::string saved_config = config_text + "\nbnb_4bit_compute_dtype: " +
                                   (trained.dtype == torch::kBFloat16 ? "bfloat16" : trained.dtype == torch::kHalf ? "float16" : "float32") + "\n";
  CheckpointContents contents{model, lora, optimizer, config.base_model, saved_config};
  TrainerState state;
  if (!config.resume_from_checkpoint.empty()) {
    const std::string dir = config.resume_from_checkpoint == "auto" ? latest_checkpoint(config.output_dir) : config.resume_from_checkpoint;
    if (!dir.empty()) {
      state = load_checkpoint(dir, contents, group.rank());
      continue_on_another_layout(state, group.world_size(), task->batches_per_epoch(), dir, group.is_main());
      if (config.max_steps > 0) budget = state.micro_batch + (total_steps - state.step) * accumulation;
    } else if (config.resume_from_checkpoint != "auto") {
      input_error("{}: no checkpoint to resume from", config.resume_from_checkpoint);
    }
  }
  state.world_size = group.world_size();
  state.micro_batches_per_epoch = static_cast<int64_t>(task->batches_per_epoch());

  task->prepare(model);
  // Layer copies outside the steps (the preparation, evaluations) are not reported as any step's.
  auto forget_layer_copies = [&model] {
    if (LayerStream* stream = model->layer_stream()) stream->take_stats();
  };
  forget_layer_copies();
  std::optional<Progress> progress;  // rank 0 alone reports, and writes checkpoints and outputs
  if (group.is_main()) progress.emplace(config, total_steps, state.step, adapted, task->packing(), device);
  stop_requested = false;
  auto previous_int = std::signal(SIGINT, on_stop_signal);
  auto previous_term = std::signal(SIGTERM, on_stop_signal);
  TrainSummary summary;

  while (state.step < total_steps && state.micro_batch < budget) {
    // One optimizer step: its micro-batches' gradients, normalized over all of them by the recipe.
    const int64_t count = std::min(accumulation, budget - state.micro_batch);
    const auto step_start = std::chrono::steady_clock::now();
    StepResult result = task->accumulate(model, state.micro_batch, count, [&] { reducer.last_backward_begins(); });
    reducer.finish();  // .grad: the step's gradients summed over the ranks
    const double step_loss = result.loss;
    // Gradient norm over the adapter, clipping, and the non-finite check.
    // Summed on the device and read once: one host sync per step, not one per adapter tensor.
    torch::Tensor squares = torch::zeros({}, torch::TensorOptions().dtype(torch::kDouble).device(device));
    for (auto& [name, p] : parameters)
      if (p.grad().defined()) squares += p.grad().to(torch::kFloat).pow(2).sum().to(torch::kDouble);
    const double grad_norm = std::sqrt(squares.item<double>());
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
    if (device.is_cuda()) torch::cuda::synchronize();  // the step's kernels are done: its time is all of it
    const double step_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - step_start).count();
    state.step += 1;
    state.micro_batch += count;
    state.last_loss = step_loss;
    summary.final_loss = step_loss;

    if (LayerStream* stream = model->layer_stream()) {  // offload_base: what the streaming moved and hid this step
      const LayerStreamStats copies = stream->take_stats();
      result.metrics.emplace_back("offload_h2d_bytes", static_cast<double>(copies.bytes));
      result.metrics.emplace_back("offload_h2d_gb_per_s", copies.copy_seconds > 0 ? static_cast<double>(copies.bytes) / copies.copy_seconds / 1e9 : 0.0);
      result.metrics.emplace_back("offload_copy_hidden", copies.hidden_fraction());
    }
    StepRecord record{state.step, static_cast<double>(state.micro_batch) / per_epoch, step_loss, lr, grad_norm,
                      result.trained_tokens, result.tokens, !finite, std::move(result.metrics), {}, step_seconds};
    if (config.eval_steps > 0 && state.step % config.eval_steps == 0) {
      record.eval = task->evaluate(model);
      forget_layer_copies();
    }
    if (progress) progress->step(record);

    std::vector<double> stops = {stop_requested ? 1.0 : 0.0};  // a signal to any rank stops them all
    group.all_reduce_sum(stops);
    const bool stop = stops[0] > 0 || (config.stop_after_steps > 0 && state.step == config.stop_after_steps);
    if ((config.save_steps > 0 && state.step % config.save_steps == 0) || stop) {
      const std::string path = checkpoint_dir(config.output_dir, state.step);
      const std::vector<RankRng> rng = all_ranks_rng(group, device);
      if (group.is_main()) {
        save_checkpoint(config.output_dir, contents, state, rng);
        prune_checkpoints(config.output_dir, config.save_total_limit);
      }
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
  const Metrics final_eval = summary.interrupted ? Metrics{} : task->evaluate(model);  // every rank takes a share
  if (!group.is_main()) return summary;
  if (summary.interrupted) {
    progress->finish(fmt::format("stopped after step {}; checkpoint {}. Resume with: qtune train {} resume_from_checkpoint=auto", state.step,
                                summary.checkpoint, config.source));
    return summary;
  }

  // Outputs: the adapter in PEFT format, the resolved config, the tokenizer files.
  const double eval_loss = metric_or_nan(final_eval, "eval_loss"), eval_accuracy = metric_or_nan(final_eval, "eval_rewards/accuracies");
  save_peft_adapter(model, lora, config.output_dir, config.base_model);
  AtomicFile::write_all((fs::path(config.output_dir) / kTrainingConfigFile).string(), saved_config);
  copy_tokenizer_files(config.tokenizer_dir(), config.output_dir, /*generation_config=*/false);
  progress->finish(fmt::format("done: {} steps, last loss {:.4f}{}; adapter in {}", state.step, summary.final_loss,
                              std::isnan(eval_loss) ? "" : fmt::format(", eval loss {:.4f}", eval_loss) +
                                  (std::isnan(eval_accuracy) ? "" : fmt::format(", eval rewards/accuracies {:.4f}", eval_accuracy)),
                              config.output_dir));
  return summary;
}

}  // namespace qtune
