// Shared pieces of the recipes.
#include "trainer/training_task.h"

#include <cmath>

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

void sum_across_ranks(Distributed* group, std::vector<double>& values) {
  if (group != nullptr) group->all_reduce_sum(values);
}

bool evaluates_batch(const Distributed* group, std::size_t index) {
  return group == nullptr || index % static_cast<std::size_t>(group->world_size()) == static_cast<std::size_t>(group->rank());
}

BatchSchedule::BatchSchedule(std::vector<std::size_t> row_lengths, PackingOptions options, int rank, int world)
    : row_lengths_(std::move(row_lengths)), options_(options), share_(options.micro_batch_size), rank_(rank) {
  options_.micro_batch_size *= static_cast<std::size_t>(world);
  per_epoch_ = plan_batches(row_lengths_, options_, 0).size();
}

std::vector<std::size_t> BatchSchedule::rows_of(int64_t micro_batch) {
  const uint64_t epoch = static_cast<uint64_t>(micro_batch) / per_epoch_;
  if (epoch != cached_epoch_) {
    batches_ = plan_batches(row_lengths_, options_, epoch);
    cached_epoch_ = epoch;
  }
  const auto& global = batches_[static_cast<std::size_t>(micro_batch) % per_epoch_];
  const std::size_t begin = std::min(global.size(), share_ * static_cast<std::size_t>(rank_));
  return {global.begin() + static_cast<std::ptrdiff_t>(begin), global.begin() + static_cast<std::ptrdiff_t>(std::min(global.size(), begin + share_))};
}

}  // namespace qtune
