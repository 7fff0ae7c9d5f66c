// A whole LoRA training forward/backward on CUDA against the same on the CPU: the 4-bit base, the fused
// RMSNorm/RoPE/SwiGLU kernels, scaled_dot_product_attention (causal and masked), the LoRA term added into
// the base output, the chunked loss, checkpointing with offloaded layer inputs. Skipped without a CUDA
// build or a GPU (ctest -L cuda).
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include "adapters/lora.h"
#include "models/chunked_log_probs.h"
#include "models/model_loader.h"
#include "tests/support/test_support.h"

namespace qtune {
namespace {

struct Outcome {
  double loss = 0;
  std::vector<torch::Tensor> gradients;  // on the CPU, float32, in lora_state order
};

// One forward/backward of the summed next-token loss with LoRA (r 4, B drawn so the adapters matter).
// stream_layers: offload_base, the 4-bit layers streamed from pinned host memory (needs checkpointing).
Outcome train_once(const std::string& model_dir, torch::Device device, at::ScalarType dtype, bool padded, bool checkpoint_and_offload,
                   bool stream_layers = false) {
  LoadOptions options;
  options.device = device;
  options.dtype = dtype;
  options.quantize = QuantizeOptions{};
  options.layers_on_host = stream_layers;
  CausalLM model = load_causal_lm(model_dir, options);
  LoraOptions lora;
  lora.r = 4;
  lora.dropout = 0;
  lora.target_linear = true;
  inject_lora(model, lora, 3);
  auto generator = at::make_generator<at::CPUGeneratorImpl>(17);
  for (auto& [name, p] : lora_state(model)) {
    torch::NoGradGuard no_grad;
    p.copy_(at::normal(0.0, 0.05, p.sizes(), generator));  // drawn on the CPU: the same on both devices
  }
  model->set_gradient_checkpointing(checkpoint_and_offload);
  model->set_activation_offloading(checkpoint_and_offload);
  if (stream_layers) model->stream_layers_from_host();
  torch::manual_seed(5);
  const int64_t B = 3, T = 37;
  const torch::Tensor ids = torch::randint(3, 300, {B, T});
  torch::Tensor targets = torch::randint(3, 300, {B, T});
  SequenceLayout layout = SequenceLayout::dense(B, T);
  if (padded) {
    torch::Tensor mask = torch::ones({B, T}, torch::kLong);
    mask.index_put_({1, torch::indexing::Slice(25)}, 0);
    targets.index_put_({1, torch::indexing::Slice(24)}, -100);
    layout = SequenceLayout::from_attention_mask(mask);
  }
  const SequenceLayout on_device{layout.segment_ids.to(device), layout.position_ids.to(device)};
  const torch::Tensor loss = -target_scores(model, ids.to(device), on_device, targets.to(device)).log_probs.sum(torch::kDouble);
  loss.backward();
  Outcome out{loss.item<double>(), {}};
  for (auto& [name, p] : lora_state(model)) out.gradients.push_back(p.grad().to(torch::kCPU, torch::kFloat));
  return out;
}

void expect_close(const Outcome& got, const Outcome& expected, double tolerance) {
  EXPECT_NEAR(got.loss, expected.loss, tolerance * std::abs(expected.loss));
  ASSERT_EQ(got.gradients.size(), expected.gradients.size());
  for (std::size_t i = 0; i < got.gradients.size(); ++i) EXPECT_LE(test::max_relative_error(got.gradients[i], expected.gradients[i]), tolerance) << i;
}

TEST(ModelCuda, Float32LossAndLoraGradientsEqualTheCpu) {
  QTUNE_SKIP_WITHOUT_GPU();
  for (const auto& [arch, extra] : std::vector<std::pair<std::string, std::string>>{{"llama", ""}, {"qwen3", ""}, {"mistral", "--sliding-window 16"}}) {
    const std::string dir = test::make_tiny_model(arch, extra);
    for (bool padded : {false, true}) {
      SCOPED_TRACE(arch + (padded ? " padded" : " dense"));
      const Outcome cpu = train_once(dir, torch::kCPU, at::kFloat, padded, false);
      expect_close(train_once(dir, torch::kCUDA, at::kFloat, padded, false), cpu, 1e-4);
      expect_close(train_once(dir, torch::kCUDA, at::kFloat, padded, true), cpu, 1e-4);  // checkpointing + offload
      expect_close(train_once(dir, torch::kCUDA, at::kFloat, padded, true, true), cpu, 1e-4);  // + layers streamed
    }
  }
}

TEST(ModelCuda, Bfloat16StaysCloseToFloat32) {
  QTUNE_SKIP_WITHOUT_GPU();
  const std::string dir = test::make_tiny_model("llama");
  const Outcome reference = train_once(dir, torch::kCPU, at::kFloat, false, false);
  const Outcome bf16 = train_once(dir, torch::kCUDA, at::kBFloat16, false, true);
  EXPECT_NEAR(bf16.loss, reference.loss, 2e-2 * std::abs(reference.loss));
  for (std::size_t i = 0; i < bf16.gradients.size(); ++i) EXPECT_LE(test::max_relative_error(bf16.gradients[i], reference.gradients[i]), 0.1) << i;
}

// Streaming changes where the weights wait, not what is computed: the same numbers as resident on the GPU.
TEST(ModelCuda, StreamedLayersComputeWhatResidentOnesDo) {
  QTUNE_SKIP_WITHOUT_GPU();
  const std::string dir = test::make_tiny_model("llama", "--layers 5");
  const Outcome resident = train_once(dir, torch::kCUDA, at::kBFloat16, false, true);
  expect_close(train_once(dir, torch::kCUDA, at::kBFloat16, false, true, true), resident, 1e-6);
}

}  // namespace
}  // namespace qtune
