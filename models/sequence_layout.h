// SequenceLayout: which tokens may attend to which. Every token carries a segment id (0 = padding,
// 1.. = a sequence; packed rows hold several) and a position id (restarting at 0 in each sequence).
// A query sees a key iff both are in the same segment, the key is not later, and (with a sliding
// window W) the key is less than W tokens back. Legend: B batch, T tokens.
#pragma once

#include "core/torch.h"

#include <optional>

namespace qtune {

struct SequenceLayout {
  torch::Tensor segment_ids;   // [B, T] int64: 0 padding, >= 1 sequence id within the row
  torch::Tensor position_ids;  // [B, T] int64

  // One sequence per row, no padding.
  static SequenceLayout dense(int64_t batch, int64_t tokens, torch::Device device = torch::kCPU);
  // attention_mask [B, T] of 1 (token) / 0 (padding), as transformers takes it; positions count tokens.
  static SequenceLayout from_attention_mask(const torch::Tensor& attention_mask);
  // Packed rows: a new sequence starts wherever the position id does not continue (pos != prev + 1),
  // the same rule transformers uses for packed position_ids.
  static SequenceLayout from_packed_position_ids(const torch::Tensor& position_ids);
  // From explicit segment ids; positions restart at 0 at each change of segment.
  static SequenceLayout from_segment_ids(const torch::Tensor& segment_ids);
};

// Boolean visibility [B, 1, 1, Tq, Tk]: query i (absolute index query_offset + i) sees key j.
// key_segments [B, Tk] covers the cached keys followed by the new ones.
torch::Tensor attention_visibility(const torch::Tensor& query_segments /* [B, Tq] */,
                                   const torch::Tensor& key_segments /* [B, Tk] */, int64_t query_offset,
                                   std::optional<int64_t> sliding_window);

}  // namespace qtune
