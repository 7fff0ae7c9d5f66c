// Merging LoRA into the base weights: W' = deq(W) + s·B·A (DoRA: g⊙(deq(W) + s·B·A), lora_variant.h), for one
// projection in memory or for a whole checkpoint folder streamed tensor by tensor into a plain (dense) HF checkpoint.
//
// The sum is computed in float32 and rounded once to the output dtype. deq(W) is what training saw:
//   dense base:           the stored weight, converted to float32 (no intermediate rounding);
//   4-bit base (bnb file, or quantized at load time): dequantize_4bit(q, compute_dtype), i.e. the NF4/FP4
//   value times the block absmax computed in float32 and rounded once to the compute dtype (bf16 for a
//   bf16 run), exactly the matrix Linear4bit multiplied by; then widened to float32 for the sum.
#pragma once

#include "core/torch.h"

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "adapters/lora.h"
#include "adapters/peft_format.h"
#include "models/model_loader.h"
#include "models/transformer.h"

namespace qtune {

// The merged weight of one projection, float32 [out, in] (just deq(W) without an adapter).
// A 4-bit weight is dequantized to `compute_dtype` first (the dtype the model ran in).
torch::Tensor merged_weight(const FrozenLinear& linear, at::ScalarType compute_dtype);

// merged_weight() of every adapted projection of `model` (compute dtype: the model's), in model order.
// Holds every merged matrix in float32 at once: for tests and small models; write_merged_model streams.
std::vector<std::pair<std::string, torch::Tensor>> merge_lora(CausalLM& model);

struct MergeOptions {
  std::string base_dir;     // HF checkpoint folder (16/32-bit, or bitsandbytes 4-bit)
  std::string adapter_dir;  // PEFT adapter folder
  std::string out_dir;
  at::ScalarType out_dtype = at::kBFloat16;  // every output tensor: f32, bf16 or f16
  // The base was trained 4-bit after load-time quantization (load_in_4bit on a 16-bit checkpoint): the
  // projections are quantized here exactly as the loader does, and deq(W) is merged. Ignored for a
  // pre-quantized base (which is always merged as 4-bit).
  std::optional<QuantizeOptions> quantize;
  // Dtype of deq(W) for a 4-bit base (the training compute dtype). Default: the checkpoint's
  // bnb_4bit_compute_dtype for a pre-quantized base, else bf16.
  std::optional<at::ScalarType> compute_dtype;
  std::uint64_t max_shard_bytes = 5'000'000'000ull;
  bool force = false;  // allow writing into a folder that already holds a model
};

struct MergeReport {
  std::vector<std::string> merged_modules;   // model order
  bool base_4bit = false;                    // deq(W) came from 4-bit codes
  at::ScalarType dequantize_dtype = at::kFloat;  // dtype of deq(W) when base_4bit
  std::size_t shards = 1;
};

// The tensors of base + adapter one at a time, as a merge writes them (write_merged_model, qtune export): the
// base's specs in HF order; get() gives an adapted projection merged in float32, any other tensor as stored (a 4-bit
// projection dequantized to the compute dtype). Without an adapter (empty adapter_dir) every tensor is the base's.
class MergedTensors {
 public:
  MergedTensors(const std::string& base_dir, const std::string& adapter_dir, std::optional<QuantizeOptions> quantize,
                std::optional<at::ScalarType> compute_dtype);
  const ModelConfig& config() const { return checked_.config; }
  const std::vector<WeightSpec>& specs() const { return checked_.specs; }
  const std::optional<PeftAdapter>& adapter() const { return adapter_; }
  torch::Tensor get(const WeightSpec& spec);
  void release(const WeightSpec& spec) { checked_.checkpoint.release(spec.name); }
  const MergeReport& report() const { return report_; }

 private:
  torch::Tensor base_weight(const WeightSpec& spec);
  CheckedCheckpoint checked_;
  std::optional<PeftAdapter> adapter_;
  std::optional<QuantizeOptions> quantize_;
  MergeReport report_;
};

// Streams base + adapter into out_dir: every tensor of the base in HF order, merged or as stored, in
// out_dtype (sharded like transformers), then tokenizer/generation files copied and config.json (no
// quantization_config; torch_dtype = out_dtype) written last. Host memory stays near one projection
// (base tensors are read one at a time from the mapped files; only the adapter's tensors are loaded).
// InputError for bad folders, an adapter that does not fit the base, or out_dir = base_dir.
MergeReport write_merged_model(const MergeOptions& options);

}  // namespace qtune
