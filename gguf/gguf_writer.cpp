// GGUF writing (GgufWriter): the whole header encoded in memory, then each tensor's bytes streamed in order.
#include "gguf/gguf_file.h"

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <unordered_set>

#include "core/atomic_file.h"
#include "core/error.h"
#include "gguf/gguf_file_internal.h"

namespace qtune {

using namespace gguf_detail;

namespace {

constexpr uint32_t kWriteVersion = 3;
constexpr size_t kMaxTensorName = 64;  // GGML_MAX_NAME: llama.cpp refuses names of this length or longer

// Little-endian encoder of the header, built in memory and written at once.
class HeaderBuffer {
 public:
  template <typename T>
  void put(T v) {
    char bytes[sizeof(T)];
    std::memcpy(bytes, &v, sizeof(T));
    out_.append(bytes, sizeof(T));
  }
  void put_string(const std::string& s) {
    put<uint64_t>(s.size());
    out_ += s;
  }
  void pad_to(uint64_t alignment) { out_.append(align_up(out_.size(), alignment) - out_.size(), '\0'); }
  const std::string& bytes() const { return out_; }

 private:
  std::string out_;
};

bool integer_fits(GgufValueType type, int64_t v) {
  switch (type) {
    case GgufValueType::kUint8: return v >= 0 && v <= UINT8_MAX;
    case GgufValueType::kInt8: return v >= INT8_MIN && v <= INT8_MAX;
    case GgufValueType::kUint16: return v >= 0 && v <= UINT16_MAX;
    case GgufValueType::kInt16: return v >= INT16_MIN && v <= INT16_MAX;
    case GgufValueType::kUint32: return v >= 0 && v <= UINT32_MAX;
    case GgufValueType::kInt32: return v >= INT32_MIN && v <= INT32_MAX;
    case GgufValueType::kUint64: return v >= 0;
    default: return true;
  }
}

void put_integer(HeaderBuffer& out, GgufValueType type, int64_t v, const std::string& key) {
  if (!integer_fits(type, v)) throw std::logic_error(fmt::format("GGUF key '{}': {} does not fit {}", key, v, value_type_name(type)));
  switch (scalar_size(type)) {
    case 1: return out.put(static_cast<uint8_t>(v));
    case 2: return out.put(static_cast<uint16_t>(v));
    case 4: return out.put(static_cast<uint32_t>(v));
    default: return out.put(static_cast<uint64_t>(v));
  }
}

void put_scalar(HeaderBuffer& out, GgufValueType type, int64_t integer, double number, const std::string& key) {
  if (type == GgufValueType::kFloat32) return out.put(static_cast<float>(number));
  if (type == GgufValueType::kFloat64) return out.put(number);
  if (type == GgufValueType::kBool) return out.put(static_cast<uint8_t>(integer != 0));
  put_integer(out, type, integer, key);
}

void put_array(HeaderBuffer& out, const GgufValue& value, const std::string& key) {
  const GgufValueType element = value.element_type;
  if (!is_valid_value_type(static_cast<uint32_t>(element)) || element == GgufValueType::kArray)
    throw std::logic_error(fmt::format("GGUF key '{}': arrays of {} cannot be written", key, static_cast<uint32_t>(element)));
  out.put(static_cast<uint32_t>(element));
  if (element == GgufValueType::kString) {
    out.put<uint64_t>(value.strings.size());
    for (const auto& s : value.strings) out.put_string(s);
  } else if (is_float_type(element)) {
    out.put<uint64_t>(value.numbers.size());
    for (double v : value.numbers) put_scalar(out, element, 0, v, key);
  } else {
    out.put<uint64_t>(value.integers.size());
    for (int64_t v : value.integers) put_scalar(out, element, v, 0, key);
  }
}

void put_value(HeaderBuffer& out, const GgufValue& value, const std::string& key) {
  if (!is_valid_value_type(static_cast<uint32_t>(value.type)))
    throw std::logic_error(fmt::format("GGUF key '{}': unknown value type {}", key, static_cast<uint32_t>(value.type)));
  out.put(static_cast<uint32_t>(value.type));
  if (value.type == GgufValueType::kString) return out.put_string(value.string);
  if (value.type == GgufValueType::kArray) return put_array(out, value, key);
  const int64_t integer = value.type == GgufValueType::kBool ? int64_t{value.boolean} : value.integer;
  put_scalar(out, value.type, integer, value.number, key);
}

// The metadata as written: general.alignment added when it is not the default, and never contradicting it.
GgufMetadata metadata_with_alignment(const GgufMetadata& metadata, uint32_t alignment) {
  GgufMetadata out = metadata;
  if (const GgufValue* given = metadata.find("general.alignment")) {
    if (given->type != GgufValueType::kUint32 || given->integer != alignment)
      throw std::logic_error("GgufWriter: metadata general.alignment disagrees with the alignment argument");
  } else if (alignment != kDefaultAlignment) {
    out.set("general.alignment", GgufValue::u32(alignment));
  }
  return out;
}

void check_tensor_for_writing(const GgufTensorInfo& t) {
  const auto fail = [&](const std::string& what) { throw std::logic_error("GgufWriter: tensor '" + t.name + "' " + what); };
  if (t.name.empty() || t.name.size() >= kMaxTensorName) fail("needs a name of 1 to 63 bytes (llama.cpp's limit)");
  if (t.ne.empty() || t.ne.size() > static_cast<size_t>(kMaxDims)) fail("needs 1 to 4 dimensions");
  for (int64_t n : t.ne)
    if (n < 1) fail("has a dimension < 1");
  if (t.ne[0] % ggml_traits(t.type).block_size != 0) fail("has a row length that is not a multiple of its type's block");
}

// Assigns each tensor's offset (relative to the data section): packed in order, each aligned.
void assign_offsets(std::vector<GgufTensorInfo>& tensors, uint64_t alignment) {
  std::unordered_set<std::string> names;
  uint64_t offset = 0;
  for (auto& t : tensors) {
    check_tensor_for_writing(t);
    if (!names.insert(t.name).second) throw std::logic_error("GgufWriter: duplicate tensor name '" + t.name + "'");
    t.offset = offset;
    offset = align_up(offset + t.bytes(), alignment);
  }
}

std::string encode_header(const GgufMetadata& metadata, const std::vector<GgufTensorInfo>& tensors, uint64_t alignment) {
  HeaderBuffer out;
  for (char c : kMagic) out.put(c);
  out.put(kWriteVersion);
  out.put<uint64_t>(tensors.size());
  out.put<uint64_t>(metadata.entries().size());
  for (const auto& [key, value] : metadata.entries()) {
    out.put_string(key);
    put_value(out, value, key);
  }
  for (const auto& t : tensors) {
    out.put_string(t.name);
    out.put<uint32_t>(t.ne.size());
    for (int64_t n : t.ne) out.put<uint64_t>(n);
    out.put(static_cast<uint32_t>(t.type));
    out.put<uint64_t>(t.offset);
  }
  out.pad_to(alignment);
  return out.bytes();
}

}  // namespace

struct GgufWriter::Impl {
  AtomicFile file;
  std::vector<GgufTensorInfo> tensors;
  uint64_t alignment;
  size_t next = 0;  // index of the tensor write() expects
  bool finished = false;
  Impl(const std::string& path, std::vector<GgufTensorInfo> t, uint64_t a) : file(path), tensors(std::move(t)), alignment(a) {}
};

GgufWriter::GgufWriter(const std::string& path, const GgufMetadata& metadata, std::vector<GgufTensorInfo> tensors,
                       uint32_t alignment) {
  if (!is_power_of_two(alignment)) throw std::logic_error(fmt::format("GgufWriter: alignment {} is not a power of two", alignment));
  assign_offsets(tensors, alignment);
  const std::string header = encode_header(metadata_with_alignment(metadata, alignment), tensors, alignment);
  impl_ = std::make_unique<Impl>(path, std::move(tensors), alignment);
  impl_->file.write(header.data(), header.size());
}

GgufWriter::~GgufWriter() = default;

const std::vector<GgufTensorInfo>& GgufWriter::tensors() const { return impl_->tensors; }

void GgufWriter::write(const std::string& name, const void* data, uint64_t bytes) {
  if (impl_->finished) throw std::logic_error("GgufWriter::write after finish()");
  if (impl_->next >= impl_->tensors.size()) throw std::logic_error("GgufWriter::write: '" + name + "' is one tensor too many");
  const GgufTensorInfo& t = impl_->tensors[impl_->next];
  if (name != t.name) throw std::logic_error("GgufWriter::write: got '" + name + "', expected '" + t.name + "' next");
  if (bytes != t.bytes())
    throw std::logic_error(fmt::format("GgufWriter::write: '{}' has {} bytes, expected {}", name, bytes, t.bytes()));
  impl_->file.write(data, bytes);
  impl_->file.write_zeros(align_up(bytes, impl_->alignment) - bytes);
  ++impl_->next;
}

void GgufWriter::finish() {
  if (impl_->finished) throw std::logic_error("GgufWriter::finish called twice");
  if (impl_->next != impl_->tensors.size())
    throw std::logic_error(fmt::format("GgufWriter::finish: {} of {} tensors written", impl_->next, impl_->tensors.size()));
  impl_->file.commit();
  impl_->finished = true;
}

}  // namespace qtune
