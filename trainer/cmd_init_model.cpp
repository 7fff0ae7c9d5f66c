// qtune init-model: writes a random model of one architecture in HF layout.
#include <algorithm>
#include <iostream>

#include "core/error.h"
#include "models/init_model.h"
#include "models/model_loader.h"
#include "data/byte_tokenizer.h"
#include "trainer/commands.h"

namespace qtune {

namespace {

struct Args {
  std::string arch = "llama", out, dtype = "bf16";
  std::uint64_t seed = 0;
  int64_t hidden = 0, layers = 0, heads = 0, kv_heads = 0, head_dim = 0, intermediate = 0, vocab = 0;
  int64_t sliding_window = 0, sliding_window_pattern = 0, original_max_positions = 0;
  int64_t experts = 0, experts_per_token = 0, moe_intermediate = 0;
  double partial_rotary_factor = 0;
  bool tie = false, untie = false, force = false, byte_tokenizer = false, double_quant = false;
  std::string quantize;
  int64_t blocksize = 64;
  double max_shard_gb = 5.0, init_std = 0.02;
};

void add_options(CLI::App* sub, Args& args) {
  sub->add_option("--arch", args.arch, "llama | mistral | qwen2 | qwen3 | gemma2 | gemma3 | phi3 | mixtral | qwen3_moe")->capture_default_str();
  sub->add_option("--out", args.out, "output folder")->required();
  sub->add_option("--seed", args.seed, "random seed (same seed and sizes: same bytes)")->capture_default_str();
  sub->add_option("--dtype", args.dtype, "bf16 | f16 | f32")->capture_default_str();
  sub->add_option("--hidden", args.hidden, "hidden size (default 256)");
  sub->add_option("--layers", args.layers, "decoder layers (default 2)");
  sub->add_option("--heads", args.heads, "attention heads (default 8)");
  sub->add_option("--kv-heads", args.kv_heads, "key/value heads (default heads/2)");
  sub->add_option("--head-dim", args.head_dim, "head dim (default hidden/heads)");
  sub->add_option("--intermediate", args.intermediate, "MLP size (default 688 for the default hidden size)");
  sub->add_option("--vocab", args.vocab, "vocabulary size (default 32000)");
  sub->add_option("--sliding-window", args.sliding_window, "sliding attention window (mistral, qwen, gemma, phi3)");
  sub->add_option("--sliding-window-pattern", args.sliding_window_pattern, "gemma: every Nth layer full attention, the others sliding (default 2 gemma2, 6 gemma3)");
  sub->add_option("--partial-rotary-factor", args.partial_rotary_factor, "phi3: RoPE on this fraction of each head (Phi-4-mini: 0.75)");
  sub->add_option("--original-max-positions", args.original_max_positions, "phi3: longrope's original context; longer forwards use the long factors (default 4096)");
  sub->add_option("--experts", args.experts, "mixtral, qwen3_moe: experts per MoE layer (default 8 mixtral, 128 qwen3_moe)");
  sub->add_option("--experts-per-token", args.experts_per_token, "mixtral, qwen3_moe: experts each token runs (top-k; default 2 mixtral, 8 qwen3_moe)");
  sub->add_option("--moe-intermediate", args.moe_intermediate, "qwen3_moe: each expert's MLP size (default intermediate/8; mixtral's are --intermediate wide)");
  sub->add_option("--init-std", args.init_std, "std of the normal init (config initializer_range)")->capture_default_str();
  sub->add_flag("--tie", args.tie, "tie lm_head to the embeddings");
  sub->add_flag("--untie", args.untie, "separate lm_head (qwen2 ties by default)");
  sub->add_option("--max-shard-gb", args.max_shard_gb, "shard the safetensors above this size (GB)")->capture_default_str();
  sub->add_flag("--force", args.force, "overwrite a model already in --out");
  sub->add_option("--quantize", args.quantize, "write the decoder projections in 4 bits, bitsandbytes format: nf4 | fp4");
  sub->add_flag("--double-quant", args.double_quant, "with --quantize: also quantize the absmax to 8 bits (QLoRA's double quantization)");
  sub->add_option("--blocksize", args.blocksize, "with --quantize: elements per absmax (power of two, 32..4096)")->capture_default_str();
  sub->add_flag("--byte-tokenizer", args.byte_tokenizer,
                "also write qtune's byte-level tokenizer (256 bytes + ChatML tokens; vocab at least 259)");
}

// --experts, --experts-per-token, --moe-intermediate (after fit_preset_to_sizes, which sets the experts' default width).
void apply_expert_options(const Args& args, ModelConfig& c) {
  const bool moe = c.arch == Architecture::kMixtral || c.arch == Architecture::kQwen3Moe;
  if ((args.experts != 0 || args.experts_per_token != 0 || args.moe_intermediate != 0) && !moe)
    input_error("--experts, --experts-per-token and --moe-intermediate are mixture-of-experts settings (--arch mixtral or qwen3_moe)");
  if (args.moe_intermediate != 0 && c.arch != Architecture::kQwen3Moe)
    input_error("--moe-intermediate: mixtral's experts are --intermediate wide (it is a qwen3_moe setting)");
  if (args.experts < 0 || args.experts_per_token < 0 || args.moe_intermediate < 0)
    input_error("--experts, --experts-per-token and --moe-intermediate must be > 0");
  if (args.experts > 0) c.num_experts = args.experts;
  if (args.experts_per_token > 0) c.num_experts_per_tok = args.experts_per_token;
  else c.num_experts_per_tok = std::min(c.num_experts_per_tok, c.num_experts);  // --experts 4 alone: top 4 for qwen3_moe
  if (args.moe_intermediate > 0) c.moe_intermediate_size = args.moe_intermediate;
  if (moe && c.num_experts_per_tok > c.num_experts)
    input_error("--experts-per-token {} is more than the {} experts (--experts)", c.num_experts_per_tok, c.num_experts);
}

// The architecture's preset with the sizes and options given.
ModelConfig model_config(const Args& args) {
  ModelConfig c = ModelConfig::preset(parse_architecture_name(args.arch));
  if (args.hidden > 0) {
    c.hidden_size = args.hidden;
    c.intermediate_size = ((args.hidden * 8 / 3) + 15) / 16 * 16;
  }
  if (args.heads > 0) c.num_heads = args.heads, c.num_kv_heads = std::max<int64_t>(1, args.heads / 2);
  if (args.kv_heads > 0) c.num_kv_heads = args.kv_heads;
  c.head_dim = args.head_dim > 0 ? args.head_dim : c.hidden_size / c.num_heads;
  if (args.layers > 0) c.num_layers = args.layers;
  if (args.intermediate > 0) c.intermediate_size = args.intermediate;
  if (args.vocab > 0) c.vocab_size = args.vocab;
  if (args.byte_tokenizer) {
    if (args.vocab > 0 && args.vocab < kByteTokenizerVocab) input_error("--vocab {} is below the byte tokenizer's {} ids", args.vocab, kByteTokenizerVocab);
    if (args.vocab == 0) c.vocab_size = kByteTokenizerVocab;
    c.bos_token_id.reset();
    c.eos_token_ids = {258};  // <|im_end|>
  }
  if (!(args.init_std > 0)) input_error("--init-std must be > 0");
  c.initializer_range = args.init_std;
  if (args.tie) c.tie_word_embeddings = true;
  if (args.untie) c.tie_word_embeddings = false;
  if (args.sliding_window > 0) {
    if (c.arch == Architecture::kLlama) input_error("--sliding-window: llama has no sliding window (use mistral, qwen, gemma or phi3)");
    c.sliding_window = args.sliding_window;
    c.max_window_layers = 0;
  }
  const bool gemma = c.arch == Architecture::kGemma2 || c.arch == Architecture::kGemma3;
  if (args.sliding_window_pattern != 0 && (!gemma || args.sliding_window_pattern < 1)) input_error("--sliding-window-pattern: a positive number, for gemma2/gemma3");
  if ((args.partial_rotary_factor != 0 || args.original_max_positions != 0) && c.arch != Architecture::kPhi3)
    input_error("--partial-rotary-factor and --original-max-positions are phi3 settings");
  if (args.partial_rotary_factor != 0) c.partial_rotary_factor = args.partial_rotary_factor;
  if (args.original_max_positions < 0) input_error("--original-max-positions must be > 0");
  if (args.original_max_positions > 0) c.rope_scaling.original_max_position_embeddings = args.original_max_positions;
  fit_preset_to_sizes(c, args.sliding_window_pattern);
  apply_expert_options(args, c);
  if (c.hidden_size % c.num_heads != 0 && args.head_dim == 0)
    input_error("--hidden {} is not a multiple of --heads {}; pass --head-dim", c.hidden_size, c.num_heads);
  if (c.bos_token_id && *c.bos_token_id >= c.vocab_size) c.bos_token_id.reset(), c.eos_token_ids.clear();
  return c;
}

InitModelOptions init_options(const Args& args) {
  InitModelOptions o;
  o.config = model_config(args);
  o.out_dir = args.out;
  o.seed = args.seed;
  o.dtype = parse_dtype(args.dtype, "--dtype");
  o.force = args.force;
  if (!(args.max_shard_gb > 0)) input_error("--max-shard-gb must be > 0");
  o.max_shard_bytes = static_cast<std::uint64_t>(args.max_shard_gb * 1e9);
  if (!args.quantize.empty()) {
    check_blocksize(args.blocksize, "--blocksize");
    o.quantize = QuantizeOptions{parse_quant_type(args.quantize, "--quantize"), args.blocksize, args.double_quant};
  } else if (args.double_quant) {
    input_error("--double-quant needs --quantize nf4 (or fp4)");
  }
  return o;
}

}  // namespace

Command add_init_model_command(CLI::App& app) {
  auto args = std::make_shared<Args>();
  add_options(app.add_subcommand("init-model", "Write a randomly initialized model in Hugging Face layout"), *args);
  return [args]() {
    const InitModelOptions o = init_options(*args);
    write_random_model(o);
    if (args->byte_tokenizer) write_byte_tokenizer(o.out_dir);
    std::cout << "wrote " << o.config.hf_class_name() << " to " << o.out_dir << " (run: qtune inspect " << o.out_dir << ")\n";
    return 0;
  };
}

}  // namespace qtune
