// GGUF reading (GgufFile, is_gguf_file). The reader trusts nothing in the file: every length, count and offset is
// checked against the bytes that are really there before it is used, so a hostile file ends in an InputError.
#include "gguf/gguf_file.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <fstream>
#include <limits>
#include <numeric>
#include <stdexcept>

#include "core/error.h"
#include "gguf/gguf_file_internal.h"

namespace qtune {

using namespace gguf_detail;

namespace {

// Integers are held as int64 (8 bytes for a 1-byte u8), so a huge array in a large file could need many
// times the file's size in memory; the largest real arrays (vocabularies) hold a few hundred thousand.
constexpr uint64_t kMaxArrayElements = uint64_t{1} << 26;
// Smallest possible encodings, to bound counts by the bytes left: key (8-byte length + 1 byte) + type +
// a 1-byte value; name (8 + 1) + n_dims + one dimension + type + offset.
constexpr uint64_t kMinMetadataEntryBytes = 8 + 1 + 4 + 1;
constexpr uint64_t kMinTensorInfoBytes = 8 + 1 + 4 + 8 + 4 + 8;

// Names and keys from a hostile file go into one-line messages: escape control bytes, cut long ones.
std::string printable(const std::string& s) {
  constexpr size_t kMax = 80;
  std::string out;
  for (size_t i = 0; i < s.size() && i < kMax; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    out += (c < 0x20 || c == 0x7f) ? fmt::format("\\x{:02x}", c) : std::string(1, s[i]);
  }
  if (s.size() > kMax) out += fmt::format("... ({} bytes)", s.size());
  return out;
}

// Names of the ggml types qtune does not read, for a message that says which one a file uses.
const char* unsupported_ggml_type_name(uint32_t id) {
  static constexpr const char* kNames[] = {
      "F32", "F16", "Q4_0", "Q4_1", "Q4_2 (removed)", "Q4_3 (removed)", "Q5_0", "Q5_1", "Q8_0", "Q8_1", "Q2_K", "Q3_K", "Q4_K",
      "Q5_K", "Q6_K", "Q8_K", "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS", "I8", "I16", "I32",
      "I64", "F64", "IQ1_M", "BF16", "Q4_0_4_4 (removed)", "Q4_0_4_8 (removed)", "Q4_0_8_8 (removed)", "TQ1_0", "TQ2_0",
      "IQ4_NL_4_4 (removed)", "IQ4_NL_4_8 (removed)", "IQ4_NL_8_8 (removed)", "MXFP4", "NVFP4", "Q1_0"};
  return id < sizeof(kNames) / sizeof(kNames[0]) ? kNames[id] : "unknown";
}

std::string supported_ggml_types() {
  std::string out;
  for (uint32_t id = 0; id < 64; ++id)
    if (auto type = ggml_type_from_id(id)) out += (out.empty() ? "" : ", ") + std::string(ggml_traits(*type).name);
  return out;
}

// Reads little-endian fields from the mapping; every read is checked against the bytes left. `context` says
// what is being read ("metadata key 'x'") for the message when the file ends early.
class Cursor {
 public:
  Cursor(const std::string& path, const uint8_t* data, uint64_t size) : path_(path), data_(data), size_(size) {}
  uint64_t position() const { return pos_; }
  uint64_t remaining() const { return size_ - pos_; }
  const std::string& path() const { return path_; }
  void set_context(std::string context) { context_ = std::move(context); }

  void need(uint64_t n, const char* what) const {
    if (n > remaining())
      input_error("{}: the file ends inside {} of {} (offset {}: {} bytes needed, {} left); is it truncated?", path_, what,
                  context_, pos_, n, remaining());
  }
  template <typename T>
  T read(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string read_string(const char* what) {
    const auto n = read<uint64_t>(what);
    need(n, what);
    std::string s(reinterpret_cast<const char*>(data_ + pos_), n);
    pos_ += n;
    return s;
  }

 private:
  const std::string& path_;
  const uint8_t* data_;
  uint64_t size_;
  uint64_t pos_ = 0;
  std::string context_ = "the header";
};

GgufValueType read_value_type(Cursor& c, const std::string& key, const char* what) {
  const auto id = c.read<uint32_t>(what);
  if (!is_valid_value_type(id)) input_error("{}: metadata key '{}' has unknown value type {}", c.path(), printable(key), id);
  return static_cast<GgufValueType>(id);
}

int64_t read_integer(Cursor& c, GgufValueType type, const std::string& key) {
  switch (type) {
    case GgufValueType::kUint8: return c.read<uint8_t>("a uint8");
    case GgufValueType::kInt8: return c.read<int8_t>("an int8");
    case GgufValueType::kUint16: return c.read<uint16_t>("a uint16");
    case GgufValueType::kInt16: return c.read<int16_t>("an int16");
    case GgufValueType::kUint32: return c.read<uint32_t>("a uint32");
    case GgufValueType::kInt32: return c.read<int32_t>("an int32");
    case GgufValueType::kInt64: return c.read<int64_t>("an int64");
    default: break;
  }
  const auto v = c.read<uint64_t>("a uint64");
  if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
    input_error("{}: metadata key '{}' holds the uint64 {}, above the largest value qtune reads (2^63 - 1)", c.path(), printable(key), v);
  return static_cast<int64_t>(v);
}

double read_float(Cursor& c, GgufValueType type) {
  if (type == GgufValueType::kFloat32) return c.read<float>("a float32");
  return c.read<double>("a float64");
}

void read_array(Cursor& c, const std::string& key, GgufValue& value) {
  value.element_type = read_value_type(c, key, "the array element type");
  const GgufValueType element = value.element_type;
  if (element == GgufValueType::kArray)
    input_error("{}: metadata key '{}' is an array of arrays (nested arrays are not supported)", c.path(), printable(key));
  const auto count = c.read<uint64_t>("the array length");
  const uint64_t min_bytes = element == GgufValueType::kString ? 8 : scalar_size(element);
  if (count > c.remaining() / min_bytes)
    input_error("{}: metadata key '{}' claims {} {} elements, more than the {} bytes left in the file hold", c.path(), printable(key),
                count, value_type_name(element), c.remaining());
  if (count > kMaxArrayElements)
    input_error("{}: metadata key '{}' has {} elements, more than qtune reads ({})", c.path(), printable(key), count, kMaxArrayElements);
  if (element == GgufValueType::kString) {
    value.strings.reserve(count);
    for (uint64_t i = 0; i < count; ++i) value.strings.push_back(c.read_string("an array string"));
  } else if (is_float_type(element)) {
    value.numbers.reserve(count);
    for (uint64_t i = 0; i < count; ++i) value.numbers.push_back(read_float(c, element));
  } else if (element == GgufValueType::kBool) {
    value.integers.reserve(count);
    for (uint64_t i = 0; i < count; ++i) value.integers.push_back(c.read<uint8_t>("a bool") != 0);
  } else {
    value.integers.reserve(count);
    for (uint64_t i = 0; i < count; ++i) value.integers.push_back(read_integer(c, element, key));
  }
}

GgufValue read_value(Cursor& c, const std::string& key) {
  GgufValue value;
  value.type = read_value_type(c, key, "the value type");
  if (value.type == GgufValueType::kString) value.string = c.read_string("a string");
  else if (value.type == GgufValueType::kArray) read_array(c, key, value);
  else if (value.type == GgufValueType::kBool) value.boolean = c.read<uint8_t>("a bool") != 0;
  else if (value.is_float()) value.number = read_float(c, value.type);
  else value.integer = read_integer(c, value.type, key);
  return value;
}

GgufMetadata read_metadata(Cursor& c, uint64_t count) {
  GgufMetadata metadata;
  for (uint64_t i = 0; i < count; ++i) {
    c.set_context(fmt::format("metadata entry {}", i));
    std::string key = c.read_string("the key");
    if (key.empty()) input_error("{}: metadata entry {} has an empty key", c.path(), i);
    if (metadata.contains(key)) input_error("{}: metadata key '{}' appears twice", c.path(), printable(key));
    c.set_context(fmt::format("metadata key '{}'", printable(key)));
    GgufValue value = read_value(c, key);
    metadata.set(key, std::move(value));
  }
  return metadata;
}

uint64_t read_alignment(const std::string& path, const GgufMetadata& metadata) {
  const GgufValue* value = metadata.find("general.alignment");
  if (value == nullptr) return kDefaultAlignment;
  if (value->type != GgufValueType::kUint32)
    input_error("{}: metadata key 'general.alignment' is {}, expected uint32", path, gguf_value_type_name(*value));
  if (!is_power_of_two(static_cast<uint64_t>(value->integer)))
    input_error("{}: general.alignment is {}; it must be a power of two", path, value->integer);
  return static_cast<uint64_t>(value->integer);
}

GgmlType read_ggml_type(Cursor& c, const std::string& name) {
  const auto id = c.read<uint32_t>("the ggml type");
  const auto type = ggml_type_from_id(id);
  if (!type)
    input_error("{}: tensor '{}' has ggml type {} ({}), which is not supported; qtune reads {}", c.path(), printable(name), id,
                unsupported_ggml_type_name(id), supported_ggml_types());
  return *type;
}

std::vector<int64_t> read_dims(Cursor& c, const std::string& name) {
  const auto n_dims = c.read<uint32_t>("the dimension count");
  if (n_dims < 1 || n_dims > kMaxDims)
    input_error("{}: tensor '{}' has {} dimensions; GGUF tensors have 1 to {}", c.path(), printable(name), n_dims, kMaxDims);
  std::vector<int64_t> ne;
  int64_t numel = 1;
  for (uint32_t d = 0; d < n_dims; ++d) {
    const auto n = c.read<uint64_t>("a dimension");
    if (n == 0 || n > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      input_error("{}: tensor '{}' has dimension {} of size {}", c.path(), printable(name), d, n);
    if (__builtin_mul_overflow(numel, static_cast<int64_t>(n), &numel))
      input_error("{}: tensor '{}' has more elements than a 64-bit count holds", c.path(), printable(name));
    ne.push_back(static_cast<int64_t>(n));
  }
  return ne;
}

GgufTensorInfo read_tensor_info(Cursor& c, uint64_t index, uint64_t alignment) {
  c.set_context(fmt::format("tensor info {}", index));
  GgufTensorInfo info;
  info.name = c.read_string("the name");
  if (info.name.empty()) input_error("{}: tensor {} has an empty name", c.path(), index);
  c.set_context(fmt::format("tensor '{}'", printable(info.name)));
  info.ne = read_dims(c, info.name);
  info.type = read_ggml_type(c, info.name);
  const int64_t block = ggml_traits(info.type).block_size;
  if (info.ne[0] % block != 0)
    input_error("{}: tensor '{}' has rows of {} weights, not a multiple of {}'s block of {}", c.path(), printable(info.name), info.ne[0],
                ggml_traits(info.type).name, block);
  info.offset = c.read<uint64_t>("the data offset");
  if (info.offset % alignment != 0)
    input_error("{}: tensor '{}' data offset {} is not a multiple of the alignment {}", c.path(), printable(info.name), info.offset,
                alignment);
  return info;
}

// The tensor's size in bytes, or nullopt when it does not fit 64 bits (dimensions are already validated).
std::optional<uint64_t> checked_bytes(const GgufTensorInfo& t) {
  const GgmlTypeTraits& traits = ggml_traits(t.type);
  uint64_t bytes = static_cast<uint64_t>(t.ne[0] / traits.block_size);
  if (__builtin_mul_overflow(bytes, static_cast<uint64_t>(traits.type_size), &bytes)) return std::nullopt;
  for (size_t i = 1; i < t.ne.size(); ++i)
    if (__builtin_mul_overflow(bytes, static_cast<uint64_t>(t.ne[i]), &bytes)) return std::nullopt;
  return bytes;
}

// Makes offsets absolute and checks every tensor's bytes lie in the file without overlapping another's.
void place_tensors(const std::string& path, std::vector<GgufTensorInfo>& tensors, uint64_t data_offset, uint64_t file_size) {
  std::vector<uint64_t> ends(tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    GgufTensorInfo& t = tensors[i];
    const auto bytes = checked_bytes(t);
    uint64_t begin = 0;
    if (!bytes || __builtin_add_overflow(data_offset, t.offset, &begin) || __builtin_add_overflow(begin, *bytes, &ends[i]) ||
        ends[i] > file_size)
      input_error("{}: tensor '{}' (data offset {}) runs past the end of the file ({} bytes); is it truncated?", path, printable(t.name),
                  t.offset, file_size);
    t.offset = begin;
  }
  std::vector<size_t> order(tensors.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return tensors[a].offset < tensors[b].offset; });
  for (size_t k = 1; k < order.size(); ++k)
    if (tensors[order[k]].offset < ends[order[k - 1]])
      input_error("{}: the data of tensors '{}' and '{}' overlap", path, printable(tensors[order[k - 1]].name),
                  printable(tensors[order[k]].name));
}

uint32_t read_version(Cursor& c) {
  if (c.remaining() < 4 || std::memcmp(c.read<std::array<char, 4>>("the magic").data(), kMagic, 4) != 0)
    input_error("{}: not a GGUF file (it does not start with 'GGUF')", c.path());
  const auto version = c.read<uint32_t>("the version");
  if (version == 1) input_error("{}: GGUF version 1 (2023) is not supported; convert the model again with a current llama.cpp", c.path());
  if (version == 0x02000000 || version == 0x03000000) input_error("{}: big-endian GGUF files are not supported", c.path());
  if (version != 2 && version != 3) input_error("{}: GGUF version {} is not supported; qtune reads versions 2 and 3", c.path(), version);
  return version;
}

// Rejects counts the file could not possibly hold before anything is read for them.
void check_counts(const Cursor& c, uint64_t tensor_count, uint64_t metadata_count) {
  if (metadata_count > c.remaining() / kMinMetadataEntryBytes)
    input_error("{}: the header claims {} metadata entries, more than the {} bytes of the file can hold", c.path(), metadata_count,
                c.remaining());
  if (tensor_count > (c.remaining() - metadata_count * kMinMetadataEntryBytes) / kMinTensorInfoBytes)
    input_error("{}: the header claims {} tensors, more than the {} bytes of the file can hold", c.path(), tensor_count, c.remaining());
}

}  // namespace

std::shared_ptr<GgufFile> GgufFile::open(const std::string& path) {
  auto file = std::make_shared<GgufFile>();
  file->file_ = MappedFile::open(path);
  Cursor c(path, file->file_->data(), file->file_->size());
  file->version_ = read_version(c);
  const auto tensor_count = c.read<uint64_t>("the tensor count");
  const auto metadata_count = c.read<uint64_t>("the metadata count");
  check_counts(c, tensor_count, metadata_count);
  file->metadata_ = read_metadata(c, metadata_count);
  const uint64_t alignment = read_alignment(path, file->metadata_);
  for (uint64_t i = 0; i < tensor_count; ++i) {
    file->tensors_.push_back(read_tensor_info(c, i, alignment));
    if (!file->tensor_index_.emplace(file->tensors_.back().name, i).second)
      input_error("{}: tensor '{}' appears twice", path, printable(file->tensors_.back().name));
  }
  file->data_offset_ = align_up(c.position(), alignment);
  place_tensors(path, file->tensors_, file->data_offset_, file->file_->size());
  return file;
}

const GgufTensorInfo* GgufFile::find(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const uint8_t* GgufFile::data(const GgufTensorInfo& info) const {
  // open() checked the file's own infos; one from elsewhere could point anywhere.
  if (info.offset > file_->size() || info.bytes() > file_->size() - info.offset)
    throw std::logic_error("GgufFile::data: tensor '" + info.name + "' is not in " + path());
  return file_->data() + info.offset;
}

torch::Tensor GgufFile::to_float(const GgufTensorInfo& info) const {
  const uint8_t* bytes = data(info);
  torch::Tensor out = torch::empty(info.torch_shape(), torch::kFloat32);
  const int64_t rows = out.numel() / info.ne[0];
  ggml_dequantize(info.type, bytes, rows, info.ne[0], out.data_ptr<float>());
  return out;
}

void GgufFile::release(const GgufTensorInfo& info) const { file_->release(info.offset, info.bytes()); }

bool is_gguf_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  return in.read(magic, 4) && std::memcmp(magic, kMagic, 4) == 0;
}

}  // namespace qtune
