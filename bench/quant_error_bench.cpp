// Error of each 4-bit format on synthetic weights (normal, and heavy-tailed Student-t with 3 degrees of
// freedom), block 64: RMS error relative to the weights' RMS, mean absolute error, storage bits/weight.
// Usage: qtune_bench_quant_error [N]
#include <cstdio>
#include <cstdlib>

#include "kernels/blockwise_quant.h"

int main(int argc, char** argv) {
  const int64_t n = argc > 1 ? std::atoll(argv[1]) : (int64_t(1) << 24);
  at::manual_seed(0);
  const at::Tensor normal = at::randn({n}) * 0.02;
  // Student-t(3) = N(0,1) / sqrt(chi2(3) / 3), chi2(3) as a sum of three squared normals.
  const at::Tensor chi2 = at::randn({n}).pow(2) + at::randn({n}).pow(2) + at::randn({n}).pow(2);
  const at::Tensor heavy = at::randn({n}) / (chi2 / 3).sqrt() * 0.02;
  for (const auto& [name, w] : {std::pair<const char*, at::Tensor>{"normal", normal}, {"student_t3", heavy}}) {
    for (qtune::QuantType type : {qtune::QuantType::NF4, qtune::QuantType::FP4}) {
      for (bool nested : {false, true}) {
        qtune::Quantized4bit q = qtune::quantize_4bit(w, type, 64, nested, "bench");
        const at::Tensor error = qtune::dequantize_4bit(q, at::kFloat) - w;
        const double rel_rms = (error.pow(2).mean().sqrt() / w.pow(2).mean().sqrt()).item<double>();
        std::printf("{\"weights\":\"%s\",\"format\":\"%s%s\",\"relative_rms_error\":%.5f,\"mean_abs_error\":%.3e,\"bits_per_weight\":%.4f}\n", name,
                    qtune::quant_type_name(type), nested ? "-dq" : "", rel_rms, error.abs().mean().item<double>(),
                    8.0 * static_cast<double>(q.storage_bytes()) / static_cast<double>(n));
      }
    }
  }
  return 0;
}
