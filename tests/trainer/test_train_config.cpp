// The YAML config: YAML 1.2 scalar typing, defaults, key=value overrides, paths relative to the config
// file, and one-line errors naming the file and key.
#include <gtest/gtest.h>

#include "core/error.h"
#include "tests/support/files.h"
#include "trainer/train_config.h"
#include "trainer/yaml_document.h"

namespace qtune {
namespace {

std::string write_config(const std::string& body) {
  const std::string dir = test::temp_dir("config");
  test::write_file(dir + "/config.yaml", body);
  return dir + "/config.yaml";
}

const char* kMinimal = "base_model: models/tiny\ndatasets:\n  - path: data/train.jsonl\n    type: alpaca\n";
const char* kPairs = "base_model: models/tiny\ndatasets:\n  - path: data/pairs.jsonl\n    type: preference\n";

TEST(TrainConfig, ReadsTypedValuesAndResolvesPathsAgainstTheConfigFolder) {
  const std::string path = write_config(std::string(kMinimal) +
                                        "learning_rate: 1e-4\nlora_r: 8\nsample_packing: true\nchat_template: chatml\n"
                                        "lora_target_modules: [q_proj, v_proj]\noutput_dir: '123'\n");
  TrainConfig c = TrainConfig::load(path);
  const std::string dir = path.substr(0, path.rfind('/'));
  EXPECT_EQ(c.base_model, dir + "/models/tiny");
  EXPECT_EQ(c.datasets.at(0).path, dir + "/data/train.jsonl");
  EXPECT_EQ(c.datasets.at(0).type, DatasetType::alpaca);
  EXPECT_DOUBLE_EQ(c.learning_rate, 1e-4);
  EXPECT_EQ(c.lora_r, 8);
  EXPECT_TRUE(c.sample_packing);
  EXPECT_EQ(c.chat_template, "chatml");
  EXPECT_EQ(c.lora_target_modules, (std::vector<std::string>{"q_proj", "v_proj"}));
  EXPECT_EQ(c.output_dir, dir + "/123");  // a quoted number stays a string
  EXPECT_EQ(c.micro_batch_size, 1);       // defaults
  EXPECT_EQ(c.train_on_eos, "turn");
  EXPECT_EQ(c.data_config().cache_dir, dir + "/123/prepared");
  // QLoRA defaults: NF4, double quantization, block 64, bf16 compute.
  LoadOptions load = c.load_options(torch::kCPU);
  ASSERT_TRUE(load.quantize.has_value());
  EXPECT_EQ(load.quantize->type, QuantType::NF4);
  EXPECT_TRUE(load.quantize->double_quant);
  EXPECT_EQ(load.quantize->blocksize, 64);
  EXPECT_FALSE(load.layers_on_host);
  EXPECT_FALSE(TrainConfig::load(path, {"load_in_4bit=false"}).load_options(torch::kCPU).quantize.has_value());
  // bf16: auto (the default) computes in bf16 on a GPU, fp32 on the CPU; true in bf16 on both, false in fp32.
  EXPECT_EQ(c.bf16, TriState::automatic);
  EXPECT_EQ(load.dtype, at::kFloat);
  EXPECT_EQ(c.compute_dtype(torch::Device(torch::kCUDA)), at::kBFloat16);
  const TrainConfig on = TrainConfig::load(path, {"bf16=true"}), off = TrainConfig::load(path, {"bf16=false"});
  EXPECT_EQ(on.bf16, TriState::on);
  EXPECT_EQ(on.load_options(torch::kCPU).dtype, at::kBFloat16);
  EXPECT_EQ(off.bf16, TriState::off);
  EXPECT_EQ(off.compute_dtype(torch::Device(torch::kCUDA)), at::kFloat);
  EXPECT_EQ(TrainConfig::load(path, {"offload_base=true"}).offload_base, TriState::on);
  EXPECT_TRUE(TrainConfig::load(path, {"offload_base=true"}).load_options(torch::kCPU).layers_on_host);
  EXPECT_EQ(c.offload_base, TriState::automatic);
}

// Each component's options come from one function of the settings.
TEST(TrainConfig, MakesEachComponentsOptions) {
  const std::string path = write_config(std::string(kMinimal) + "lora_r: 8\nlora_alpha: 4\nlora_dropout: 0\npeft_use_rslora: true\npeft_use_dora: true\n"
                                        "lora_init: gaussian\nlora_target_modules: [q_proj, v_proj]\nsequence_len: 512\n"
                                        "sample_packing: true\nmicro_batch_size: 3\noverlong_samples: drop\nseed: 5\n");
  const TrainConfig c = TrainConfig::load(path);
  const LoraOptions lora = c.lora_options();
  EXPECT_EQ(lora.r, 8);
  EXPECT_DOUBLE_EQ(lora.alpha, 4);
  EXPECT_DOUBLE_EQ(lora.dropout, 0);
  EXPECT_TRUE(lora.rslora);
  EXPECT_TRUE(lora.use_dora);
  EXPECT_EQ(lora.init, "gaussian");
  EXPECT_EQ(lora.target_modules, (std::vector<std::string>{"q_proj", "v_proj"}));
  EXPECT_FALSE(lora.target_linear);
  EXPECT_TRUE(TrainConfig::load(write_config(kMinimal)).lora_options().target_linear);  // no targets: all linear layers
  const PackingOptions packing = c.packing_options();
  EXPECT_EQ(packing.sequence_len, 512u);
  EXPECT_TRUE(packing.sample_packing);
  EXPECT_EQ(packing.micro_batch_size, 3u);
  EXPECT_EQ(packing.overlong, OverlongPolicy::Drop);
  EXPECT_EQ(packing.seed, 5u);
  const DataConfig data = c.data_config();
  EXPECT_EQ(data.seed, 5u);
  EXPECT_EQ(data.datasets.size(), 1u);
}

// The config as run: the file's keys in their order with the overrides applied, typed as they were read.
TEST(TrainConfig, KeepsTheConfigAsRunAsYaml) {
  const std::string path = write_config(std::string(kMinimal) + "output_dir: '123'\nlora_r: 8\nchat_template: chatml\nlora_r: 12\n");
  const TrainConfig c = TrainConfig::load(path, {"lora_r=16", "seed=3", "tokenizer=\"true\""});
  EXPECT_EQ(c.as_run_yaml.rfind("# the config as run: " + path + " with lora_r=16 seed=3", 0), 0u) << c.as_run_yaml;
  const nlohmann::json again = yaml_to_json(c.as_run_yaml, "as run");
  EXPECT_EQ(again["lora_r"], 16);  // every entry of a repeated key
  EXPECT_EQ(c.lora_r, 16);
  EXPECT_EQ(c.seed, 3);
  EXPECT_EQ(again["seed"], 3);
  EXPECT_EQ(again["output_dir"], "123");  // quoted: still a string
  EXPECT_EQ(again["tokenizer"], "true");
  EXPECT_EQ(again["datasets"][0]["type"], "alpaca");
  EXPECT_LT(c.as_run_yaml.find("\nbase_model:"), c.as_run_yaml.find("\nlora_r: 16"));  // the file's order
  EXPECT_LT(c.as_run_yaml.find("\nchat_template:"), c.as_run_yaml.find("\nseed: 3"));   // new keys at the end
}

TEST(TrainConfig, OverridesUseYamlSyntax) {
  TrainConfig c = TrainConfig::load(write_config(kMinimal), {"lora_r=32", "train_on_inputs=true", "seed=7", "val_set_size=0.05"});
  EXPECT_EQ(c.lora_r, 32);
  EXPECT_TRUE(c.train_on_inputs);
  EXPECT_EQ(c.seed, 7);
  EXPECT_DOUBLE_EQ(c.val_set_size, 0.05);
  EXPECT_THROW(TrainConfig::load(write_config(kMinimal), {"lora_r"}), InputError);
  EXPECT_THROW(TrainConfig::load(write_config(kMinimal), {"lora_r=abc"}), InputError);
}

TEST(TrainConfig, LoraPlusKeys) {
  const TrainConfig plain = TrainConfig::load(write_config(kMinimal));
  EXPECT_EQ(plain.loraplus_lr_ratio, 0);  // off
  EXPECT_DOUBLE_EQ(plain.loraplus_lr_embedding, 1e-6);
  const TrainConfig plus = TrainConfig::load(write_config(std::string(kMinimal) + "loraplus_lr_ratio: 16\nloraplus_lr_embedding: 1e-5\n"));
  EXPECT_DOUBLE_EQ(plus.loraplus_lr_ratio, 16);
  EXPECT_DOUBLE_EQ(plus.loraplus_lr_embedding, 1e-5);
}

TEST(TrainConfig, PreferenceKeys) {
  TrainConfig ipo = TrainConfig::load(write_config(std::string(kPairs) + "rl: ipo\nrl_beta: 0.2\nlora_model_dir: sft\n"));
  EXPECT_EQ(ipo.rl, "dpo");  // Axolotl's rl: ipo is DPO with the IPO loss
  EXPECT_EQ(ipo.dpo_loss_type, "ipo");
  EXPECT_DOUBLE_EQ(ipo.rl_beta, 0.2);
  EXPECT_EQ(ipo.lora_model_dir, ipo.source.substr(0, ipo.source.rfind('/')) + "/sft");
  EXPECT_TRUE(ipo.disable_dropout);
  EXPECT_FALSE(ipo.precompute_ref_log_probs);
}

TEST(TrainConfig, ActivationOffloadingTurnsCheckpointingOn) {
  TrainConfig plain = TrainConfig::load(write_config(kMinimal));
  EXPECT_FALSE(plain.activation_offloading);
  EXPECT_FALSE(plain.gradient_checkpointing);
  TrainConfig offloaded = TrainConfig::load(write_config(std::string(kMinimal) + "activation_offloading: true\n"));
  EXPECT_TRUE(offloaded.activation_offloading);
  EXPECT_TRUE(offloaded.gradient_checkpointing);
  // Even when the file turns checkpointing off: offloading needs it, so it wins (silently).
  TrainConfig both = TrainConfig::load(write_config(std::string(kMinimal) + "gradient_checkpointing: false\n"), {"activation_offloading=true"});
  EXPECT_TRUE(both.gradient_checkpointing);
}

TEST(TrainConfig, GpuMemoryLimitIsASize) {
  EXPECT_EQ(TrainConfig::load(write_config(kMinimal)).gpu_memory_limit, 0);  // no limit
  const std::string path = write_config(std::string(kMinimal) + "gpu_memory_limit: 22GiB\n");
  EXPECT_EQ(TrainConfig::load(path).gpu_memory_limit, 22 * (int64_t(1) << 30));
  EXPECT_EQ(TrainConfig::load(path, {"gpu_memory_limit=24GB"}).gpu_memory_limit, 24'000'000'000);
  EXPECT_EQ(TrainConfig::load(path, {"gpu_memory_limit=500MiB"}).gpu_memory_limit, 500 * (int64_t(1) << 20));
  EXPECT_EQ(TrainConfig::load(path, {"gpu_memory_limit=123456789"}).gpu_memory_limit, 123456789);  // bytes
  EXPECT_EQ(TrainConfig::load(path, {"gpu_memory_limit=2.4e10"}).gpu_memory_limit, 24'000'000'000);

  EXPECT_EQ(parse_byte_size("1.5 GiB"), int64_t(3) << 29);
  EXPECT_EQ(parse_byte_size("80gib"), int64_t(80) << 30);
  EXPECT_EQ(parse_byte_size("512MB"), 512'000'000);
  EXPECT_EQ(parse_byte_size("64KiB"), 65536);
  EXPECT_EQ(parse_byte_size("1000"), 1000);
  for (const char* bad : {"", "GiB", "-1GiB", "0", "0GiB", "12 XB", "1e9", "22 GiB per GPU", "1.2.3GB"})
    EXPECT_FALSE(parse_byte_size(bad).has_value()) << bad;
}

TEST(TrainConfig, ErrorsNameTheFileAndTheKey) {
  struct Case {
    std::string body, message;
  };
  const std::vector<Case> cases = {
      {std::string(kMinimal) + "num_epoch: 3\n", ":5: unknown key 'num_epoch' (did you mean 'num_epochs'?)"},
      {std::string(kMinimal) + "micro_batch_size: 0\n", ":5: key 'micro_batch_size' must be at least 1"},  // with its YAML line
      {std::string(kMinimal) + "bf16: maybe\n", "key 'bf16' must be true, false or auto"},
      {std::string(kMinimal) + "offload_base: sometimes\n", "key 'offload_base' must be true, false or auto"},
      {std::string(kMinimal) + "lr_scheduler: cosin\n", "did you mean 'cosine'"},
      {std::string(kMinimal) + "train_on_eos: first\n", "train_on_eos must be turn, last, all or none"},
      {std::string(kMinimal) + "bnb_4bit_quant_type: int4\n", "key 'bnb_4bit_quant_type' is 'int4'; use one of: nf4, fp4"},
      {std::string(kMinimal) + "bnb_4bit_blocksize: 100\n", "key 'bnb_4bit_blocksize': blocksize 100 must be a power of two"},
      {"datasets:\n  - path: a.jsonl\n    type: alpaca\n", "key 'base_model' is required"},
      {"base_model: m\n", "key 'datasets' is required"},
      {"base_model: m\ndatasets:\n  - path: a.jsonl\n    type: alpacca\n", "alpaca"},
      {"base_model: [unclosed\n", "invalid YAML"},
      {"- just\n- a list\n", "expected a mapping"},
      // Preference training keys.
      {std::string(kMinimal) + "rl: dpo\n", "rl: dpo needs preference datasets (type: preference)"},
      {std::string(kPairs) + "rl: ppo\n", "key 'rl' is 'ppo'; use one of: dpo, ipo, orpo, simpo"},
      {std::string(kPairs) + "rl: dpo\ndpo_loss_type: sigmod\n", "did you mean 'sigmoid'"},
      {std::string(kPairs) + "rl: dpo\nrl_beta: 0\n", "key 'rl_beta' must be a positive number"},
      {std::string(kPairs) + "rl: dpo\ndpo_label_smoothing: 0.5\n", "key 'dpo_label_smoothing' must be in [0, 0.5)"},
      {std::string(kPairs) + "rl: orpo\norpo_alpha: -1\n", "key 'orpo_alpha' must be a number >= 0"},
      {std::string(kPairs) + "rl: dpo\nsample_packing: true\n", "sample_packing does not apply to rl: dpo"},
      {std::string(kPairs), "preference datasets (type: preference) need rl: dpo, ipo, orpo or simpo"},
      // Data parallel keys.
      {std::string(kMinimal) + "ddp_backend: mpi\n", "ddp_backend"},
      {std::string(kMinimal) + "ddp_timeout: 0\n", "key 'ddp_timeout' must be at least 1 (seconds)"},
      {std::string(kMinimal) + "ddp_bucket_cap_mb: 0\n", "key 'ddp_bucket_cap_mb' must be a positive number of MiB"},
      // Memory keys.
      {std::string(kMinimal) + "gpu_memory_limit: lots\n", ":5: key 'gpu_memory_limit' is \"lots\"; write a size such as 22GiB"},
      {std::string(kMinimal) + "gpu_memory_limit: 0\n", "key 'gpu_memory_limit' is 0; write a size"},
      {std::string(kMinimal) + "gpu_memory_limit: -3GiB\n", "key 'gpu_memory_limit' is \"-3GiB\""},
      {std::string(kMinimal) + "gpu_memory_limit: [22GiB]\n", "key 'gpu_memory_limit'"},
      {std::string(kMinimal) + "activation_offloading: yes please\n", "key 'activation_offloading' must be true or false"},
      // LoRA keys, checked by adapters/lora.h's validate_lora_options.
      {std::string(kMinimal) + "lora_r: 0\n", ":5: key 'lora_r': must be a positive integer"},
      {std::string(kMinimal) + "lora_dropout: 1.5\n", ":5: key 'lora_dropout': must be in [0, 1)"},
      {std::string(kMinimal) + "lora_init: xavier\n", ":5: key 'lora_init': 'xavier'"},
      {std::string(kMinimal) + "lora_target_modules: [qproj]\n", ":5: key 'lora_target_modules': unknown module 'qproj'"},
      // LoRA+.
      {std::string(kMinimal) + "loraplus_lr_ratio: -2\n", ":5: key 'loraplus_lr_ratio' must be a positive number"},
      {std::string(kMinimal) + "loraplus_lr_embedding: -1e-6\n", ":5: key 'loraplus_lr_embedding' must be a number >= 0"},
      {std::string(kMinimal) + "output_dir: ''\n", "key 'output_dir' must name a folder"},
  };
  for (const auto& c : cases) {
    const std::string path = write_config(c.body);
    try {
      TrainConfig::load(path);
      ADD_FAILURE() << "accepted: " << c.body;
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(c.message), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(TrainConfig::load("/nonexistent/config.yaml"), InputError);
}

}  // namespace
}  // namespace qtune
