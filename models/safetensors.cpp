// safetensors reader/writer implementation. Format: u64 little-endian header length N, N bytes of JSON
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}, then the data block
// (offsets are relative to it).
#include "models/safetensors.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <limits>

#include "core/atomic_file.h"
#include "core/json_file.h"

namespace qtune {
namespace {

constexpr std::uint64_t kMaxHeaderBytes = 100ull << 20;  // same cap as the reference implementation

struct DtypeName {
  const char* name;
  at::ScalarType dtype;
};
constexpr DtypeName kDtypes[] = {
    {"F64", at::kDouble}, {"F32", at::kFloat}, {"F16", at::kHalf},  {"BF16", at::kBFloat16}, {"I64", at::kLong},
    {"I32", at::kInt},    {"I16", at::kShort}, {"I8", at::kChar},   {"U8", at::kByte},       {"BOOL", at::kBool},
};

std::string supported_dtypes() {
  std::string out;
  for (const auto& d : kDtypes) out += (out.empty() ? "" : ", ") + std::string(d.name);
  return out;
}

// numel x element size, or nullopt on overflow.
bool checked_bytes(const std::vector<int64_t>& shape, at::ScalarType dtype, std::uint64_t* bytes) {
  std::uint64_t n = static_cast<std::uint64_t>(c10::elementSize(dtype));
  for (int64_t d : shape) {
    if (d < 0) return false;
    if (d != 0 && n > std::numeric_limits<std::uint64_t>::max() / static_cast<std::uint64_t>(d)) return false;
    n *= static_cast<std::uint64_t>(d);
  }
  *bytes = n;
  return true;
}

std::string header_json(const std::vector<TensorSpec>& specs, const std::map<std::string, std::string>& metadata,
                        std::uint64_t* data_bytes) {
  // nlohmann::ordered_json keeps file order, which is also the data order.
  nlohmann::ordered_json header;
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::uint64_t offset = 0;
  for (const auto& s : specs) {
    if (header.contains(s.name)) throw std::invalid_argument("safetensors: duplicate tensor name " + s.name);
    std::uint64_t n = s.bytes();
    header[s.name] = {{"dtype", safetensors_dtype_name(s.dtype)}, {"shape", s.shape}, {"data_offsets", {offset, offset + n}}};
    offset += n;
  }
  *data_bytes = offset;
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // keep the data block 8-byte aligned
  return text;
}

}  // namespace

at::ScalarType safetensors_dtype(const std::string& name, const std::string& where) {
  for (const auto& d : kDtypes)
    if (name == d.name) return d.dtype;
  input_error("{}: unsupported dtype '{}' (supported: {})", where, name, supported_dtypes());
}

std::string safetensors_dtype_name(at::ScalarType dtype) {
  for (const auto& d : kDtypes)
    if (d.dtype == dtype) return d.name;
  throw std::invalid_argument(std::string("safetensors cannot store dtype ") + c10::toString(dtype));
}

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::uint64_t TensorSpec::bytes() const {
  std::uint64_t n = 0;
  if (!checked_bytes(shape, dtype, &n)) throw std::invalid_argument("safetensors: bad shape for " + name);
  return n;
}

// ---------------------------------------------------------------------------------------------- reading

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  auto result = std::shared_ptr<SafetensorsFile>(new SafetensorsFile());
  result->file_ = MappedFile::open(path);
  const MappedFile& file = *result->file_;
  if (file.size() < 8) input_error("{}: truncated safetensors file ({} bytes, the 8-byte header length is missing)", path, file.size());
  std::uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | file.data()[i];  // little-endian
  if (header_len > file.size() - 8)
    input_error("{}: header length {} is larger than the file ({} bytes); the file is truncated or not safetensors",
                path, header_len, file.size());
  if (header_len > kMaxHeaderBytes) input_error("{}: header length {} exceeds the 100 MiB limit", path, header_len);

  std::string text(reinterpret_cast<const char*>(file.data() + 8), header_len);
  nlohmann::json header = parse_json(text, path + " (safetensors header)");
  if (!header.is_object()) input_error("{}: safetensors header is not a JSON object", path);

  const std::uint64_t data_start = 8 + header_len;
  const std::uint64_t data_size = file.size() - data_start;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const std::string where = fmt::format("{}: tensor '{}'", path, name);
    if (name == "__metadata__") {
      if (!it->is_object()) input_error("{}: __metadata__ must be an object of strings", path);
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (!m->is_string()) input_error("{}: __metadata__ value '{}' is not a string", path, m.key());
        result->metadata_[m.key()] = m->get<std::string>();
      }
      continue;
    }
    if (!it->is_object()) input_error("{} is not an object", where);
    TensorInfo info;
    info.name = name;
    info.dtype = safetensors_dtype(json_required<std::string>(*it, "dtype", where), where);
    const auto& shape = (*it)["shape"];
    if (!shape.is_array()) input_error("{}: 'shape' must be an array of integers", where);
    for (const auto& d : shape) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0) input_error("{}: 'shape' must hold non-negative integers", where);
      info.shape.push_back(d.get<int64_t>());
    }
    const auto& offsets = (*it)["data_offsets"];
    if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() || !offsets[1].is_number_unsigned())
      input_error("{}: 'data_offsets' must be [begin, end] with non-negative integers", where);
    std::uint64_t begin = offsets[0].get<std::uint64_t>(), end = offsets[1].get<std::uint64_t>();
    if (begin > end || end > data_size)
      input_error("{}: data_offsets [{}, {}] are outside the data block of {} bytes (truncated or corrupted file)",
                  where, begin, end, data_size);
    std::uint64_t expected = 0;
    if (!checked_bytes(info.shape, info.dtype, &expected)) input_error("{}: shape is too large (overflows 64 bits)", where);
    if (expected != end - begin)
      input_error("{}: shape x dtype needs {} bytes but data_offsets span {}", where, expected, end - begin);
    info.begin = data_start + begin;
    info.end = data_start + end;
    result->tensors_.push_back(std::move(info));
  }
  auto& tensors = result->tensors_;
  std::sort(tensors.begin(), tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  for (std::size_t i = 1; i < tensors.size(); ++i)
    if (tensors[i].begin < tensors[i - 1].end)
      input_error("{}: tensors '{}' and '{}' overlap in the data block (corrupted file)", path, tensors[i - 1].name,
                  tensors[i].name);
  for (std::size_t i = 0; i < tensors.size(); ++i) result->index_[tensors[i].name] = i;
  return result;
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

torch::Tensor SafetensorsFile::view(const std::string& name) const {
  const TensorInfo* info = find(name);
  if (info == nullptr) input_error("{}: no tensor named '{}'", path(), name);
  return view(*info);
}

torch::Tensor SafetensorsFile::view(const TensorInfo& info) const {
  auto options = torch::TensorOptions().dtype(info.dtype);
  void* ptr = file_->data() + info.begin;
  if (info.bytes() == 0) return torch::empty(info.shape, options);
  if (reinterpret_cast<std::uintptr_t>(ptr) % c10::elementSize(info.dtype) != 0) {
    torch::Tensor copy = torch::empty(info.shape, options);
    std::memcpy(copy.data_ptr(), ptr, info.bytes());
    return copy;
  }
  std::shared_ptr<MappedFile> keep_alive = file_;
  return torch::from_blob(ptr, info.shape, [keep_alive](void*) {}, options);
}

Checkpoint Checkpoint::open(const std::string& dir) {
  namespace fs = std::filesystem;
  Checkpoint result;
  result.dir_ = dir;
  const fs::path index_path = fs::path(dir) / "model.safetensors.index.json";
  const fs::path single_path = fs::path(dir) / "model.safetensors";
  if (fs::exists(index_path)) {
    nlohmann::json index = read_json_file(index_path.string());
    if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
      input_error("{}: missing the 'weight_map' object", index_path.string());
    std::map<std::string, std::size_t> shard_of_file;
    std::map<std::string, std::string> expected;  // tensor -> shard file name
    for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it) {
      if (!it->is_string()) input_error("{}: weight_map['{}'] is not a file name", index_path.string(), it.key());
      std::string file = it->get<std::string>();
      if (file.find('/') != std::string::npos || file == "..")
        input_error("{}: shard name '{}' must be a file in the same folder", index_path.string(), file);
      if (!shard_of_file.count(file)) {
        fs::path shard = fs::path(dir) / file;
        if (!fs::exists(shard))
          input_error("{}: shard '{}' listed in the index is missing", index_path.string(), shard.string());
        shard_of_file[file] = result.files_.size();
        result.files_.push_back(SafetensorsFile::open(shard.string()));
      }
      expected[it.key()] = file;
    }
    for (const auto& [name, file] : expected) {
      std::size_t i = shard_of_file[file];
      if (result.files_[i]->find(name) == nullptr)
        input_error("{}: tensor '{}' is listed in the index but missing from the shard", result.files_[i]->path(), name);
      result.location_[name] = i;
    }
  } else if (fs::exists(single_path)) {
    result.files_.push_back(SafetensorsFile::open(single_path.string()));
    for (const auto& t : result.files_[0]->tensors()) result.location_[t.name] = 0;
  } else {
    input_error("{}: no model.safetensors or model.safetensors.index.json in this folder", dir);
  }
  return result;
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  for (const auto& [name, file] : location_) out.push_back(name);
  return out;
}

const TensorInfo& Checkpoint::info(const std::string& name) const {
  auto it = location_.find(name);
  if (it == location_.end()) input_error("{}: the checkpoint has no tensor '{}'", dir_, name);
  return *files_[it->second]->find(name);
}

torch::Tensor Checkpoint::view(const std::string& name) const {
  const TensorInfo& i = info(name);
  return files_[location_.at(name)]->view(i);
}

void Checkpoint::release(const std::string& name) const { files_[location_.at(name)]->release(info(name)); }

const std::string& Checkpoint::file_of(const std::string& name) const {
  info(name);
  return files_[location_.at(name)]->path();
}

// ---------------------------------------------------------------------------------------------- writing

struct SafetensorsWriter::Impl {
  std::vector<TensorSpec> specs;
  std::size_t next = 0;
  AtomicFile file;
  Impl(const std::string& path, std::vector<TensorSpec> s) : specs(std::move(s)), file(path) {}
};

SafetensorsWriter::SafetensorsWriter(const std::string& path, std::vector<TensorSpec> specs,
                                     const std::map<std::string, std::string>& metadata) {
  std::uint64_t data_bytes = 0;
  std::string header = header_json(specs, metadata, &data_bytes);
  impl_ = std::make_unique<Impl>(path, std::move(specs));
  std::uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<std::uint8_t>(static_cast<std::uint64_t>(header.size()) >> (8 * i));
  impl_->file.write(len, 8);
  impl_->file.write(header.data(), header.size());
}

SafetensorsWriter::~SafetensorsWriter() = default;

void SafetensorsWriter::write(const std::string& name, const torch::Tensor& tensor) {
  TORCH_CHECK(impl_->next < impl_->specs.size(), "safetensors writer: more tensors than declared (", name, ")");
  const TensorSpec& spec = impl_->specs[impl_->next];
  TORCH_CHECK(spec.name == name, "safetensors writer: expected tensor '", spec.name, "' next, got '", name, "'");
  TORCH_CHECK(tensor.scalar_type() == spec.dtype && tensor.sizes().vec() == spec.shape,
              "safetensors writer: tensor '", name, "' does not match its declared dtype/shape");
  torch::Tensor host = tensor.to(torch::kCPU).contiguous();
  impl_->file.write(host.data_ptr(), spec.bytes());
  ++impl_->next;
}

void SafetensorsWriter::finish() {
  TORCH_CHECK(impl_->next == impl_->specs.size(), "safetensors writer: ", impl_->specs.size() - impl_->next,
              " declared tensors were not written");
  impl_->file.commit();
}

struct ShardedWriter::Impl {
  std::string dir, prefix;
  std::map<std::string, std::string> metadata;
  std::vector<std::vector<TensorSpec>> shards;
  std::vector<std::string> shard_names;
  std::size_t current = 0;  // shard being written
  std::size_t written_in_current = 0;
  std::unique_ptr<SafetensorsWriter> writer;
  std::uint64_t total_bytes = 0;

  void open_current() {
    writer = std::make_unique<SafetensorsWriter>(dir + "/" + shard_names[current], shards[current], metadata);
    written_in_current = 0;
  }
};

ShardedWriter::ShardedWriter(const std::string& dir, std::vector<TensorSpec> specs, std::uint64_t max_shard_bytes,
                             const std::map<std::string, std::string>& metadata, const std::string& prefix)
    : impl_(std::make_unique<Impl>()) {
  impl_->dir = dir;
  impl_->prefix = prefix;
  impl_->metadata = metadata;
  // Greedy: start a new shard when the next tensor would push this one past the limit (a single
  // tensor larger than the limit gets a shard of its own, as transformers does).
  std::uint64_t in_shard = 0;
  for (auto& spec : specs) {
    std::uint64_t n = spec.bytes();
    if (impl_->shards.empty() || (in_shard > 0 && in_shard + n > max_shard_bytes)) {
      impl_->shards.emplace_back();
      in_shard = 0;
    }
    impl_->shards.back().push_back(std::move(spec));
    in_shard += n;
    impl_->total_bytes += n;
  }
  if (impl_->shards.empty()) impl_->shards.emplace_back();
  const std::size_t n = impl_->shards.size();
  for (std::size_t i = 0; i < n; ++i)
    impl_->shard_names.push_back(n == 1 ? prefix + ".safetensors"
                                        : fmt::format("{}-{:05d}-of-{:05d}.safetensors", prefix, i + 1, n));
  impl_->open_current();
}

ShardedWriter::~ShardedWriter() = default;

std::size_t ShardedWriter::shard_count() const { return impl_->shards.size(); }

void ShardedWriter::write(const std::string& name, const torch::Tensor& tensor) {
  Impl& s = *impl_;
  if (s.written_in_current == s.shards[s.current].size()) {
    TORCH_CHECK(s.current + 1 < s.shards.size(), "sharded writer: more tensors than declared (", name, ")");
    s.writer->finish();
    ++s.current;
    s.open_current();
  }
  s.writer->write(name, tensor);
  ++s.written_in_current;
}

void ShardedWriter::finish() {
  Impl& s = *impl_;
  TORCH_CHECK(s.current + 1 == s.shards.size(), "sharded writer: ", s.shards.size() - s.current - 1,
              " shards were not written");
  s.writer->finish();
  if (s.shards.size() == 1) return;
  nlohmann::ordered_json index;
  index["metadata"] = {{"total_size", s.total_bytes}};
  nlohmann::ordered_json weight_map = nlohmann::ordered_json::object();
  for (std::size_t i = 0; i < s.shards.size(); ++i)
    for (const auto& spec : s.shards[i]) weight_map[spec.name] = s.shard_names[i];
  index["weight_map"] = weight_map;
  AtomicFile::write_all(s.dir + "/" + s.prefix + ".safetensors.index.json", index.dump(2) + "\n");
}

void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  std::vector<TensorSpec> specs;
  for (const auto& [name, t] : tensors) specs.push_back({name, t.scalar_type(), t.sizes().vec()});
  SafetensorsWriter writer(path, std::move(specs), metadata);
  for (const auto& [name, t] : tensors) writer.write(name, t);
  writer.finish();
}

}  // namespace qtune
