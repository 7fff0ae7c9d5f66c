// GGUF metadata values (GgufValue, GgufMetadata), the value-type names, and tensor descriptions (GgufTensorInfo).
#include "gguf/gguf_file.h"

#include <limits>
#include <stdexcept>

#include "core/error.h"
#include "gguf/gguf_file_internal.h"

namespace qtune {

using namespace gguf_detail;

const char* gguf_detail::value_type_name(GgufValueType type) {
  static constexpr const char* kNames[] = {"uint8", "int8",   "uint16", "int16",  "uint32", "int32", "float32",
                                           "bool",  "string", "array",  "uint64", "int64",  "float64"};
  return kNames[static_cast<uint32_t>(type)];
}

namespace {

bool is_integer_type(GgufValueType type) {
  return scalar_size(type) != 0 && type != GgufValueType::kBool && type != GgufValueType::kFloat32 && type != GgufValueType::kFloat64;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------------
// Values and metadata

GgufValue GgufValue::u32(uint32_t v) {
  GgufValue value;
  value.type = GgufValueType::kUint32;
  value.integer = v;
  return value;
}

GgufValue GgufValue::i32(int32_t v) {
  GgufValue value;
  value.type = GgufValueType::kInt32;
  value.integer = v;
  return value;
}

GgufValue GgufValue::u64(uint64_t v) {
  if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) throw std::logic_error("GgufValue::u64: value above INT64_MAX");
  GgufValue value;
  value.type = GgufValueType::kUint64;
  value.integer = static_cast<int64_t>(v);
  return value;
}

GgufValue GgufValue::f32(float v) {
  GgufValue value;
  value.type = GgufValueType::kFloat32;
  value.number = v;
  return value;
}

GgufValue GgufValue::boolean_value(bool v) {
  GgufValue value;
  value.type = GgufValueType::kBool;
  value.boolean = v;
  return value;
}

GgufValue GgufValue::text(std::string v) {
  GgufValue value;
  value.type = GgufValueType::kString;
  value.string = std::move(v);
  return value;
}

GgufValue GgufValue::string_array(std::vector<std::string> v) {
  GgufValue value;
  value.type = GgufValueType::kArray;
  value.element_type = GgufValueType::kString;
  value.strings = std::move(v);
  return value;
}

GgufValue GgufValue::f32_array(std::vector<double> v) {
  GgufValue value;
  value.type = GgufValueType::kArray;
  value.element_type = GgufValueType::kFloat32;
  value.numbers = std::move(v);
  return value;
}

GgufValue GgufValue::i32_array(std::vector<int64_t> v) {
  GgufValue value;
  value.type = GgufValueType::kArray;
  value.element_type = GgufValueType::kInt32;
  value.integers = std::move(v);
  return value;
}

bool GgufValue::is_integer() const { return is_integer_type(type); }
bool GgufValue::is_float() const { return is_float_type(type); }

std::string gguf_value_type_name(const GgufValue& value) {
  if (value.type != GgufValueType::kArray) return value_type_name(value.type);
  return std::string("array of ") + value_type_name(value.element_type);
}

void GgufMetadata::set(const std::string& key, GgufValue value) {
  auto it = index_.find(key);
  if (it != index_.end()) {
    entries_[it->second].second = std::move(value);
    return;
  }
  index_.emplace(key, entries_.size());
  entries_.emplace_back(key, std::move(value));
}

const GgufValue* GgufMetadata::find(const std::string& key) const {
  auto it = index_.find(key);
  return it == index_.end() ? nullptr : &entries_[it->second].second;
}

const GgufValue& GgufMetadata::typed(const std::string& key, const std::string& where, bool ok(const GgufValue&),
                                     const char* expected) const {
  const GgufValue* value = find(key);
  if (value == nullptr) input_error("{}: metadata key '{}' is missing", where, key);
  if (!ok(*value)) input_error("{}: metadata key '{}' is {}, expected {}", where, key, gguf_value_type_name(*value), expected);
  return *value;
}

int64_t GgufMetadata::integer(const std::string& key, const std::string& where) const {
  return typed(key, where, [](const GgufValue& v) { return v.is_integer(); }, "an integer").integer;
}

double GgufMetadata::number(const std::string& key, const std::string& where) const {
  const GgufValue& v = typed(key, where, [](const GgufValue& v) { return v.is_float() || v.is_integer(); }, "a number");
  return v.is_float() ? v.number : static_cast<double>(v.integer);
}

const std::string& GgufMetadata::string(const std::string& key, const std::string& where) const {
  return typed(key, where, [](const GgufValue& v) { return v.type == GgufValueType::kString; }, "a string").string;
}

bool GgufMetadata::boolean(const std::string& key, const std::string& where) const {
  return typed(key, where, [](const GgufValue& v) { return v.type == GgufValueType::kBool; }, "a bool").boolean;
}

// ---------------------------------------------------------------------------------------------------------------
// Tensor infos

uint64_t GgufTensorInfo::bytes() const {
  uint64_t rows = 1;
  for (size_t i = 1; i < ne.size(); ++i) rows *= static_cast<uint64_t>(ne[i]);
  return ggml_row_bytes(type, ne.at(0)) * rows;
}

std::vector<int64_t> GgufTensorInfo::torch_shape() const { return std::vector<int64_t>(ne.rbegin(), ne.rend()); }

}  // namespace qtune
