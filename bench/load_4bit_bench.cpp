// Loads a model with load-time 4-bit quantization (the path of `load_in_4bit: true`) and prints what the
// loaded model holds; run it under `/usr/bin/time -v` for the peak host RSS.
// Usage: qtune_bench_load4bit MODEL_DIR [nf4|fp4] [double|single] [stream]
// stream: the offload_base path: the layers loaded into host memory, then packed for streaming
// (models/layer_stream.h); host memory should stay at the 4-bit model plus one tensor and one layer.
#include <cstdio>
#include <string>

#include "models/model_loader.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: qtune_bench_load4bit MODEL_DIR [nf4|fp4] [double|single] [stream]\n");
    return 2;
  }
  qtune::LoadOptions options;
  options.dtype = at::kBFloat16;
  options.quantize = qtune::QuantizeOptions{qtune::parse_quant_type(argc > 2 ? argv[2] : "nf4", "type"), 64,
                                            !(argc > 3 && std::string(argv[3]) == "single")};
  const bool stream = argc > 4 && std::string(argv[4]) == "stream";
  options.layers_on_host = stream;
  qtune::CausalLM model = qtune::load_causal_lm(argv[1], options);
  if (stream) model->stream_layers_from_host();
  int64_t four_bit_params = 0, four_bit_bytes = 0, other_params = 0, other_bytes = 0;
  for (const auto& [name, linear] : model->projections()) {
    four_bit_params += linear->weight().in_features() * linear->weight().out_features();
    four_bit_bytes += linear->weight().storage_bytes();
  }
  for (const auto& t : model->buffers()) other_params += t.numel(), other_bytes += t.numel() * static_cast<int64_t>(t.element_size());
  for (const auto& t : model->parameters()) other_params += t.numel(), other_bytes += t.numel() * static_cast<int64_t>(t.element_size());
  const auto& head = model->lm_head->weight();
  std::printf("{\"four_bit_params\":%lld,\"four_bit_bytes\":%lld,\"bytes_per_param_4bit\":%.4f,\"lm_head_bytes\":%lld,\"other_params\":%lld,"
              "\"other_bytes\":%lld}\n",
              static_cast<long long>(four_bit_params), static_cast<long long>(four_bit_bytes),
              static_cast<double>(four_bit_bytes) / static_cast<double>(four_bit_params), static_cast<long long>(head.storage_bytes()),
              static_cast<long long>(other_params), static_cast<long long>(other_bytes));
  return 0;
}
