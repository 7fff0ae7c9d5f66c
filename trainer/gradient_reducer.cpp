// Bucketed gradient sums across ranks.
#include "trainer/gradient_reducer.h"

namespace qtune {
namespace {

// Each trained tensor with its sum: A, B, and DoRA's m.
std::vector<std::pair<torch::Tensor, torch::Tensor*>> with_sums(LoraAdapterImpl& a, LoraGradientSums& s) {
  std::vector<std::pair<torch::Tensor, torch::Tensor*>> pairs = {{a.lora_A, &s.A}, {a.lora_B, &s.B}};
  if (a.magnitude.defined()) pairs.emplace_back(a.magnitude, &s.magnitude);
  return pairs;
}

LoraGradientSums zero_sums(const LoraAdapterImpl& a, at::ScalarType dtype) {
  auto zeros = [dtype](const torch::Tensor& t) { return t.defined() ? torch::zeros(t.sizes(), t.options().dtype(dtype)) : torch::Tensor(); };
  return {zeros(a.lora_A), zeros(a.lora_B), zeros(a.magnitude), nullptr};
}

int64_t sum_bytes(const LoraGradientSums& s) {
  const int64_t m = s.magnitude.defined() ? s.magnitude.numel() : 0;
  return (s.A.numel() + s.B.numel() + m) * static_cast<int64_t>(s.A.element_size());
}

}  // namespace

GradientReducer::GradientReducer(std::vector<LoraAdapterImpl*> adapters, at::ScalarType sum_dtype, Distributed* group, int64_t bucket_bytes)
    : adapters_(std::move(adapters)), group_(group), bucket_of_(adapters_.size()) {
  sums_.reserve(adapters_.size());
  for (LoraAdapterImpl* a : adapters_) sums_.push_back(zero_sums(*a, sum_dtype));
  int64_t filled = 0;
  for (std::size_t i = adapters_.size(); i-- > 0;) {
    if (buckets_.empty() || filled >= bucket_bytes) {
      buckets_.emplace_back();
      filled = 0;
    }
    buckets_.back().adapters.push_back(i);
    bucket_of_[i] = buckets_.size() - 1;
    filled += sum_bytes(sums_[i]);
  }
  for (std::size_t i = 0; i < adapters_.size(); ++i) {
    if (group_ != nullptr) sums_[i].added = [this, i] { added(i); };
    adapters_[i]->sum_gradients_into(&sums_[i]);
  }
}

GradientReducer::~GradientReducer() {
  for (LoraAdapterImpl* a : adapters_) a->sum_gradients_into(nullptr);
}

void GradientReducer::last_backward_begins() {
  armed_ = group_ != nullptr;
  for (auto& b : buckets_) b.waiting = b.adapters.size();
}

void GradientReducer::added(std::size_t adapter) {
  if (!armed_) return;  // an earlier micro-batch of the step: its gradients are not complete yet
  Bucket& bucket = buckets_[bucket_of_[adapter]];
  if (bucket.waiting > 0 && --bucket.waiting == 0) send_ready_buckets();
}

void GradientReducer::send_ready_buckets() {
  while (sent_ < buckets_.size() && buckets_[sent_].waiting == 0) send(buckets_[sent_++]);
}

void GradientReducer::send(Bucket& bucket) {
  std::vector<torch::Tensor> parts;
  for (std::size_t i : bucket.adapters)
    for (auto& [parameter, sum] : with_sums(*adapters_[i], sums_[i])) parts.push_back(sum->reshape({-1}));
  bucket.flat = torch::cat(parts);
  if (!group_->sums_on_gpu()) bucket.flat = bucket.flat.to(torch::kCPU);  // Gloo sums host memory
  group_->start_sum(bucket.flat);
}

void GradientReducer::finish() {
  torch::NoGradGuard no_grad;
  if (group_ != nullptr) {
    for (auto& b : buckets_) b.waiting = 0;  // a rank without rows this step sends them all now
    send_ready_buckets();
    group_->wait_started_sums();
    for (auto& bucket : buckets_) {
      int64_t offset = 0;
      for (std::size_t i : bucket.adapters)
        for (auto& [parameter, sum] : with_sums(*adapters_[i], sums_[i])) {
          sum->copy_(bucket.flat.slice(0, offset, offset + sum->numel()).view(sum->sizes()));
          offset += sum->numel();
        }
      bucket.flat = torch::Tensor();
    }
  }
  for (std::size_t i = 0; i < adapters_.size(); ++i)
    for (auto& [parameter, sum] : with_sums(*adapters_[i], sums_[i])) {
      // A copy even when the dtypes agree (float32 sums on a GPU): the sum is zeroed for the next step.
      parameter.mutable_grad() = sum->to(parameter.scalar_type(), /*non_blocking=*/false, /*copy=*/true);
      sum->zero_();
    }
  armed_ = false;
  sent_ = 0;
}

}  // namespace qtune
