// qtune quantize --model DIR --out DIR [--type nf4|fp4] [--double-quant] [--blocksize N]: writes a
// bitsandbytes-format 4-bit checkpoint.
#include <iostream>

#include <fmt/format.h>

#include "core/error.h"
#include "models/quantize_model.h"
#include "trainer/commands.h"

namespace qtune {

Command add_quantize_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("quantize", "Write a 4-bit (bitsandbytes format) copy of a model");
  auto o = std::make_shared<QuantizeModelOptions>();
  auto type = std::make_shared<std::string>("nf4");
  auto shard_gb = std::make_shared<double>(5.0);
  cmd->add_option("--model", o->model_dir, "the model folder (HF layout)")->required();
  cmd->add_option("--out", o->out_dir, "the output folder")->required();
  cmd->add_option("--type", *type, "nf4 (default) or fp4");
  cmd->add_flag("--double-quant", o->quantize.double_quant, "also quantize the absmax to 8 bits (QLoRA's double quantization)");
  cmd->add_option("--blocksize", o->quantize.blocksize, "elements per absmax (power of two, 32..4096; default 64)");
  cmd->add_option("--compute-dtype", o->compute_dtype, "recorded as bnb_4bit_compute_dtype (default bfloat16)");
  cmd->add_option("--max-shard-gb", *shard_gb, "shard the safetensors above this size (default 5)");
  cmd->add_flag("--force", o->force, "overwrite a model already in --out");
  o->quantize.double_quant = false;
  return [o, type, shard_gb]() {
    o->quantize.type = parse_quant_type(*type, "--type");
    check_blocksize(o->quantize.blocksize, "--blocksize");
    if (!(*shard_gb > 0)) input_error("--max-shard-gb must be > 0");
    o->max_shard_bytes = static_cast<uint64_t>(*shard_gb * (1ull << 30));
    QuantizeModelReport r = write_quantized_model(*o);
    const double total = static_cast<double>(r.quantized_parameters + r.other_parameters);
    std::cout << fmt::format("wrote {}: {}{}, block {}\n", o->out_dir, quant_type_name(r.format.type),
                             r.format.double_quant ? " with double quantization" : "", r.blocksize);
    std::cout << fmt::format("4-bit part  {} parameters, {} bytes ({:.4f} bytes/parameter)\n", r.quantized_parameters, r.quantized_bytes,
                             r.quantized_parameters ? static_cast<double>(r.quantized_bytes) / r.quantized_parameters : 0.0);
    std::cout << fmt::format("other       {} parameters, {} bytes; whole model {:.4f} bytes/parameter\n", r.other_parameters, r.other_bytes,
                             total > 0 ? (r.quantized_bytes + r.other_bytes) / total : 0.0);
    return 0;
  };
}

}  // namespace qtune
