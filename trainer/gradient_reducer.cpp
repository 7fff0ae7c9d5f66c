// Bucketed gradient sums across ranks.
#include "trainer/gradient_reducer.h"

namespace qtune {
namespace {

int64_t sum_bytes(const LoraAdapterImpl& a) {
  return (a.gradient_sum_A.numel() + a.gradient_sum_B.numel()) * static_cast<int64_t>(a.gradient_sum_A.element_size());
}

}  // namespace

GradientReducer::GradientReducer(std::vector<LoraAdapterImpl*> adapters, Distributed* group, int64_t bucket_bytes)
    : adapters_(std::move(adapters)), group_(group), bucket_of_(adapters_.size()) {
  int64_t filled = 0;
  for (std::size_t i = adapters_.size(); i-- > 0;) {
    if (buckets_.empty() || filled >= bucket_bytes) {
      buckets_.emplace_back();
      filled = 0;
    }
    buckets_.back().adapters.push_back(i);
    bucket_of_[i] = buckets_.size() - 1;
    filled += sum_bytes(*adapters_[i]);
  }
  if (group_ != nullptr)
    for (std::size_t i = 0; i < adapters_.size(); ++i) adapters_[i]->gradient_sums_added = [this, i] { added(i); };
}

GradientReducer::~GradientReducer() {
  for (LoraAdapterImpl* a : adapters_) a->gradient_sums_added = nullptr;
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
  for (std::size_t i : bucket.adapters) {
    parts.push_back(adapters_[i]->gradient_sum_A.reshape({-1}));
    parts.push_back(adapters_[i]->gradient_sum_B.reshape({-1}));
  }
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
        for (torch::Tensor* sum : {&adapters_[i]->gradient_sum_A, &adapters_[i]->gradient_sum_B}) {
          sum->copy_(bucket.flat.slice(0, offset, offset + sum->numel()).view(sum->sizes()));
          offset += sum->numel();
        }
      bucket.flat = torch::Tensor();
    }
  }
  for (LoraAdapterImpl* a : adapters_) {
    a->lora_A.mutable_grad() = a->gradient_sum_A.to(a->lora_A.scalar_type());
    a->lora_B.mutable_grad() = a->gradient_sum_B.to(a->lora_B.scalar_type());
    a->gradient_sum_A.zero_();
    a->gradient_sum_B.zero_();
  }
  armed_ = false;
  sent_ = 0;
}

}  // namespace qtune
