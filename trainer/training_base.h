// The base an adapter trained on, recorded beside every adapter output and checkpoint so that merge,
// generate, resume (and a future export) rebuild the same frozen weights: which model, the 4-bit format
// it was quantized to, and the dtype the dequantized weights were rounded to for the matmuls.
//
// qtune_training_base.json:
//   {"format": "qtune-training-base", "version": 1, "base_model": "/models/Llama-3.2-1B",
//    "model": {"architecture": "LlamaForCausalLM", "hidden_size": 2048, "num_layers": 16, "vocab_size": 128256},
//    "quantize": null | {"type": "nf4", "blocksize": 64, "double_quant": true},
//    "compute_dtype": "bfloat16"}
// Outputs of earlier qtune versions have only qtune_training.yaml; their record is read from that.
#pragma once

#include <optional>
#include <string>

#include "models/bnb_format.h"
#include "models/model_config.h"
#include "models/model_loader.h"
#include "trainer/train_config.h"

namespace qtune {

inline constexpr const char* kTrainingBaseFile = "qtune_training_base.json";

// The base model of a run, from one read of its config.json: its shapes and, for a bitsandbytes 4-bit
// checkpoint, that quantization. Read once per run and passed to what needs it.
struct BaseModelInfo {
  std::string dir;
  ModelConfig config;
  std::optional<BnbConfig> bnb;
  static BaseModelInfo read(const std::string& dir);  // InputError naming config.json
};

// The 4-bit format of the run's frozen layers: a bnb-4bit checkpoint's own (loaded as it is), else
// load_in_4bit's bnb_4bit_* keys; nullopt for a 16-bit base.
std::optional<QuantizeOptions> base_quantization(const TrainConfig& config, const BaseModelInfo& base);

struct TrainingBase {
  std::string source;      // the file the record was read from; empty when made by this run or not found
  std::string base_model;  // the folder, as the run named it
  std::string architecture;  // "LlamaForCausalLM"; empty in records of earlier versions
  int64_t hidden_size = 0, num_layers = 0, vocab_size = 0;
  std::optional<QuantizeOptions> quantize;      // nullopt: a 16-bit base
  std::optional<at::ScalarType> compute_dtype;  // nullopt only in records of earlier versions without it
};

// This run's record.
TrainingBase training_base_of(const TrainConfig& config, const BaseModelInfo& base, at::ScalarType compute_dtype);

// Writes dir/qtune_training_base.json atomically.
void write_training_base(const std::string& dir, const TrainingBase& base);

// The record in `adapter_dir`: qtune_training_base.json, else (outputs of earlier versions) what
// qtune_training.yaml says, else an empty record (an adapter made elsewhere: nothing known). InputError
// naming the file when it is malformed or of another format version.
TrainingBase read_training_base(const std::string& adapter_dir);

// InputError (one line naming the checkpoint's record) when `checkpoint` and `run` differ in what the
// adapter depends on: the model's shape, the 4-bit format, the compute dtype. The folder's path alone may
// differ (a moved model). Fields an old record lacks are not compared, nor an empty record.
void check_same_training_base(const TrainingBase& checkpoint, const TrainingBase& run);

}  // namespace qtune
