// Shared pieces of the recipes.
#include "trainer/training_task.h"

#include <cmath>

#include "trainer/data_report.h"

namespace qtune {

DeviceBatch to_device(const Batch& b, torch::Device device) {
  auto as_tensor = [&](const std::vector<int32_t>& v) {
    return torch::from_blob(const_cast<int32_t*>(v.data()), {static_cast<int64_t>(b.rows), static_cast<int64_t>(b.width)}, torch::kInt32)
        .to(device, torch::kLong);
  };
  DeviceBatch d{as_tensor(b.input_ids), as_tensor(b.labels), {as_tensor(b.segment_ids), as_tensor(b.position_ids)}, 0, 0};
  d.trained_tokens = static_cast<int64_t>(b.trained_tokens);
  for (int32_t s : b.segment_ids) d.tokens += s != 0;
  return d;
}

torch::Tensor next_token_targets(const torch::Tensor& labels) {
  return torch::cat({labels.slice(1, 1), torch::full({labels.size(0), 1}, -100, labels.options())}, 1);
}

double load_balancing_weight(CausalLM& model, double moe_aux_loss_coef, bool trainer_adds) {
  if (model->router_balance() == nullptr) return 0;
  if (moe_aux_loss_coef > 0) return moe_aux_loss_coef;
  return model->config().output_router_logits || trainer_adds ? model->config().router_aux_loss_coef : 0;
}

void sum_across_ranks(Distributed* group, std::vector<double>& values) {
  if (group != nullptr) group->all_reduce_sum(values);
}

BatchSource batch_source(const PreparedData& data, const SampleSet& samples, const TrainConfig& config, const Distributed* group) {
  return BatchSource(samples, data.pairs, config.packing_options(), group ? group->rank() : 0, group ? group->world_size() : 1);
}

}  // namespace qtune
