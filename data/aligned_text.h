// qtune::AlignedText: text being normalized and pre-tokenized that remembers, for every byte, the
// offset in the original input it came from (HF's NormalizedString idea), so tokens map back to the
// exact characters of a chat template segment.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace qtune {

struct AlignedText {
  std::string text;
  std::vector<uint32_t> origin;  // origin[i]: input offset of text[i]; empty when `tracking` is false
  bool tracking = false;

  static AlignedText from_input(std::string_view input, uint32_t base, bool track) {
    AlignedText t{std::string(input), {}, track};
    if (track) {
      t.origin.resize(input.size());
      for (std::size_t i = 0; i < input.size(); ++i) t.origin[i] = base + static_cast<uint32_t>(i);
    }
    return t;
  }
  // An empty text with the same tracking mode.
  AlignedText empty_like() const { return AlignedText{{}, {}, tracking}; }
  // Appends `bytes`, all attributed to input offset `from`.
  void append(std::string_view bytes, uint32_t from) {
    text.append(bytes);
    if (tracking) origin.insert(origin.end(), bytes.size(), from);
  }
  // Appends text[begin, end) of `other` with its origins.
  void append_range(const AlignedText& other, std::size_t begin, std::size_t end) {
    text.append(other.text, begin, end - begin);
    if (tracking) origin.insert(origin.end(), other.origin.begin() + begin, other.origin.begin() + end);
  }
  AlignedText slice(std::size_t begin, std::size_t end) const {
    AlignedText out = empty_like();
    out.append_range(*this, begin, end);
    return out;
  }
  // Input offset of byte `i` (0 when not tracking).
  uint32_t origin_at(std::size_t i) const { return tracking && i < origin.size() ? origin[i] : 0; }
};

}  // namespace qtune
