// qtune::Fnv1a64: a stable 64-bit FNV-1a hash (same value on every machine and run), used for cache keys
// and seeds derived from names.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace qtune {

class Fnv1a64 {
 public:
  Fnv1a64& add(const void* data, std::size_t size) {
    const auto* bytes = static_cast<const unsigned char*>(data);
    for (std::size_t i = 0; i < size; ++i) {
      state_ ^= bytes[i];
      state_ *= 0x100000001b3ULL;
    }
    return *this;
  }
  // Strings are length-prefixed so that ("ab", "c") and ("a", "bc") hash differently.
  Fnv1a64& add(std::string_view text) {
    uint64_t size = text.size();
    add(&size, sizeof size);
    return add(text.data(), text.size());
  }
  Fnv1a64& add_u64(uint64_t value) { return add(&value, sizeof value); }
  uint64_t value() const { return state_; }

 private:
  uint64_t state_ = 0xcbf29ce484222325ULL;
};

}  // namespace qtune
