// LoRA start values: random, PiSSA and OLoRA.
#include "adapters/lora_init.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

#include "core/error.h"
#include "models/linear4bit.h"

namespace qtune {
namespace {

const std::string kNiter = "pissa_niter_";

// N of pissa_niter_N, or -1 when `init` is not of that form.
int64_t pissa_iterations(const std::string& init) {
  if (init.rfind(kNiter, 0) != 0 || init.size() == kNiter.size() || init.size() > kNiter.size() + 4) return -1;
  for (std::size_t i = kNiter.size(); i < init.size(); ++i)
    if (init[i] < '0' || init[i] > '9') return -1;
  return std::stoll(init.substr(kNiter.size()));
}

torch::Tensor orthonormal_basis(const torch::Tensor& x) { return std::get<0>(torch::linalg_qr(x)); }

// torch.svd_lowrank(w, q, niter) (Halko et al. 2009, algorithm 5.1) for a tall or wide w: (U, S, V) with w ≈ U·diag(S)·Vᵀ.
std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> randomized_svd(const torch::Tensor& w, int64_t q, int64_t niter, uint64_t seed) {
  const bool wide = w.size(0) < w.size(1);
  const torch::Tensor a = wide ? w.t() : w;  // tall
  auto generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  torch::Tensor basis = orthonormal_basis(torch::matmul(a, at::normal(0.0, 1.0, {a.size(1), q}, generator).to(a.device())));
  for (int64_t i = 0; i < niter; ++i) {
    basis = orthonormal_basis(torch::matmul(a.t(), basis));
    basis = orthonormal_basis(torch::matmul(a, basis));
  }
  auto [u, s, vh] = torch::linalg_svd(torch::matmul(basis.t(), a), /*full_matrices=*/false);
  torch::Tensor left = torch::matmul(basis, u), right = vh.t();
  if (wide) std::swap(left, right);
  return {left, s, right};
}

LoraStart pissa_start(const torch::Tensor& w, int64_t r, double scale, int64_t niter, uint64_t seed) {
  torch::Tensor v, s, u;  // w ≈ v·diag(s)·uᵀ, v [out, R], u [in, R]
  if (niter < 0) {
    auto [full_v, full_s, full_uh] = torch::linalg_svd(w, /*full_matrices=*/false);
    v = full_v.slice(1, 0, r), s = full_s.slice(0, 0, r), u = full_uh.slice(0, 0, r).t();
  } else {
    std::tie(v, s, u) = randomized_svd(w, r, niter, seed);
  }
  const torch::Tensor root = (s / scale).sqrt();
  return {root.unsqueeze(1) * u.t(), v * root.unsqueeze(0), torch::Tensor()};
}

LoraStart olora_start(const torch::Tensor& w, int64_t r) {
  auto [q, upper] = torch::linalg_qr(w);
  return {upper.slice(0, 0, r).contiguous(), q.slice(1, 0, r).contiguous(), torch::Tensor()};
}

}  // namespace

void check_lora_init(const std::string& init) {
  if (init == "kaiming" || init == "gaussian" || init == "pissa" || init == "olora" || pissa_iterations(init) >= 0) return;
  input_error("lora_init: '{}' is not supported (use kaiming, gaussian, pissa, pissa_niter_N such as pissa_niter_4, or olora)", init);
}

bool init_uses_base(const std::string& init) { return init == "pissa" || init == "olora" || pissa_iterations(init) >= 0; }

LoraStart random_lora_start(const std::string& init, int64_t in_features, int64_t out_features, int64_t r, uint64_t seed) {
  auto generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  torch::Tensor a;  // drawn in float32: the same values whatever the master dtype
  if (init == "gaussian") {
    a = at::normal(0.0, 1.0 / static_cast<double>(r), {r, in_features}, generator);  // PEFT: normal_(A, std=1/R)
  } else {
    // PEFT's default, kaiming_uniform_(A, a=√5) = nn.Linear's init: gain √(2/(1+5)), bound = √3·gain/√in = 1/√in.
    const double bound = 1.0 / std::sqrt(static_cast<double>(in_features));
    a = torch::empty({r, in_features}, torch::kFloat).uniform_(-bound, bound, generator);
  }
  return {a, torch::zeros({out_features, r}, torch::kFloat), torch::Tensor()};
}

LoraStart lora_start_from_base(const std::string& init, const torch::Tensor& w, int64_t r, double scale, uint64_t seed) {
  torch::NoGradGuard no_grad;
  if (r > std::min(w.size(0), w.size(1)))
    input_error("lora_init: {} needs lora_r <= min(out, in) = {} of every adapted projection, got {}", init, std::min(w.size(0), w.size(1)), r);
  const torch::Tensor w32 = w.to(torch::kFloat);
  LoraStart start = init == "olora" ? olora_start(w32, r) : pissa_start(w32, r, scale, pissa_iterations(init), seed);
  start.residual = w32 - torch::matmul(start.B, start.A) * scale;
  return start;
}

std::shared_ptr<FrozenWeight> same_format_weight(const FrozenWeight& like, const torch::Tensor& w) {
  if (const auto* quantized = dynamic_cast<const QuantizedWeight*>(&like)) {
    const Quantized4bit& old = quantized->quantized();
    Quantized4bit q = quantize_4bit(w.to(torch::kFloat).contiguous(), old.type, old.blocksize, old.scales.nested, "the LoRA residual weight");
    q.dtype = old.dtype;  // dequantized as before, in the dtype the base had
    return std::make_shared<QuantizedWeight>(std::move(q));
  }
  return std::make_shared<DenseWeight>(w.to(like.dequantize().scalar_type()));
}

}  // namespace qtune
