// Internal to gguf_metadata.cpp, gguf_writer.cpp and gguf_reader.cpp: the format constants and value-type facts
// the GGUF reader and writer share.
#pragma once

#include <cstdint>

#include "gguf/gguf_file.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "GGUF I/O here copies little-endian fields straight to and from memory"
#endif

namespace qtune::gguf_detail {

inline constexpr char kMagic[4] = {'G', 'G', 'U', 'F'};
inline constexpr uint64_t kDefaultAlignment = 32;
inline constexpr int kMaxDims = 4;  // GGML_MAX_DIMS

inline bool is_valid_value_type(uint32_t id) { return id <= static_cast<uint32_t>(GgufValueType::kFloat64); }

// "uint32", "string", ...: the type's name in messages (gguf_metadata.cpp).
const char* value_type_name(GgufValueType type);

// Bytes of one value of a fixed-size type (0 for string and array).
inline uint64_t scalar_size(GgufValueType type) {
  switch (type) {
    case GgufValueType::kUint8: case GgufValueType::kInt8: case GgufValueType::kBool: return 1;
    case GgufValueType::kUint16: case GgufValueType::kInt16: return 2;
    case GgufValueType::kUint32: case GgufValueType::kInt32: case GgufValueType::kFloat32: return 4;
    case GgufValueType::kUint64: case GgufValueType::kInt64: case GgufValueType::kFloat64: return 8;
    default: return 0;
  }
}

inline bool is_float_type(GgufValueType type) { return type == GgufValueType::kFloat32 || type == GgufValueType::kFloat64; }

inline uint64_t align_up(uint64_t n, uint64_t alignment) { return (n + alignment - 1) / alignment * alignment; }
inline bool is_power_of_two(uint64_t n) { return n != 0 && (n & (n - 1)) == 0; }

}  // namespace qtune::gguf_detail
