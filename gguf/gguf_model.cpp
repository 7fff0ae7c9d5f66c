// Reading a GGUF model back: config from the metadata, tensors dequantized, tokenizer from its keys.
#include "gguf/gguf_model.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.h"
#include "gguf/gguf_names.h"
#include "gguf/gguf_tokenizer.h"
#include "models/architecture.h"
#include "models/linear4bit.h"

namespace qtune {
namespace {

Architecture architecture_of(const GgufFile& file) {
  if (file.metadata().contains("general.type") && file.metadata().string("general.type", file.path()) == "adapter")
    input_error("{}: this is a LoRA adapter, not a model; give the model file as --model (qtune reads adapters as PEFT folders)", file.path());
  const GgufMetadata& m = file.metadata();
  const std::string& arch = m.string("general.architecture", file.path());
  if (arch == "llama" && m.contains("llama.expert_count") && m.integer("llama.expert_count", file.path()) > 0) return Architecture::kMixtral;
  if (arch == "llama") return m.contains("llama.attention.sliding_window") ? Architecture::kMistral : Architecture::kLlama;
  for (Architecture a : {Architecture::kQwen2, Architecture::kQwen3, Architecture::kGemma2, Architecture::kGemma3, Architecture::kPhi3,
                         Architecture::kQwen3Moe})
    if (arch == gguf_architecture(a)) return a;
  input_error("{}: GGUF architecture '{}' is not supported (supported: llama, mistral and mixtral as llama, qwen2, qwen3, gemma2, gemma3, "
              "phi3, qwen3moe)", file.path(), arch);
}

void read_rope(const GgufFile& file, const std::string& arch, ModelConfig& c) {
  const GgufMetadata& m = file.metadata();
  c.rope_theta = m.contains(arch + ".rope.freq_base") ? m.number(arch + ".rope.freq_base", file.path()) : 10000.0;
  if (m.contains(arch + ".rope.dimension_count") && c.head_dim > 0)  // Phi-4-mini turns part of each head
    c.partial_rotary_factor = static_cast<double>(m.integer(arch + ".rope.dimension_count", file.path())) / static_cast<double>(c.head_dim);
  if (m.contains(arch + ".rope.scaling.type")) {
    const std::string& type = m.string(arch + ".rope.scaling.type", file.path());
    if (type == "linear") c.rope_scaling = {"linear", m.number(arch + ".rope.scaling.factor", file.path())};
    else if (type != "none") input_error("{}: rope scaling '{}' is not supported (supported: none, linear, llama3)", file.path(), type);
  }
  if (m.contains("qtune.rope.llama3.factor"))
    c.rope_scaling = {"llama3", m.number("qtune.rope.llama3.factor", file.path()), m.number("qtune.rope.llama3.low_freq_factor", file.path()),
                      m.number("qtune.rope.llama3.high_freq_factor", file.path()), m.integer("qtune.rope.llama3.original_context_length", file.path())};
  else if (file.find("rope_freqs.weight"))
    input_error("{}: llama3 rope scaling given only as rope_freqs.weight is not supported; export the model with qtune export", file.path());
}

const GgufTensorInfo& tensor(const GgufFile& file, const std::string& name) {
  const GgufTensorInfo* info = file.find(name);
  if (!info) input_error("{}: tensor '{}' is missing", file.path(), name);
  return *info;
}

// Where the HF tensor `spec` is in the file: its own tensor, or one expert's rows of a stacked expert tensor (a 2-D
// view of expert e's [out, in] rows: they follow each other in the file, e·out rows in).
GgufTensorInfo tensor_for(const GgufFile& file, const ModelConfig& config, const WeightSpec& spec) {
  const auto expert = stacked_expert_tensor(config, spec.name);
  if (!expert) return tensor(file, *gguf_tensor_name(config.arch, spec.name));
  const GgufTensorInfo& stacked = tensor(file, expert->gguf_name);
  const std::vector<int64_t> expected = {spec.shape[1], spec.shape[0], config.num_experts};
  if (stacked.ne != expected)
    input_error("{}: tensor '{}' has shape [{}], the metadata implies [{}] (ggml order)", file.path(), stacked.name, fmt::join(stacked.ne, ", "),
                fmt::join(expected, ", "));
  GgufTensorInfo slice = stacked;
  slice.name = fmt::format("{} (expert {})", stacked.name, expert->expert);
  slice.ne.pop_back();
  slice.offset += static_cast<uint64_t>(expert->expert) * slice.bytes();
  return slice;
}

}  // namespace

ModelConfig config_from_gguf(const GgufFile& file) {
  ModelConfig c;
  c.arch = architecture_of(file);
  const std::string arch = gguf_architecture(c.arch);
  const GgufMetadata& m = file.metadata();
  const auto key = [&](const std::string& k) { return m.integer(arch + "." + k, file.path()); };
  c.hidden_size = key("embedding_length");
  c.num_layers = key("block_count");
  c.intermediate_size = key("feed_forward_length");
  c.num_heads = key("attention.head_count");
  c.num_kv_heads = m.contains(arch + ".attention.head_count_kv") ? key("attention.head_count_kv") : c.num_heads;
  c.head_dim = m.contains(arch + ".attention.key_length") ? key("attention.key_length") : (c.num_heads > 0 ? c.hidden_size / c.num_heads : 0);
  c.max_position_embeddings = key("context_length");
  c.rms_norm_eps = m.number(arch + ".attention.layer_norm_rms_epsilon", file.path());
  read_rope(file, arch, c);
  if (m.contains(arch + ".attention.sliding_window") && key("attention.sliding_window") > 0) {  // Phi-3's converter writes 0 for none
    c.sliding_window = key("attention.sliding_window");
    c.max_window_layers = m.contains("qtune.max_window_layers") ? m.integer("qtune.max_window_layers", file.path()) : 0;
  }
  const GgufTensorInfo& embed = tensor(file, "token_embd.weight");
  if (embed.ne.size() != 2) input_error("{}: token_embd.weight must be 2-D", file.path());
  c.vocab_size = embed.ne[1];
  c.tie_word_embeddings = file.find("output.weight") == nullptr;
  c.qkv_bias = file.find("blk.0.attn_q.bias") != nullptr;
  c.o_bias = file.find("blk.0.attn_output.bias") != nullptr;
  c.qk_norm = file.find("blk.0.attn_q_norm.weight") != nullptr;
  c.torch_dtype = "float32";
  read_family_metadata(file, arch, c);
  if (m.contains("tokenizer.ggml.bos_token_id")) c.bos_token_id = m.integer("tokenizer.ggml.bos_token_id", file.path());
  if (m.contains("tokenizer.ggml.eos_token_id")) c.eos_token_ids = {m.integer("tokenizer.ggml.eos_token_id", file.path())};
  c.validate(file.path());
  return c;
}

GgufModel load_gguf_model(const std::string& path, const LoadOptions& options) {
  torch::NoGradGuard no_grad;
  const auto file = GgufFile::open(path);
  const ModelConfig config = config_from_gguf(*file);
  ModelWeights weights;
  for (const WeightSpec& spec : hf_weight_specs(config)) {
    const GgufTensorInfo info = tensor_for(*file, config, spec);
    const std::string& name = info.name;
    const std::vector<int64_t> shape = info.torch_shape();
    if (shape != spec.shape) input_error("{}: tensor '{}' has shape [{}], the metadata implies [{}]", path, name, fmt::join(shape, ", "), fmt::join(spec.shape, ", "));
    torch::Tensor values = from_gguf_values(config, spec.name, file->to_float(info));
    file->release(info);
    const std::string module = spec.name.substr(0, spec.name.size() - std::string(".weight").size());
    if (spec.decoder_projection && options.quantize) {
      const QuantizeOptions& q = *options.quantize;
      Quantized4bit quantized = quantize_4bit(values.to(options.device), q.type, q.blocksize, q.double_quant, path + ": tensor '" + name + "'");
      weights.projections[module] = std::make_shared<QuantizedWeight>(to_device(quantized, options.layers_on_host ? torch::kCPU : options.device));
      continue;
    }
    values = values.to(options.device, options.dtype);
    if (spec.decoder_projection || spec.router || spec.name == "lm_head.weight") weights.projections[module] = std::make_shared<DenseWeight>(values);
    else weights.tensors[spec.name] = values;
  }
  GgufModel out;
  out.model = CausalLM(config, std::move(weights));
  out.model->eval();
  out.tokenizer = tokenizer_from_gguf(file->metadata(), path);
  out.tokenizer_config = tokenizer_config_from_gguf(file->metadata(), path);
  return out;
}

}  // namespace qtune
