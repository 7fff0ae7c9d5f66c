// GGUF v3 files (the format llama.cpp, Ollama and LM Studio read): metadata key/values, tensor descriptions
// and tensor data. GgufWriter streams a file tensor by tensor under a temporary name and renames it into
// place; GgufFile maps one and validates everything before any of it is used (hostile files give InputError).
//
// Layout facts (GGUF specification): little-endian; "GGUF", version u32, tensor count u64, metadata count
// u64; each key a string (u64 length + bytes) with a u32 value type; each tensor a name, n_dims u32,
// ne[n_dims] u64 (ne[0] = the row length, the innermost dimension), ggml type u32 and an offset u64
// relative to the data section, which starts at the first multiple of general.alignment (default 32)
// after the header; every offset is a multiple of it too.
#pragma once

#include "core/torch.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/mapped_file.h"
#include "gguf/ggml_quants.h"

namespace qtune {

enum class GgufValueType : uint32_t {
  kUint8 = 0, kInt8 = 1, kUint16 = 2, kInt16 = 3, kUint32 = 4, kInt32 = 5, kFloat32 = 6, kBool = 7,
  kString = 8, kArray = 9, kUint64 = 10, kInt64 = 11, kFloat64 = 12,
};

// One metadata value. Integers of every width are held in `integer` (u64 values above INT64_MAX are
// refused on read), floats in `number`; an array holds elements of one type in the vector of its kind.
struct GgufValue {
  GgufValueType type = GgufValueType::kUint32;
  GgufValueType element_type = GgufValueType::kUint8;  // arrays only
  int64_t integer = 0;
  double number = 0;
  bool boolean = false;
  std::string string;
  std::vector<int64_t> integers;      // integer and bool arrays
  std::vector<double> numbers;        // float arrays
  std::vector<std::string> strings;   // string arrays

  static GgufValue u32(uint32_t v);
  static GgufValue i32(int32_t v);
  static GgufValue u64(uint64_t v);
  static GgufValue f32(float v);
  static GgufValue boolean_value(bool v);
  static GgufValue text(std::string v);
  static GgufValue string_array(std::vector<std::string> v);
  static GgufValue f32_array(std::vector<double> v);
  static GgufValue i32_array(std::vector<int64_t> v);
  bool is_integer() const;  // any integer width
  bool is_float() const;    // f32 or f64
};

// "uint32", "string", "array of float32": for messages.
std::string gguf_value_type_name(const GgufValue& value);

// Metadata in file order (llama.cpp does not care about the order; people reading dumps do).
class GgufMetadata {
 public:
  void set(const std::string& key, GgufValue value);  // replaces an existing key in place
  const GgufValue* find(const std::string& key) const;
  bool contains(const std::string& key) const { return find(key) != nullptr; }
  const std::vector<std::pair<std::string, GgufValue>>& entries() const { return entries_; }
  // Typed reads; InputError "<where>: metadata key '<key>' ..." when absent or of another type.
  int64_t integer(const std::string& key, const std::string& where) const;
  double number(const std::string& key, const std::string& where) const;  // floats, or integers widened
  const std::string& string(const std::string& key, const std::string& where) const;
  bool boolean(const std::string& key, const std::string& where) const;

 private:
  const GgufValue& typed(const std::string& key, const std::string& where, bool ok(const GgufValue&), const char* expected) const;
  std::vector<std::pair<std::string, GgufValue>> entries_;
  std::unordered_map<std::string, size_t> index_;  // key -> position in entries_
};

struct GgufTensorInfo {
  std::string name;
  GgmlType type = GgmlType::kF32;
  std::vector<int64_t> ne;   // ggml order: ne[0] is the row length
  uint64_t offset = 0;       // absolute byte offset in the file (reader); relative to the data section (writer)
  uint64_t bytes() const;    // ggml_row_bytes(type, ne[0]) x rows
  std::vector<int64_t> torch_shape() const;  // ne reversed: [rows..., ne[0]]
};

class GgufWriter {
 public:
  // The whole header (metadata and every tensor's name, type and shape) is known up front, so it is written
  // at once; then write() each tensor's bytes in the order of `tensors`, each padded to `alignment` (the last
  // one too, as gguf-py does). finish() fsyncs and renames. The destructor removes the temporary file of an
  // unfinished writer. Misuse (bad alignment or shapes, names llama.cpp refuses (>= 64 bytes), duplicate
  // names, writes out of order or of the wrong size) is a programmer error: std::logic_error.
  GgufWriter(const std::string& path, const GgufMetadata& metadata, std::vector<GgufTensorInfo> tensors, uint32_t alignment = 32);
  ~GgufWriter();
  void write(const std::string& name, const void* data, uint64_t bytes);  // throws on order or size mismatch
  void finish();
  const std::vector<GgufTensorInfo>& tensors() const;  // with offsets relative to the data section

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class GgufFile {
 public:
  // Maps and validates `path`: magic, version 2 or 3, counts and string lengths within the file, known value
  // and ggml types, 1-4 dims with positive sizes whose row length fits the type's block, data offsets aligned,
  // in range and not overlapping, no duplicate keys or tensor names. InputError naming the file otherwise.
  static std::shared_ptr<GgufFile> open(const std::string& path);

  const std::string& path() const { return file_->path(); }
  uint32_t version() const { return version_; }
  const GgufMetadata& metadata() const { return metadata_; }
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }  // file order
  const GgufTensorInfo* find(const std::string& name) const;
  uint64_t data_offset() const { return data_offset_; }  // where the data section starts
  const uint8_t* data(const GgufTensorInfo& info) const;  // the tensor's bytes in the mapping
  // The tensor dequantized to float32, shape torch_shape().
  torch::Tensor to_float(const GgufTensorInfo& info) const;
  void release(const GgufTensorInfo& info) const;  // drops its pages once converted

 private:
  std::shared_ptr<MappedFile> file_;
  uint32_t version_ = 0;
  GgufMetadata metadata_;
  std::vector<GgufTensorInfo> tensors_;
  std::unordered_map<std::string, size_t> tensor_index_;  // name -> position in tensors_
  uint64_t data_offset_ = 0;
};

// True when the file at `path` starts with the GGUF magic.
bool is_gguf_file(const std::string& path);

}  // namespace qtune
