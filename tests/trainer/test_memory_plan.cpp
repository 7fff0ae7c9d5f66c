// The memory plan against real objects and published figures: its 4-bit bytes against the quantizer's
// storage, its LoRA count against injected adapters, its slot size against the streamer's, its Llama-3-70B
// parameter count against Meta's published 70.55B; and its choices under a budget: a 70B model under
// 22 GiB streams its layers, an 8B one under 24 GiB does not.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include "adapters/lora.h"
#include "core/error.h"
#include "models/architecture.h"
#include "models/init_model.h"
#include "models/model_loader.h"
#include "tests/support/test_support.h"
#include "trainer/device_probe.h"
#include "trainer/memory_plan.h"

namespace qtune {
namespace {

TrainConfig config(const std::string& extra_json = "{}") {
  nlohmann::json doc = {{"base_model", "model"}, {"datasets", {{{"path", "train.jsonl"}, {"type", "alpaca"}}}}, {"sequence_len", 2048},
                        {"lora_r", 16},          {"lora_target_linear", true}};
  doc.update(nlohmann::json::parse(extra_json));
  return TrainConfig::from_json(doc, "test.yaml", "/tmp");
}

ModelConfig llama3(int64_t hidden, int64_t layers, int64_t heads, int64_t ffn) {
  return ModelConfig::from_json({{"architectures", {"LlamaForCausalLM"}}, {"model_type", "llama"}, {"hidden_size", hidden},
                                 {"intermediate_size", ffn}, {"num_attention_heads", heads}, {"num_key_value_heads", 8},
                                 {"num_hidden_layers", layers}, {"vocab_size", 128256}, {"rms_norm_eps", 1e-5}, {"rope_theta", 500000.0},
                                 {"max_position_embeddings", 8192}, {"tie_word_embeddings", false}},
                                "llama3");
}

DeviceFacts gpu(int64_t budget_gib) {
  DeviceFacts f;
  f.name = "cuda:0";
  f.cuda = true;
  f.budget_bytes = budget_gib << 30;
  f.budget_source = "gpu_memory_limit";
  f.compute_bytes = 2;
  f.fused_attention = true;
  return f;
}

const MemoryPlan::Item& item(const std::vector<MemoryPlan::Item>& items, const std::string& starts) {
  for (const auto& i : items)
    if (i.what.rfind(starts, 0) == 0) return i;
  throw std::runtime_error("no plan item " + starts);
}

TEST(MemoryPlan, FourBitBytesAreWhatTheQuantizerStores) {
  for (bool dq : {false, true})
    for (const auto& shape : std::vector<std::vector<int64_t>>{{64, 64}, {96, 200}, {300, 1000}, {7, 9}}) {
      const Quantized4bit q = quantize_4bit(torch::randn(shape), QuantType::NF4, 64, dq, "test");
      EXPECT_EQ(four_bit_weight_bytes(shape[0] * shape[1], 64, dq), q.storage_bytes()) << shape[0] << "x" << shape[1] << " dq " << dq;
    }
}

TEST(MemoryPlan, SizesMatchTheLoadedModelTheAdaptersAndTheStreamer) {
  const std::string dir = test::make_tiny_model("qwen2", "--layers 3");  // qkv biases
  const ModelConfig model_config = ModelConfig::load(dir);
  DeviceFacts cpu;
  const TrainConfig c = config(R"({"offload_base": true, "lora_target_linear": false, "lora_target_modules": ["q_proj", "down_proj"], "lora_r": 4})");
  const MemoryPlan plan = plan_memory(model_config, QuantizeOptions{}, c, cpu);

  LoadOptions options;
  options.quantize = QuantizeOptions{};
  CausalLM model = load_causal_lm(dir, options);
  int64_t four_bit = 0;
  for (auto& [name, linear] : model->projections()) four_bit += linear->weight().storage_bytes();
  EXPECT_EQ(item(plan.host, "3 decoder layers").bytes, four_bit);
  int64_t other = 0;
  for (const auto& b : model->buffers()) other += b.numel() * 4;  // embeddings, norms, biases (float32 on the CPU)
  if (!model_config.tie_word_embeddings) other += model->lm_head->weight().storage_bytes();
  EXPECT_EQ(item(plan.device, "embeddings").bytes, other);

  LoraOptions lora;
  lora.r = 4;
  lora.target_modules = {"q_proj", "down_proj"};
  inject_lora(model, lora, 1);
  int64_t lora_parameters = 0;
  for (auto& [name, p] : lora_state(model)) lora_parameters += p.numel();
  EXPECT_EQ(item(plan.device, "LoRA r=4").bytes, 20 * lora_parameters);

  model->set_gradient_checkpointing(true);
  model->stream_layers_from_host();
  const int64_t slots = item(plan.device, "2 slots").bytes;
  EXPECT_LE(slots, 2 * model->layer_stream()->slot_bytes());
  EXPECT_GE(slots + 2 * 7 * 5 * 256, 2 * model->layer_stream()->slot_bytes());  // the streamer aligns each tensor to 256 bytes
  EXPECT_EQ(plan.layer_copy_bytes * 2, slots);
  EXPECT_TRUE(plan.gradient_checkpointing);
}

// Mixture of experts, against a real model whose layers differ: layer 1 keeps a dense MLP (mlp_only_layers), layers 0
// and 2 are a router and 4 experts. Every expert is in the 4-bit bytes, the routers stay dense on the device.
TEST(MemoryPlan, MixtureOfExpertsSizesMatchTheLoadedModelTheAdaptersAndTheStreamer) {
  InitModelOptions init;
  init.config = ModelConfig::preset(Architecture::kQwen3Moe);
  init.config.vocab_size = 300, init.config.hidden_size = 64, init.config.num_heads = 4, init.config.num_kv_heads = 2, init.config.head_dim = 16;
  init.config.num_layers = 3, init.config.intermediate_size = 160, init.config.moe_intermediate_size = 48;
  init.config.num_experts = 4, init.config.num_experts_per_tok = 2, init.config.mlp_only_layers = {1};
  init.config.bos_token_id.reset(), init.config.eos_token_ids.clear();
  init.out_dir = test::temp_dir("moe_plan");
  init.dtype = at::kFloat;
  write_random_model(init);
  const ModelConfig model_config = ModelConfig::load(init.out_dir);
  ASSERT_FALSE(model_config.is_sparse_layer(1));
  const TrainConfig c = config(R"({"offload_base": true, "lora_target_linear": false, "lora_target_modules": ["q_proj", "down_proj"], "lora_r": 4})");
  const MemoryPlan plan = plan_memory(model_config, QuantizeOptions{}, c, DeviceFacts{});

  LoadOptions options;
  options.quantize = QuantizeOptions{};
  CausalLM model = load_causal_lm(init.out_dir, options);
  int64_t four_bit = 0, routers = 0, experts = 0;
  for (auto& [name, linear] : model->projections()) {
    const bool router = name.size() > 5 && name.compare(name.size() - 5, 5, ".gate") == 0;
    (router ? routers : four_bit) += linear->weight().storage_bytes();
    experts += name.find(".experts.") != std::string::npos;
    if (router) EXPECT_EQ(linear->weight().format(), "f32") << name;  // dense, in the compute dtype
  }
  EXPECT_EQ(experts, 2 * 4 * 3);
  EXPECT_EQ(routers, 2 * 4 * 64 * 4);
  EXPECT_EQ(item(plan.host, "3 decoder layers").bytes, four_bit);
  int64_t other = routers;
  for (const auto& b : model->buffers()) other += b.numel() * 4;  // embeddings, norms (float32 on the CPU)
  other += model->lm_head->weight().storage_bytes();
  EXPECT_EQ(item(plan.device, "embeddings, lm_head, norms, biases and routers").bytes, other);

  LoraOptions lora;
  lora.r = 4;
  lora.target_modules = {"q_proj", "down_proj"};  // the dense layer's down_proj and every expert's
  inject_lora(model, lora, 1);
  int64_t lora_parameters = 0;
  for (auto& [name, p] : lora_state(model)) lora_parameters += p.numel();
  EXPECT_EQ(item(plan.device, "LoRA r=4").bytes, 20 * lora_parameters);

  model->set_gradient_checkpointing(true);
  model->stream_layers_from_host();
  const int64_t slots = item(plan.device, "2 slots").bytes;  // two of the largest (sparse) layer
  EXPECT_LE(slots, 2 * model->layer_stream()->slot_bytes());
  EXPECT_GE(slots + 2 * 16 * 5 * 256, 2 * model->layer_stream()->slot_bytes());  // 16 projections, 5 tensors each, aligned to 256 bytes
  EXPECT_EQ(plan.layer_copy_bytes * 2, slots);
}

// Qwen3-30B-A3B (tests/fixtures/model_configs): 30.5B parameters in the 4-bit bytes, 3.35B per token in the FLOPs.
TEST(MemoryPlan, Qwen3ThirtyBA3BCountsEveryExpertInMemoryAndTheRoutedOnesInTime) {
  const ModelConfig m = ModelConfig::load(std::string(QTUNE_SOURCE_DIR) + "/tests/fixtures/model_configs/qwen3_30b_a3b.json");
  const ParameterCounts p = count_parameters(m);
  DeviceFacts f = gpu(24);
  f.matmul_flops_per_s = 100e12;
  const std::string attention_only = R"({"gradient_checkpointing": true, "lora_target_linear": false,
                                         "lora_target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]})";
  const MemoryPlan plan = plan_memory(m, QuantizeOptions{}, config(attention_only), f);
  EXPECT_TRUE(plan.fits) << plan.describe();
  EXPECT_FALSE(plan.offload_base) << plan.describe();
  EXPECT_EQ(item(plan.device, "LoRA r=16").bytes, 20 * 48 * 16 * ((2048 + 4096) * 2 + (2048 + 512) * 2));
  // LoRA on every projection adapts all 128 experts' too: 16·(2048 + 768)·3 per expert, 35 times the parameters.
  const MemoryPlan all_linear = plan_memory(m, QuantizeOptions{}, config(R"({"gradient_checkpointing": true})"), f);
  EXPECT_EQ(item(all_linear.device, "LoRA r=16").bytes, int64_t{20} * 48 * (16 * ((2048 + 4096) * 2 + (2048 + 512) * 2) + 128 * 16 * (2048 + 768) * 3));
  // Every expert at about 4.13 bits per weight (double quantization); the routers, embeddings and lm_head at 2 bytes.
  const int64_t layers = item(plan.device, "48 decoder layers").bytes;
  EXPECT_NEAR(static_cast<double>(layers) * 8 / static_cast<double>(p.decoder_projections), 4.127, 0.01);
  EXPECT_EQ(item(plan.device, "embeddings, lm_head, norms, biases and routers").bytes, 2 * (p.total() - p.decoder_projections));
  // FLOPs per token: 3 passes (forward, recompute, backward) of 2 FLOPs per projection weight a token uses (attention,
  // router, 8 of 128 experts: 48 · 56,885,248), causal attention 2·T·width forward and twice that backward plus the
  // recompute, lm_head forward and backward; times 2048 tokens.
  const double P = 48.0 * (2.0 * 2048 * 4096 + 2.0 * 2048 * 512 + 128.0 * 2048 + 8.0 * 3 * 2048 * 768);
  const double attention = 2.0 * 48 * 2048 * 4096;
  const double flops = 2048.0 * (3 * 2 * P + 4 * attention + 4.0 * 151936 * 2048);
  EXPECT_NEAR(plan.compute_seconds_per_step, flops / 100e12, 1e-9);
}

TEST(MemoryPlan, Llama3SeventyBUnder22GiBStreamsItsLayers) {
  const ModelConfig m = llama3(8192, 80, 64, 28672);
  const ParameterCounts p = count_parameters(m);
  EXPECT_NEAR(static_cast<double>(p.total()), 70.55e9, 0.01e9);  // Meta's model card: 70.55B (70,553,706,496)
  const MemoryPlan plan = plan_memory(m, QuantizeOptions{}, config(), gpu(22));
  EXPECT_TRUE(plan.fits) << plan.describe();
  EXPECT_TRUE(plan.offload_base);
  EXPECT_TRUE(plan.gradient_checkpointing);
  EXPECT_EQ(plan.turned_on, (std::vector<std::string>{"gradient_checkpointing", "offload_base"})) << plan.describe();
  EXPECT_LE(plan.device_bytes(), int64_t{22} << 30);
  // About 4.13 bits per projection weight (QLoRA's double quantization), on the host.
  const int64_t host_layers = item(plan.host, "80 decoder layers").bytes;
  EXPECT_NEAR(static_cast<double>(host_layers) * 8 / static_cast<double>(p.decoder_projections), 4.127, 0.01);
  EXPECT_EQ(plan.transfer_bytes_per_step, 2 * 78 * host_layers / 80);
  // DPO scores the reference model first: one more forward, L more layer copies (tests/models/test_layer_stream.cpp).
  const MemoryPlan dpo = plan_memory(m, QuantizeOptions{}, config(R"({"rl": "dpo", "datasets": [{"path": "p.jsonl", "type": "preference"}]})"), gpu(22));
  EXPECT_EQ(dpo.transfer_bytes_per_step, (78 + 80 + 78) * host_layers / 80);
  // r = 16 on all seven projections: 16·(in + out) summed, per layer, times 80.
  const int64_t per_layer = 16 * ((8192 + 8192) * 2 + (8192 + 1024) * 2 + (8192 + 28672) * 3);
  EXPECT_EQ(item(plan.device, "LoRA r=16").bytes, 20 * 80 * per_layer);
  EXPECT_NE(plan.describe().find("turned on to fit: gradient_checkpointing, offload_base"), std::string::npos) << plan.describe();
}

TEST(MemoryPlan, EightBUnder24GiBStaysResidentAndOffloadBaseFalseIsObeyed) {
  const MemoryPlan eight = plan_memory(llama3(4096, 32, 32, 14336), QuantizeOptions{}, config(R"({"gradient_checkpointing": true})"), gpu(24));
  EXPECT_TRUE(eight.fits) << eight.describe();
  EXPECT_FALSE(eight.offload_base);
  EXPECT_TRUE(eight.turned_on.empty());
  EXPECT_EQ(eight.transfer_bytes_per_step, 0);

  const MemoryPlan refused = plan_memory(llama3(8192, 80, 64, 28672), QuantizeOptions{}, config(R"({"offload_base": false})"), gpu(22));
  EXPECT_FALSE(refused.offload_base);
  EXPECT_FALSE(refused.fits);
  EXPECT_NE(refused.describe().find("over the budget"), std::string::npos) << refused.describe();
}

TEST(MemoryPlan, ExpectedStepTimeIsTheSlowerOfComputeAndCopies) {
  DeviceFacts f = gpu(22);
  f.matmul_flops_per_s = 500e12;
  f.host_to_device_bytes_per_s = 25e9;
  const MemoryPlan plan = plan_memory(llama3(8192, 80, 64, 28672), QuantizeOptions{}, config(), f);
  EXPECT_NEAR(plan.transfer_seconds_per_step, static_cast<double>(plan.transfer_bytes_per_step) / 25e9, 1e-9);
  // 2048 tokens · (3 passes · 2·68.45e9 + attention + lm_head) / 500 TFLOP/s ≈ 1.74 s: copy-bound at 25 GB/s.
  EXPECT_NEAR(plan.compute_seconds_per_step, 1.74, 0.01);
  EXPECT_NE(plan.describe().find("copy-bound"), std::string::npos) << plan.describe();
}

TEST(MemoryPlan, SplitsTheMicroBatchWhenNothingElseFits) {
  const ModelConfig m = llama3(8192, 80, 64, 28672);
  const TrainConfig requested = config(R"({"micro_batch_size": 32, "gradient_accumulation_steps": 2})");
  const MemoryPlan plan = plan_memory(m, QuantizeOptions{}, requested, gpu(22));
  EXPECT_TRUE(plan.fits) << plan.describe();
  EXPECT_TRUE(plan.offload_base && plan.activation_offloading) << plan.describe();
  ASSERT_LT(plan.micro_batch_size, 32);
  EXPECT_EQ(32 % plan.micro_batch_size, 0);
  EXPECT_EQ(plan.micro_batch_size * plan.gradient_accumulation_steps, 64);  // the step's rows are unchanged
  // The largest split that fits: the next larger divisor of 32 does not.
  const MemoryPlan larger = plan_memory(m, QuantizeOptions{}, config(fmt::format(R"({{"micro_batch_size": {}, "offload_base": true,
      "activation_offloading": true}})", plan.micro_batch_size * 2)), gpu(22));
  EXPECT_NE(larger.micro_batch_size, plan.micro_batch_size * 2) << larger.describe();
  EXPECT_NE(plan.describe().find(fmt::format("micro_batch_size 32 -> {} with gradient_accumulation_steps 2 -> {}", plan.micro_batch_size,
                                             plan.gradient_accumulation_steps)),
            std::string::npos)
      << plan.describe();
  const TrainConfig run = planned_config(requested, plan);
  EXPECT_EQ(run.offload_base, TriState::on);
  EXPECT_TRUE(run.gradient_checkpointing && run.activation_offloading);
  EXPECT_EQ(run.micro_batch_size, plan.micro_batch_size);
  EXPECT_EQ(run.gradient_accumulation_steps, plan.gradient_accumulation_steps);
}

TEST(MemoryPlan, SaysWhenTheHostCannotHoldWhatIsOffloaded) {
  DeviceFacts f = gpu(22);
  f.host_available_bytes = int64_t{24} << 30;  // a 24 GiB machine: 32.89 GiB of 70B layers do not fit
  const MemoryPlan plan = plan_memory(llama3(8192, 80, 64, 28672), QuantizeOptions{}, config(), f);
  EXPECT_NE(plan.describe().find("host memory: the plan keeps 32.89 GiB there but only 24.00 GiB is available"), std::string::npos)
      << plan.describe();
  f.host_available_bytes = int64_t{64} << 30;
  EXPECT_EQ(plan_memory(llama3(8192, 80, 64, 28672), QuantizeOptions{}, config(), f).describe().find("host memory:"), std::string::npos);
  EXPECT_GT(available_host_memory_bytes(), 0);  // this Linux machine's /proc/meminfo
}

TEST(MemoryPlan, OffloadBaseNeedsAFourBitBase) {
  EXPECT_THROW(plan_memory(llama3(4096, 32, 32, 14336), std::nullopt, config(R"({"offload_base": true})"), gpu(24)), InputError);
}

}  // namespace
}  // namespace qtune
