// qtune::TrainConfig: the YAML file a user writes (Axolotl's key names), read once into typed settings and
// validated key by key: unknown keys get a "did you mean" hint, wrong types name the key; `key=value`
// overrides from the command line. Each component's options are made from the settings in one place
// (trainer/config_options.cpp).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "adapters/lora.h"
#include "data/dataset_spec.h"
#include "data/packing.h"
#include "data/prepare_data.h"
#include "models/model_config.h"
#include "models/model_loader.h"

namespace qtune {

// A key that is true, false or auto (qtune decides: bf16 on a GPU, offload_base when the memory plan needs it).
enum class TriState { off, on, automatic };
const char* tri_state_name(TriState value);  // "false", "true", "auto": as written in the config

struct TrainConfig {
  std::string source;  // the YAML file, for messages; relative paths in it are relative to its folder

  // Model and adapter.
  std::string base_model;  // a folder in HF layout
  std::string tokenizer;   // tokenizer folder; empty = base_model
  bool load_in_4bit = true;
  std::string bnb_4bit_quant_type = "nf4";        // nf4 | fp4
  bool bnb_4bit_use_double_quant = true;          // QLoRA's double quantization of the absmax
  std::string bnb_4bit_compute_dtype = "bfloat16";
  int64_t bnb_4bit_blocksize = 64;
  std::string adapter = "qlora";  // lora | qlora
  int64_t lora_r = 16;
  double lora_alpha = 32;
  double lora_dropout = 0.05;
  std::vector<std::string> lora_target_modules;
  bool lora_target_linear = false;
  bool peft_use_rslora = false;
  bool peft_use_dora = false;
  std::string lora_init = "kaiming";  // kaiming (PEFT's default) | gaussian | pissa | pissa_niter_N | olora
  std::string lora_model_dir;         // start from this PEFT adapter (for DPO it is also the frozen reference)

  // Data.
  std::vector<DatasetSpec> datasets;
  std::string chat_template = "tokenizer_default";
  bool train_on_inputs = false;
  std::vector<std::string> roles_to_train = {"assistant"};
  std::string train_on_eos = "turn";
  int64_t sequence_len = 2048;
  bool sample_packing = false;
  bool pad_to_sequence_len = false;
  std::string overlong_samples = "truncate";  // truncate | drop
  double val_set_size = 0;
  bool shuffle_merged_datasets = true;
  std::string dataset_prepared_path;  // token cache folder; empty = <output_dir>/prepared
  int64_t dataset_processes = 0;      // tokenization threads; 0 = all cores
  int64_t seed = 42;

  // Optimization.
  int64_t micro_batch_size = 1;
  int64_t gradient_accumulation_steps = 1;
  double num_epochs = 1;
  int64_t max_steps = -1;
  double learning_rate = 2e-4;
  std::string lr_scheduler = "cosine";
  int64_t warmup_steps = 0;
  double warmup_ratio = 0;
  std::string optimizer = "adamw";
  double adam_beta1 = 0.9, adam_beta2 = 0.999, adam_epsilon = 1e-8;
  double cosine_min_lr_ratio = 0;
  double weight_decay = 0;
  double loraplus_lr_ratio = 0;        // LoRA+: lora_B (and 1-D tensors) learn at learning_rate × this; 0: off
  double loraplus_lr_embedding = 1e-6; // LoRA+ rate of adapted embeddings (qtune adapts none: no tensor uses it)
  double max_grad_norm = 1.0;
  double moe_aux_loss_coef = 0;        // LLaMA-Factory's key: > 0 adds an MoE's load-balancing loss with this weight
  TriState bf16 = TriState::automatic;  // auto: bf16 on a GPU, fp32 on the CPU; true on a CPU: bf16 there too
  bool gradient_checkpointing = false;
  bool activation_offloading = false;  // layer inputs wait in host memory until recomputed; turns checkpointing on
  int64_t gpu_memory_limit = 0;        // bytes the CUDA caching allocator may hold (0: no limit); "22GiB" in YAML
  TriState offload_base = TriState::automatic;  // auto: the memory plan streams the 4-bit layers when they do not fit
  bool skip_nonfinite_steps = false;  // skip (and log) a step whose loss or gradients are not finite
  std::string device = "auto";        // auto (CUDA when present) | cpu | cuda

  // Outputs.
  std::string output_dir = "./outputs";
  std::string resume_from_checkpoint;
  int64_t logging_steps = 1;
  int64_t save_steps = 0;
  int64_t save_total_limit = 0;  // keep at most this many checkpoints (0: all)
  int64_t eval_steps = 0;
  int64_t stop_after_steps = 0;  // act as if interrupted (SIGTERM) after this many steps: for resume tests
  std::vector<std::string> report_to;  // HF's key: "tensorboard" writes event files; empty or "none": nothing
  std::string logging_dir;             // TensorBoard's folder; empty = <output_dir>/runs (as HF's TrainingArguments)

  // Data parallelism (ranks from torchrun's environment or qtune train --nproc).
  std::string ddp_backend = "auto";  // auto (nccl on GPUs when built with it, else gloo) | nccl | gloo
  int64_t ddp_timeout = 1800;        // seconds a rank waits for the others before stopping with an error
  double ddp_bucket_cap_mb = 25;      // gradient buckets summed across ranks while the backward runs (as DDP's)

  // Preference training.
  std::string rl;  // empty (SFT) | dpo | ipo (= dpo with dpo_loss_type: ipo) | orpo | simpo
  double rl_beta = 0.1;                   // DPO/IPO β, SimPO β
  std::string dpo_loss_type = "sigmoid";  // sigmoid (DPO) | ipo | robust | hinge
  double dpo_label_smoothing = 0;         // ε of cDPO / robust DPO, in [0, 0.5)
  bool precompute_ref_log_probs = false;  // reference log-probs once before training instead of every step
  double simpo_gamma = 0.5;               // SimPO's target reward margin γ
  double cpo_alpha = 0;                   // SimPO: weight of an added NLL term on the chosen answers (CPO)
  double orpo_alpha = 0.1;                // ORPO's λ
  bool orpo_prompt_loss = true;           // ORPO's NLL over the prompt too (ORPO's code, TRL); false: the answer only
  bool disable_dropout = true;            // as TRL: no LoRA dropout in preference runs (policy and reference alike)

  // The file with its overrides applied, as YAML: saved as kTrainingConfigFile for people to read.
  std::string as_run_yaml;

  // Reads and validates `path`, then applies `overrides` ("key=value", value in YAML syntax).
  // Throws InputError naming the file and key.
  static TrainConfig load(const std::string& path, const std::vector<std::string>& overrides = {});
  // The same from an already converted document (tests); `where` names it.
  static TrainConfig from_json(const nlohmann::json& document, const std::string& where, const std::string& base_dir);

  // InputError naming the key when base_model, tokenizer or a dataset path does not exist, or when
  // output_dir (or dataset_prepared_path) cannot be created: run before any work.
  void check_paths() const;

  std::string tokenizer_dir() const { return tokenizer.empty() ? base_model : tokenizer; }
  bool reports_to_tensorboard() const;

  // Each component's options from the settings (trainer/config_options.cpp), the one place each is made.
  // How to load the base on `device`: the compute dtype (bf16), the load-time 4-bit quantization
  // (load_in_4bit, bnb_4bit_*), the decoder layers in host memory with offload_base: true.
  LoadOptions load_options(torch::Device device) const;
  at::ScalarType compute_dtype(torch::Device device) const;
  // New adapters (lora_*, peft_use_rslora, peft_use_dora), validated by validate_lora_options when loading.
  LoraOptions lora_options() const;
  // The data part, for prepare_data().
  DataConfig data_config() const;
  // How rows are packed and batched (sequence_len, sample_packing, overlong_samples, micro_batch_size, ...).
  PackingOptions packing_options() const;
};

// The training config as run (the user's YAML plus overrides), saved next to every adapter qtune writes
// for people to read; qtune reads the typed record of trainer/training_base.h instead.
inline constexpr const char* kTrainingConfigFile = "qtune_training.yaml";

// Checks sequence_len against the positions `model` (from `model_source`) can handle: InputError naming
// sequence_len and the limit beyond max_position_embeddings × the linear RoPE scaling factor; the text of
// a warning (nullopt when none) when it is above max_position_embeddings, which only RoPE scaling allows.
std::optional<std::string> check_sequence_len(const TrainConfig& config, const ModelConfig& model, const std::string& model_source);

// Bytes of a size written as "22GiB", "24GB", "500MiB", "1.5 GiB" or a plain number of bytes (GiB/MiB/KiB:
// powers of 2; GB/MB/KB: powers of 10). nullopt when the text is not such a size or not positive.
std::optional<int64_t> parse_byte_size(const std::string& text);
// The other way: "1.50 GiB", "312.00 MiB", "18 B" (powers of 2).
std::string format_byte_size(double bytes);

}  // namespace qtune
