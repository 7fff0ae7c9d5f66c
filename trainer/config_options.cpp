// TrainConfig -> each component's options: the one place where the settings become LoadOptions
// (models/), LoraOptions (adapters/), DataConfig and PackingOptions (data/).
#include <filesystem>

#include "trainer/train_config.h"

namespace qtune {

// bf16: auto computes in bf16 on a GPU and in fp32 on the CPU; true in bf16 on both (fast on CPUs with
// AVX-512 BF16 / AMX, as HF's bf16 autocast on a CPU); false in fp32.
at::ScalarType TrainConfig::compute_dtype(torch::Device device) const {
  const bool in_bf16 = bf16 == TriState::on || (bf16 == TriState::automatic && device.is_cuda());
  return in_bf16 ? torch::kBFloat16 : torch::kFloat;
}

LoadOptions TrainConfig::load_options(torch::Device device) const {
  LoadOptions options;
  options.device = device;
  options.dtype = compute_dtype(device);
  if (load_in_4bit)
    options.quantize = QuantizeOptions{parse_quant_type(bnb_4bit_quant_type, source), bnb_4bit_blocksize, bnb_4bit_use_double_quant};
  // The layers go straight to host memory, never whole on the device (a 4-bit base: plan_memory refuses others).
  options.layers_on_host = offload_base == TriState::on;
  return options;
}

LoraOptions TrainConfig::lora_options() const {
  LoraOptions o;
  o.r = lora_r;
  o.alpha = lora_alpha;
  o.dropout = lora_dropout;
  o.rslora = peft_use_rslora;
  o.use_dora = peft_use_dora;
  o.init = lora_init;
  o.target_modules = lora_target_modules;
  o.target_linear = lora_target_linear || lora_target_modules.empty();
  return o;
}

DataConfig TrainConfig::data_config() const {
  DataConfig data;
  data.datasets = datasets;
  data.chat_template = chat_template;
  data.masking = MaskingOptions{train_on_inputs, roles_to_train, parse_train_on_eos(train_on_eos, source)};
  data.val_set_size = val_set_size;
  data.seed = static_cast<uint64_t>(seed);
  data.shuffle = shuffle_merged_datasets;
  data.cache_dir = dataset_prepared_path.empty() ? (std::filesystem::path(output_dir) / "prepared").string() : dataset_prepared_path;
  data.threads = static_cast<unsigned>(std::max<int64_t>(0, dataset_processes));
  return data;
}

PackingOptions TrainConfig::packing_options() const {
  PackingOptions options;
  options.sequence_len = static_cast<std::size_t>(sequence_len);
  options.sample_packing = sample_packing;
  options.overlong = parse_overlong_policy(overlong_samples, source);
  options.micro_batch_size = static_cast<std::size_t>(micro_batch_size);
  options.seed = static_cast<uint64_t>(seed);
  options.pad_to_sequence_len = pad_to_sequence_len;
  return options;
}

}  // namespace qtune
