// write_quantized_model(): a checkpoint folder -> a bitsandbytes-format 4-bit checkpoint (decoder
// projections in NF4/FP4, everything else as stored), loadable by HF transformers + bitsandbytes and by
// qtune. A checkpoint that is already 4-bit is re-written as it is (byte-identical output).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "models/model_loader.h"

namespace qtune {

struct QuantizeModelOptions {
  std::string model_dir, out_dir;
  QuantizeOptions quantize;
  std::string compute_dtype = "bfloat16";  // recorded as bnb_4bit_compute_dtype
  uint64_t max_shard_bytes = 5ull << 30;
  bool force = false;
};

struct QuantizeModelReport {
  BnbConfig format;         // what the output holds (the input's own format when it was already 4-bit)
  int64_t blocksize = 0;
  int64_t quantized_parameters = 0, other_parameters = 0;
  int64_t quantized_bytes = 0, other_bytes = 0;  // storage of each part in the output
};

QuantizeModelReport write_quantized_model(const QuantizeModelOptions& options);

// A tensor of a model being written: a 4-bit projection (its bitsandbytes tensors come from `quantized`)
// or a plain tensor of that dtype and shape.
struct OutputWeight {
  std::string name;
  bool quantized = false;
  at::ScalarType dtype = at::kBFloat16;  // plain tensors only
  std::vector<int64_t> shape;
};

// Where the 4-bit projections of a model being written come from: the tensors bitsandbytes stores for each are
// declared before any is written (the shard headers need their sizes), and each weight is made only when the
// writer reaches it, so one 4-bit weight at a time need be in memory.
struct QuantizedSource {
  std::function<std::vector<TensorSpec>(const std::string&)> specs;  // bnb_tensor_specs of weight `name`
  std::function<Quantized4bit(const std::string&)> make;             // asked once per weight, in model order
};

// Streams `weights` (in model order) into safetensors shards in `out_dir`: each 4-bit projection as the
// tensors bitsandbytes stores for it (from `quantized`), each plain tensor from tensor_of(name), asked for once
// and in order (so it can be made or mapped just then), then written(name) once it is on disk (to drop mapped
// pages). Fills the sizes of `report`.
void write_bnb_weights(const std::string& out_dir, const std::vector<OutputWeight>& weights, const QuantizedSource& quantized,
                       const std::function<at::Tensor(const std::string&)>& tensor_of, const std::function<void(const std::string&)>& written,
                       uint64_t max_shard_bytes, QuantizeModelReport& report);

}  // namespace qtune
