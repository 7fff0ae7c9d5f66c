// SequenceLayout constructors and the visibility mask.
#include "models/sequence_layout.h"

namespace qtune {
namespace {

// Positions that restart at every change of segment id: index - index of the segment's first token.
torch::Tensor positions_from_segments(const torch::Tensor& segments) {
  const int64_t T = segments.size(1);
  auto index = torch::arange(T, segments.options()).expand_as(segments);
  auto is_start = torch::ones_like(segments, torch::kBool);
  if (T > 1) is_start.slice(1, 1) = segments.slice(1, 1) != segments.slice(1, 0, T - 1);
  auto start_index = std::get<0>(torch::where(is_start, index, torch::zeros_like(index)).cummax(1));
  return index - start_index;
}

}  // namespace

SequenceLayout SequenceLayout::dense(int64_t batch, int64_t tokens, torch::Device device) {
  auto opts = torch::TensorOptions().dtype(torch::kLong).device(device);
  return {torch::ones({batch, tokens}, opts), torch::arange(tokens, opts).expand({batch, tokens}).contiguous()};
}

SequenceLayout SequenceLayout::from_attention_mask(const torch::Tensor& attention_mask) {
  TORCH_CHECK(attention_mask.dim() == 2, "attention_mask must be [B, T]");
  torch::Tensor segments = (attention_mask != 0).to(torch::kLong);
  // Positions count the real tokens before each one (as transformers derives them from the mask).
  torch::Tensor positions = (segments.cumsum(1) - 1).clamp_min(0);
  return {segments, positions};
}

SequenceLayout SequenceLayout::from_packed_position_ids(const torch::Tensor& position_ids) {
  TORCH_CHECK(position_ids.dim() == 2, "position_ids must be [B, T]");
  torch::Tensor pos = position_ids.to(torch::kLong);
  torch::Tensor starts = torch::ones_like(pos);
  const int64_t T = pos.size(1);
  if (T > 1) starts.slice(1, 1) = (pos.slice(1, 1) != pos.slice(1, 0, T - 1) + 1).to(torch::kLong);
  return {starts.cumsum(1), pos};
}

SequenceLayout SequenceLayout::from_segment_ids(const torch::Tensor& segment_ids) {
  TORCH_CHECK(segment_ids.dim() == 2, "segment_ids must be [B, T]");
  torch::Tensor segments = segment_ids.to(torch::kLong);
  return {segments, positions_from_segments(segments)};
}

torch::Tensor attention_visibility(const torch::Tensor& query_segments, const torch::Tensor& key_segments,
                                   int64_t query_offset, std::optional<int64_t> sliding_window) {
  const int64_t Tq = query_segments.size(1), Tk = key_segments.size(1);
  auto opts = torch::TensorOptions().dtype(torch::kLong).device(query_segments.device());
  torch::Tensor q_index = torch::arange(query_offset, query_offset + Tq, opts).unsqueeze(1);  // [Tq, 1]
  torch::Tensor k_index = torch::arange(Tk, opts).unsqueeze(0);                                // [1, Tk]
  torch::Tensor visible = k_index <= q_index;
  if (sliding_window) visible = visible.logical_and(q_index - k_index < *sliding_window);
  torch::Tensor same = query_segments.unsqueeze(2) == key_segments.unsqueeze(1);  // [B, Tq, Tk]
  return same.logical_and(visible.unsqueeze(0)).unsqueeze(1).unsqueeze(1);
}

}  // namespace qtune
