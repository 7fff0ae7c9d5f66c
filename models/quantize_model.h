// write_quantized_model(): a checkpoint folder -> a bitsandbytes-format 4-bit checkpoint (decoder
// projections in NF4/FP4, everything else as stored), loadable by HF transformers + bitsandbytes and by
// qtune. A checkpoint that is already 4-bit is re-written as it is (byte-identical output).
// Depends on: models/model_loader.h, models/bnb_format.h.
#pragma once

#include <cstdint>
#include <string>

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

}  // namespace qtune
