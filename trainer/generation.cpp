// Token-by-token decoding.
#include "trainer/generation.h"

#include <algorithm>

namespace qtune {

std::vector<TokenId> generate(CausalLM& model, const std::vector<TokenId>& prompt, const GenerationOptions& options) {
  torch::NoGradGuard no_grad;
  model->eval();
  auto generator = at::make_generator<at::CPUGeneratorImpl>(options.seed);
  KVCache cache;
  std::vector<int64_t> ids(prompt.begin(), prompt.end());
  torch::Tensor input = torch::tensor(ids, torch::kLong).view({1, -1}).to(model->device());
  std::vector<TokenId> out;
  for (int64_t step = 0; step < options.max_new_tokens; ++step) {
    torch::Tensor logits = model->forward(input, std::nullopt, &cache).select(1, -1).squeeze(0).to(torch::kFloat).cpu();  // [V]
    TokenId next;
    if (options.temperature <= 0) {
      next = static_cast<TokenId>(logits.argmax().item<int64_t>());
    } else {
      torch::Tensor probs = torch::softmax(logits / options.temperature, -1);
      if (options.top_p < 1.0) {  // keep the smallest set of most likely tokens whose mass reaches top_p
        auto [sorted, order] = probs.sort(-1, true);
        torch::Tensor keep = (sorted.cumsum(-1) - sorted) < options.top_p;
        probs = torch::zeros_like(probs).scatter(0, order, sorted * keep);
      }
      next = static_cast<TokenId>(torch::multinomial(probs, 1, false, generator).item<int64_t>());
    }
    if (std::find(options.stop_ids.begin(), options.stop_ids.end(), next) != options.stop_ids.end()) break;
    out.push_back(next);
    input = torch::full({1, 1}, static_cast<int64_t>(next), torch::TensorOptions().dtype(torch::kLong).device(model->device()));
  }
  return out;
}

}  // namespace qtune
