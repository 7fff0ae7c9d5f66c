// qtune merge --base DIR --adapter DIR --out DIR [--dtype bf16|f16|f32] [--load-in-4bit ...]: base + adapter
// -> a plain HF model.
#include <iostream>

#include <fmt/format.h>

#include "adapters/merge.h"
#include "core/error.h"
#include "trainer/commands.h"
#include "trainer/training_base.h"

namespace qtune {

Command add_merge_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("merge", "Merge a LoRA adapter into its base model (HF safetensors)");
  auto o = std::make_shared<MergeOptions>();
  auto dtype = std::make_shared<std::string>("bf16");
  auto four_bit = std::make_shared<bool>(false);
  auto quant_type = std::make_shared<std::string>("nf4");
  auto double_quant = std::make_shared<bool>(true);
  auto shard_gb = std::make_shared<double>(5.0);
  cmd->add_option("--base", o->base_dir, "the base model folder the adapter was trained on")->required();
  cmd->add_option("--adapter", o->adapter_dir, "the adapter folder (adapter_model.safetensors + adapter_config.json)")->required();
  cmd->add_option("--out", o->out_dir, "the output folder")->required();
  cmd->add_option("--dtype", *dtype, "bf16 (default), f16 or f32");
  cmd->add_flag("--load-in-4bit", *four_bit,
                "the adapter was trained on this 16-bit base quantized at load (load_in_4bit): merge into the same 4-bit weights");
  cmd->add_option("--bnb-4bit-quant-type", *quant_type, "with --load-in-4bit: nf4 (default) or fp4");
  cmd->add_option("--bnb-4bit-use-double-quant", *double_quant, "with --load-in-4bit: true (default) or false");
  cmd->add_option("--max-shard-gb", *shard_gb, "shard above this size (default 5)");
  cmd->add_flag("--force", o->force, "overwrite a model already in --out");
  return [o, dtype, four_bit, quant_type, double_quant, shard_gb]() {
    o->out_dtype = parse_dtype(*dtype, "--dtype");
    if (*four_bit) o->quantize = QuantizeOptions{parse_quant_type(*quant_type, "--bnb-4bit-quant-type"), 64, *double_quant};
    // An adapter trained on a base quantized at load is merged into those same 4-bit weights.
    const TrainingBase trained = read_training_base(o->adapter_dir);
    if (!o->quantize) o->quantize = trained.quantize;
    if (!o->compute_dtype) o->compute_dtype = trained.compute_dtype;
    if (!(*shard_gb > 0)) input_error("--max-shard-gb must be > 0");
    o->max_shard_bytes = static_cast<uint64_t>(*shard_gb * 1e9);
    MergeReport r = write_merged_model(*o);
    std::cout << fmt::format("merged {} adapted projections into {} ({}{}), {} shard(s)\n", r.merged_modules.size(), o->out_dir, *dtype,
                             r.base_4bit ? fmt::format("; the 4-bit base was dequantized to {} as in training", dtype_short_name(r.dequantize_dtype)) : "",
                             r.shards);
    return 0;
  };
}

}  // namespace qtune
