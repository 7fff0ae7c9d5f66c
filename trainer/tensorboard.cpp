// TensorBoard event files: CRC-32C, TFRecord framing, the few protobuf messages TensorBoard reads, the writer.
#include "trainer/tensorboard.h"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <sstream>

#include <fmt/format.h>

#include "core/atomic_file.h"
#include "core/error.h"

namespace qtune {
namespace {

namespace fs = std::filesystem;

// ---- Protobuf wire format: varints, tags, the three field kinds the messages below use.

enum WireType : uint32_t { kVarint = 0, kFixed64 = 1, kBytes = 2, kFixed32 = 5 };

void put_varint(std::string& out, uint64_t value) {
  while (value >= 0x80) {
    out.push_back(static_cast<char>((value & 0x7F) | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
}

template <typename T>
void put_little_endian(std::string& out, T value) {
  for (std::size_t i = 0; i < sizeof(T); ++i) out.push_back(static_cast<char>((static_cast<uint64_t>(value) >> (8 * i)) & 0xFF));
}

void put_tag(std::string& out, uint32_t field, WireType type) { put_varint(out, (field << 3) | type); }

void put_bytes(std::string& out, uint32_t field, const std::string& bytes) {
  put_tag(out, field, kBytes);
  put_varint(out, bytes.size());
  out += bytes;
}

void put_double(std::string& out, uint32_t field, double value) {
  uint64_t bits = 0;
  std::memcpy(&bits, &value, sizeof bits);
  put_tag(out, field, kFixed64);
  put_little_endian(out, bits);
}

void put_float(std::string& out, uint32_t field, float value) {
  uint32_t bits = 0;
  std::memcpy(&bits, &value, sizeof bits);
  put_tag(out, field, kFixed32);
  put_little_endian(out, bits);
}

void put_int(std::string& out, uint32_t field, int64_t value) {
  put_tag(out, field, kVarint);
  put_varint(out, static_cast<uint64_t>(value));  // int64: negative values as 10-byte two's complement
}

// Reads a varint at `pos` (advanced); false past the end or after 10 bytes.
bool get_varint(const std::string& in, std::size_t& pos, uint64_t& value) {
  value = 0;
  for (int shift = 0; shift < 70 && pos < in.size(); shift += 7) {
    const auto byte = static_cast<uint8_t>(in[pos++]);
    value |= static_cast<uint64_t>(byte & 0x7F) << shift;
    if ((byte & 0x80) == 0) return true;
  }
  return false;
}

// ---- Event, Summary, Summary.Value, SummaryMetadata, TensorProto: field numbers of tensorboard/compat/proto.

std::string event_header(double wall_time, int64_t step) {
  std::string event;
  put_double(event, 1, wall_time);  // Event.wall_time
  put_int(event, 2, step);          // Event.step
  return event;
}

std::string scalar_value(const std::string& tag, float value) {
  std::string v;
  put_bytes(v, 1, tag);     // Summary.Value.tag
  put_float(v, 2, value);   // Summary.Value.simple_value
  return v;
}

// A string tensor of shape [] with the text plugin's metadata, as tensorboard.summary.text writes it.
std::string text_value(const std::string& tag, const std::string& text) {
  std::string plugin_data, metadata, tensor, v;
  put_bytes(plugin_data, 1, "text");       // PluginData.plugin_name
  put_bytes(metadata, 1, plugin_data);     // SummaryMetadata.plugin_data
  put_int(tensor, 1, 7);                   // TensorProto.dtype = DT_STRING
  put_bytes(tensor, 2, "");                // TensorProto.tensor_shape: no dimensions
  put_bytes(tensor, 8, text);              // TensorProto.string_val
  put_bytes(v, 1, tag);                    // Summary.Value.tag
  put_bytes(v, 8, tensor);                 // Summary.Value.tensor
  put_bytes(v, 9, metadata);               // Summary.Value.metadata
  return v;
}

// ---- Files.

constexpr const char* kEventPrefix = "events.out.tfevents.";
constexpr const char* kQtuneSuffix = ".qtune";

bool is_qtune_event_file(const fs::path& path) {
  const std::string name = path.filename().string();
  return name.rfind(kEventPrefix, 0) == 0 && name.size() > std::strlen(kQtuneSuffix) &&
         name.compare(name.size() - std::strlen(kQtuneSuffix), std::string::npos, kQtuneSuffix) == 0;
}

// qtune's event files in `dir`, oldest first (their names start with the Unix time, zero-padded).
std::vector<fs::path> qtune_event_files(const fs::path& dir) {
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.is_regular_file() && is_qtune_event_file(entry.path())) files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  return files;
}

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

// Rewrites `path` with its events up to `last_step` (a run that went further than its checkpoint, or whose
// last record was cut off, leaves more): written to a temporary file, then renamed over it.
void keep_events_up_to(const fs::path& path, int64_t last_step) {
  std::string kept;
  for (const std::string& event : read_tfrecords(read_bytes(path)))
    if (event_step(event) <= last_step) kept += tfrecord(event);
  AtomicFile::write_all(path.string(), kept);
}

std::string new_event_file_name() {
  std::array<char, 256> host{};
  if (::gethostname(host.data(), host.size() - 1) != 0) std::strcpy(host.data(), "localhost");
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  return fmt::format("{}{:010d}.{}.{}{}", kEventPrefix, now, host.data(), ::getpid(), kQtuneSuffix);
}

double unix_now() { return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count(); }

}  // namespace

uint32_t crc32c(const void* data, std::size_t size) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  uint32_t crc = 0xFFFFFFFFu;
  const auto* bytes = static_cast<const uint8_t*>(data);
  for (std::size_t i = 0; i < size; ++i) crc = table[(crc ^ bytes[i]) & 0xFF] ^ (crc >> 8);
  return crc ^ 0xFFFFFFFFu;
}

uint32_t masked_crc32c(const void* data, std::size_t size) {
  const uint32_t crc = crc32c(data, size);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

std::string tfrecord(const std::string& data) {
  std::string length, record;
  put_little_endian(length, static_cast<uint64_t>(data.size()));
  record = length;
  put_little_endian(record, masked_crc32c(length.data(), length.size()));
  record += data;
  put_little_endian(record, masked_crc32c(data.data(), data.size()));
  return record;
}

std::vector<std::string> read_tfrecords(const std::string& bytes) {
  auto u32 = [&](std::size_t at) {
    uint32_t v = 0;
    for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(bytes[at + i]);
    return v;
  };
  std::vector<std::string> records;
  for (std::size_t pos = 0; pos + 12 <= bytes.size();) {
    uint64_t length = 0;
    for (int i = 7; i >= 0; --i) length = (length << 8) | static_cast<uint8_t>(bytes[pos + i]);
    if (u32(pos + 8) != masked_crc32c(bytes.data() + pos, 8) || length > bytes.size() - pos - 12 || bytes.size() - pos - 12 - length < 4) break;
    std::string data = bytes.substr(pos + 12, length);
    if (u32(pos + 12 + length) != masked_crc32c(data.data(), data.size())) break;
    records.push_back(std::move(data));
    pos += 16 + length;
  }
  return records;
}

std::string file_version_event(double wall_time) {
  std::string event = event_header(wall_time, 0);
  put_bytes(event, 3, "brain.Event:2");  // Event.file_version
  return event;
}

std::string scalars_event(double wall_time, int64_t step, const std::vector<std::pair<std::string, double>>& values) {
  std::string summary;
  for (const auto& [tag, value] : values) put_bytes(summary, 1, scalar_value(tag, static_cast<float>(value)));  // Summary.value
  std::string event = event_header(wall_time, step);
  put_bytes(event, 5, summary);  // Event.summary
  return event;
}

std::string text_event(double wall_time, int64_t step, const std::string& tag, const std::string& text) {
  std::string summary;
  put_bytes(summary, 1, text_value(tag, text));
  std::string event = event_header(wall_time, step);
  put_bytes(event, 5, summary);
  return event;
}

int64_t event_step(const std::string& event) {
  int64_t step = 0;
  for (std::size_t pos = 0; pos < event.size();) {
    uint64_t key = 0, value = 0;
    if (!get_varint(event, pos, key)) break;
    const auto type = static_cast<uint32_t>(key & 7);
    if (type == kVarint) {
      if (!get_varint(event, pos, value)) break;
      if ((key >> 3) == 2) step = static_cast<int64_t>(value);
    } else if (type == kBytes) {
      if (!get_varint(event, pos, value) || value > event.size() - pos) break;
      pos += value;
    } else {
      pos += type == kFixed64 ? 8 : type == kFixed32 ? 4 : event.size();  // other wire types do not occur in Event
    }
  }
  return step;
}

std::string tensorboard_tag(const std::string& metric) {
  return metric.rfind("eval_", 0) == 0 ? "eval/" + metric.substr(5) : "train/" + metric;
}

TensorBoardWriter::TensorBoardWriter(const std::string& logging_dir, int64_t start_step, const std::string& config_text) {
  fs::create_directories(logging_dir);
  std::vector<fs::path> existing = qtune_event_files(logging_dir);
  for (const fs::path& file : existing) {
    if (start_step > 0) keep_events_up_to(file, start_step);
    else fs::remove(file);  // a fresh run starts its curves over, as metrics.jsonl does
  }
  const bool append_to_existing = start_step > 0 && !existing.empty();
  path_ = append_to_existing ? existing.back().string() : (fs::path(logging_dir) / new_event_file_name()).string();
  file_.open(path_, std::ios::binary | std::ios::app);
  if (!file_) input_error("{}: cannot write the TensorBoard event file; make logging_dir a writable folder", path_);
  if (append_to_existing) return;
  const double now = unix_now();
  append(file_version_event(now));
  // Fenced: the text plugin renders Markdown, which would fold the YAML's lines.
  append(text_event(now, start_step, "config", "```yaml\n" + config_text + "```\n"));
}

void TensorBoardWriter::scalars(double wall_time, int64_t step, const std::vector<std::pair<std::string, double>>& values) {
  append(scalars_event(wall_time, step, values));
}

void TensorBoardWriter::append(const std::string& event) {
  file_ << tfrecord(event);
  file_.flush();  // TensorBoard shows each step as it is logged; a crash loses at most the record being written
}

}  // namespace qtune
