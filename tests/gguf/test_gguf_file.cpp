// Tests for the GGUF container: the writer's bytes against a file encoded by hand here from the GGUF
// specification, round trips of every metadata type and several tensor types, writer misuse and atomic commit,
// and (GgufFileHostile) files truncated at every length or with one field corrupted, each of which must end
// in an InputError that names the file. The hostile suite runs under ASan/UBSan in CI, so it stays small.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <optional>
#include <random>

#include "core/error.h"
#include "gguf/gguf_file.h"
#include "tests/support/test_support.h"

namespace qtune {
namespace {

// ------------------------------------------------------------------------------------------------------------
// An encoder written from the specification, independent of the one under test.

template <typename T>
std::string le(T v) {
  std::string s(sizeof(T), '\0');
  std::memcpy(s.data(), &v, sizeof(T));
  return s;
}
std::string str(const std::string& s) { return le<uint64_t>(s.size()) + s; }
std::string kv(const std::string& key, uint32_t type, const std::string& payload) { return str(key) + le(type) + payload; }
std::string kv_u32(const std::string& key, uint32_t v) { return kv(key, 4, le(v)); }
std::string kv_string(const std::string& key, const std::string& v) { return kv(key, 8, str(v)); }

struct RawTensor {
  std::string name;
  std::vector<uint64_t> ne;
  uint32_t type = 0;  // F32
  uint64_t offset = 0;
  std::optional<uint32_t> n_dims;  // overrides ne.size()
};

// A valid small file by default: two metadata entries, two F32 tensors (256 and 128 bytes) at offsets 0 and 256.
struct RawFile {
  std::string magic = "GGUF";
  uint32_t version = 3;
  std::optional<uint64_t> tensor_count, metadata_count;  // override the true counts
  std::vector<std::string> metadata = {kv_string("general.architecture", "llama"), kv_u32("llama.block_count", 2)};
  std::vector<RawTensor> tensors = {{"a", {32, 2}, 0, 0}, {"b", {32}, 0, 256}};
  uint64_t alignment = 32;
  uint64_t data_bytes = 384;

  std::string encode() const {
    std::string out = magic + le(version) + le<uint64_t>(tensor_count.value_or(tensors.size())) +
                      le<uint64_t>(metadata_count.value_or(metadata.size()));
    for (const auto& m : metadata) out += m;
    for (const auto& t : tensors) {
      out += str(t.name) + le<uint32_t>(t.n_dims.value_or(t.ne.size()));
      for (uint64_t n : t.ne) out += le(n);
      out += le(t.type) + le(t.offset);
    }
    out.append((alignment - out.size() % alignment) % alignment, '\0');
    for (uint64_t i = 0; i < data_bytes; ++i) out += static_cast<char>(i * 7);
    return out;
  }
};

std::string write_raw(const std::string& dir, const std::string& bytes) {
  const std::string path = dir + "/model.gguf";
  test::write_file(path, bytes);
  return path;
}

// Opens `bytes` and expects an InputError of one line that starts with the path and contains `fragment`.
void expect_refused(const std::string& bytes, const std::string& fragment) {
  const std::string path = write_raw(test::temp_dir("gguf_hostile"), bytes);
  try {
    GgufFile::open(path);
    ADD_FAILURE() << "accepted a file that should fail with '" << fragment << "'";
  } catch (const InputError& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.rfind(path + ": ", 0), 0u) << message;
    EXPECT_NE(message.find(fragment), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
}

std::string float_bytes(const std::vector<float>& v) { return std::string(reinterpret_cast<const char*>(v.data()), v.size() * 4); }

GgufTensorInfo tensor(const std::string& name, GgmlType type, std::vector<int64_t> ne) {
  GgufTensorInfo t;
  t.name = name;
  t.type = type;
  t.ne = std::move(ne);
  return t;
}

GgufValue scalar(GgufValueType type, int64_t integer, double number = 0) {
  GgufValue v;
  v.type = type;
  v.integer = integer;
  v.number = number;
  return v;
}

GgufValue array(GgufValueType element, std::vector<int64_t> integers, std::vector<double> numbers = {}) {
  GgufValue v;
  v.type = GgufValueType::kArray;
  v.element_type = element;
  v.integers = std::move(integers);
  v.numbers = std::move(numbers);
  return v;
}

bool same_value(const GgufValue& a, const GgufValue& b) {
  return a.type == b.type && (a.type != GgufValueType::kArray || a.element_type == b.element_type) && a.integer == b.integer &&
         a.number == b.number && a.boolean == b.boolean && a.string == b.string && a.integers == b.integers && a.numbers == b.numbers &&
         a.strings == b.strings;
}

// ------------------------------------------------------------------------------------------------------------
// Metadata

TEST(GgufFile, MetadataKeepsOrderAndReplacesInPlace) {
  GgufMetadata m;
  m.set("b", GgufValue::u32(1));
  m.set("a", GgufValue::text("x"));
  m.set("b", GgufValue::u32(2));
  ASSERT_EQ(m.entries().size(), 2u);
  EXPECT_EQ(m.entries()[0].first, "b");
  EXPECT_EQ(m.integer("b", "f"), 2);
  EXPECT_EQ(m.string("a", "f"), "x");
  EXPECT_FALSE(m.contains("c"));
}

TEST(GgufFile, TypedGettersNameTheKeyAndTypes) {
  GgufMetadata m;
  m.set("n", GgufValue::i32(-3));
  m.set("f", GgufValue::f32(0.5f));
  m.set("s", GgufValue::text("t"));
  m.set("flag", GgufValue::boolean_value(true));
  m.set("list", GgufValue::string_array({"x"}));
  EXPECT_EQ(m.number("n", "w"), -3.0);  // integers widen
  EXPECT_EQ(m.number("f", "w"), 0.5);
  EXPECT_TRUE(m.boolean("flag", "w"));
  const auto message = [&](auto get) {
    try {
      get();
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(message([&] { m.integer("missing", "model.gguf"); }), "model.gguf: metadata key 'missing' is missing");
  EXPECT_EQ(message([&] { m.integer("s", "model.gguf"); }), "model.gguf: metadata key 's' is string, expected an integer");
  EXPECT_EQ(message([&] { m.string("list", "model.gguf"); }), "model.gguf: metadata key 'list' is array of string, expected a string");
  EXPECT_EQ(message([&] { m.boolean("n", "model.gguf"); }), "model.gguf: metadata key 'n' is int32, expected a bool");
  EXPECT_EQ(message([&] { m.number("flag", "model.gguf"); }), "model.gguf: metadata key 'flag' is bool, expected a number");
}

// ------------------------------------------------------------------------------------------------------------
// Writer: bytes, round trips, misuse, atomic commit

TEST(GgufFile, WriterBytesMatchTheSpecification) {
  const std::string dir = test::temp_dir("gguf_bytes");
  RawFile raw;
  GgufMetadata m;
  m.set("general.architecture", GgufValue::text("llama"));
  m.set("llama.block_count", GgufValue::u32(2));
  const std::string expected = raw.encode();
  const std::string data = expected.substr(expected.size() - raw.data_bytes);
  GgufWriter w(dir + "/out.gguf", m, {tensor("a", GgmlType::kF32, {32, 2}), tensor("b", GgmlType::kF32, {32})});
  EXPECT_EQ(w.tensors()[1].offset, 256u);
  w.write("a", data.data(), 256);
  w.write("b", data.data() + 256, 128);
  w.finish();
  EXPECT_EQ(test::read_file(dir + "/out.gguf"), expected);
}

TEST(GgufFile, PadsEveryTensorAndWritesAlignmentOnlyWhenNotDefault) {
  const std::string dir = test::temp_dir("gguf_align");
  const std::vector<float> row(3, 1.f);  // 12 bytes: padding follows each tensor
  for (uint32_t alignment : {32u, 64u}) {
    const std::string path = dir + "/a" + std::to_string(alignment) + ".gguf";
    GgufWriter w(path, {}, {tensor("x", GgmlType::kF32, {3}), tensor("y", GgmlType::kF32, {3})}, alignment);
    w.write("x", row.data(), 12);
    w.write("y", row.data(), 12);
    w.finish();
    auto f = GgufFile::open(path);
    EXPECT_EQ(f->metadata().contains("general.alignment"), alignment != 32);
    EXPECT_EQ(f->data_offset() % alignment, 0u);
    EXPECT_EQ(f->tensors()[1].offset, f->data_offset() + alignment);
    // gguf-py pads after the last tensor too: the file ends on an alignment boundary.
    EXPECT_EQ(std::filesystem::file_size(path), f->data_offset() + 2 * alignment);
  }
}

GgufMetadata every_type_metadata() {
  GgufMetadata m;
  m.set("u8", scalar(GgufValueType::kUint8, 255));
  m.set("i8", scalar(GgufValueType::kInt8, -128));
  m.set("u16", scalar(GgufValueType::kUint16, 65535));
  m.set("i16", scalar(GgufValueType::kInt16, -32768));
  m.set("u32", GgufValue::u32(4294967295u));
  m.set("i32", GgufValue::i32(-2147483647 - 1));
  m.set("f32", GgufValue::f32(1e-6f));
  m.set("bool", GgufValue::boolean_value(true));
  static constexpr char kText[] = "utf-8 \xc3\xa9 and a \0 byte";
  m.set("string", GgufValue::text(std::string(kText, sizeof(kText) - 1)));
  m.set("u64", GgufValue::u64(uint64_t{1} << 62));
  m.set("i64", scalar(GgufValueType::kInt64, -(int64_t{1} << 62)));
  m.set("f64", scalar(GgufValueType::kFloat64, 0, 1.0 / 3.0));
  m.set("empty", GgufValue::string_array({}));
  m.set("i32s", GgufValue::i32_array({-1, 0, 2147483647}));
  m.set("f32s", GgufValue::f32_array({0.25, -3.0, 1048576.5}));  // exactly representable in float32
  m.set("u8s", array(GgufValueType::kUint8, {0, 255}));
  m.set("i64s", array(GgufValueType::kInt64, {INT64_MIN, INT64_MAX}));
  m.set("bools", array(GgufValueType::kBool, {1, 0, 1}));
  m.set("f64s", array(GgufValueType::kFloat64, {}, {1.0 / 7.0}));
  std::vector<std::string> tokens(150000);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = "tok" + std::to_string(i);
  m.set("tokens", GgufValue::string_array(std::move(tokens)));
  return m;
}

TEST(GgufFile, RoundTripsEveryMetadataType) {
  const std::string path = test::temp_dir("gguf_meta") + "/m.gguf";
  const GgufMetadata m = every_type_metadata();
  GgufWriter w(path, m, {});
  w.finish();
  auto f = GgufFile::open(path);
  EXPECT_EQ(f->version(), 3u);
  ASSERT_EQ(f->metadata().entries().size(), m.entries().size());
  for (size_t i = 0; i < m.entries().size(); ++i) {
    EXPECT_EQ(f->metadata().entries()[i].first, m.entries()[i].first);
    EXPECT_TRUE(same_value(f->metadata().entries()[i].second, m.entries()[i].second)) << m.entries()[i].first;
  }
  EXPECT_EQ(f->metadata().find("f32")->number, static_cast<double>(1e-6f));  // written and read as float32
}

TEST(GgufFile, RoundTripsTensorsOfSeveralTypes) {
  const std::string path = test::temp_dir("gguf_tensors") + "/t.gguf";
  const std::vector<float> f32 = {1.5f, -2.f, 3.25f, 0.f, 1e-3f, -7.f};
  const torch::Tensor halves = torch::tensor({0.5f, -1.f, 65504.f, 3.14f}).to(torch::kHalf).contiguous();
  const torch::Tensor bf16 = torch::tensor({1.f, -2.5f, 1e20f, 3.14f}).to(torch::kBFloat16).contiguous();
  // One Q8_0 block encoded by hand: f16 scale 0.5 (0x3800), then 32 int8 codes; weight = scale x code.
  std::string q8 = le<uint16_t>(0x3800);
  for (int i = 0; i < 32; ++i) q8 += static_cast<char>(i - 16);
  GgufWriter w(path, {}, {tensor("w.f32", GgmlType::kF32, {3, 2}), tensor("w.f16", GgmlType::kF16, {2, 2}),
                          tensor("w.bf16", GgmlType::kBF16, {4}), tensor("w.q8", GgmlType::kQ8_0, {32})});
  w.write("w.f32", f32.data(), 24);
  w.write("w.f16", halves.data_ptr(), 8);
  w.write("w.bf16", bf16.data_ptr(), 8);
  w.write("w.q8", q8.data(), q8.size());
  w.finish();

  auto f = GgufFile::open(path);
  ASSERT_EQ(f->tensors().size(), 4u);
  for (const auto& t : f->tensors()) EXPECT_EQ(t.offset % 32, 0u) << t.name;
  const GgufTensorInfo* t = f->find("w.f32");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->torch_shape(), (std::vector<int64_t>{2, 3}));
  EXPECT_TRUE(torch::equal(f->to_float(*t), torch::tensor(f32).reshape({2, 3})));
  EXPECT_TRUE(torch::equal(f->to_float(*f->find("w.f16")), halves.to(torch::kFloat32).reshape({2, 2})));
  EXPECT_TRUE(torch::equal(f->to_float(*f->find("w.bf16")), bf16.to(torch::kFloat32)));
  EXPECT_TRUE(torch::equal(f->to_float(*f->find("w.q8")), (torch::arange(32, torch::kFloat32) - 16) * 0.5));
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(f->data(*f->find("w.q8"))), 34), q8);
  f->release(*t);  // dropped pages come back from the file
  EXPECT_TRUE(torch::equal(f->to_float(*t), torch::tensor(f32).reshape({2, 3})));
  EXPECT_EQ(f->find("absent"), nullptr);
}

TEST(GgufFile, ReadsVersion2) {
  RawFile raw;
  raw.version = 2;  // same layout as version 3 for little-endian files
  auto f = GgufFile::open(write_raw(test::temp_dir("gguf_v2"), raw.encode()));
  EXPECT_EQ(f->version(), 2u);
  EXPECT_EQ(f->tensors()[1].offset, f->data_offset() + 256);
}

TEST(GgufFile, UnfinishedWriterLeavesNothingAndKeepsTheOldFile) {
  const std::string dir = test::temp_dir("gguf_atomic");
  const std::vector<float> row(32, 1.f);
  { GgufWriter w(dir + "/new.gguf", {}, {tensor("x", GgmlType::kF32, {32})}); }
  EXPECT_TRUE(std::filesystem::is_empty(dir));
  test::write_file(dir + "/old.gguf", "old");
  {
    GgufWriter w(dir + "/old.gguf", {}, {tensor("x", GgmlType::kF32, {32})});
    w.write("x", row.data(), 128);
    EXPECT_EQ(test::read_file(dir + "/old.gguf"), "old");  // replaced only by finish()
  }
  EXPECT_EQ(test::read_file(dir + "/old.gguf"), "old");
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir), {}), 1) << "temporary file left behind";
}

TEST(GgufFile, WriterMisuseIsALogicError) {
  const std::string path = test::temp_dir("gguf_misuse") + "/m.gguf";
  const std::vector<float> row(64, 1.f);
  const auto one = [] { return std::vector<GgufTensorInfo>{tensor("x", GgmlType::kF32, {32}), tensor("y", GgmlType::kF32, {32})}; };
  const auto construct = [&](std::vector<GgufTensorInfo> tensors, uint32_t alignment = 32, const GgufMetadata& m = {}) {
    GgufWriter w(path, m, std::move(tensors), alignment);
  };
  for (uint32_t alignment : {0u, 3u}) EXPECT_THROW(construct(one(), alignment), std::logic_error);
  EXPECT_THROW((construct({tensor("x", GgmlType::kF32, {32}), tensor("x", GgmlType::kF32, {32})})), std::logic_error);
  EXPECT_THROW(construct({tensor(std::string(64, 'n'), GgmlType::kF32, {32})}), std::logic_error);  // llama.cpp's limit: < 64
  EXPECT_THROW(construct({tensor("x", GgmlType::kQ8_0, {33})}), std::logic_error);
  EXPECT_THROW((construct({tensor("x", GgmlType::kF32, {32, 0})})), std::logic_error);
  EXPECT_THROW((construct({tensor("x", GgmlType::kF32, {1, 1, 1, 1, 1})})), std::logic_error);
  GgufMetadata contradicting;
  contradicting.set("general.alignment", GgufValue::u32(64));
  EXPECT_THROW(construct(one(), 32, contradicting), std::logic_error);
  GgufMetadata out_of_range;
  out_of_range.set("k", scalar(GgufValueType::kUint8, 256));
  EXPECT_THROW(construct(one(), 32, out_of_range), std::logic_error);
  EXPECT_TRUE(std::filesystem::is_empty(std::filesystem::path(path).parent_path()));

  GgufWriter w(path, {}, one());
  EXPECT_THROW(w.write("y", row.data(), 128), std::logic_error);  // out of order
  EXPECT_THROW(w.write("x", row.data(), 124), std::logic_error);  // wrong size
  w.write("x", row.data(), 128);
  EXPECT_THROW(w.finish(), std::logic_error);  // y missing
  w.write("y", row.data(), 128);
  EXPECT_THROW(w.write("z", row.data(), 128), std::logic_error);  // one too many
  w.finish();
  EXPECT_THROW(w.finish(), std::logic_error);
  EXPECT_EQ(GgufFile::open(path)->tensors().size(), 2u);
}

TEST(GgufFile, IsGgufFileReadsTheMagic) {
  const std::string dir = test::temp_dir("gguf_magic");
  EXPECT_FALSE(is_gguf_file(dir + "/missing.gguf"));
  EXPECT_FALSE(is_gguf_file(dir));
  test::write_file(dir + "/short", "GGU");
  EXPECT_FALSE(is_gguf_file(dir + "/short"));
  test::write_file(dir + "/st", "{\"a\":1}");
  EXPECT_FALSE(is_gguf_file(dir + "/st"));
  test::write_file(dir + "/g", "GGUF");
  EXPECT_TRUE(is_gguf_file(dir + "/g"));
}

// ------------------------------------------------------------------------------------------------------------
// Hostile files

TEST(GgufFileHostile, BaseFileIsValid) {  // so every refusal below is due to the one field changed
  auto f = GgufFile::open(write_raw(test::temp_dir("gguf_base"), RawFile().encode()));
  EXPECT_EQ(f->tensors().size(), 2u);
  EXPECT_EQ(f->metadata().string("general.architecture", "t"), "llama");
}

TEST(GgufFileHostile, EveryTruncationIsRefused) {
  // A real writer file (metadata of each kind, tensors whose sizes are multiples of the alignment, so no
  // trailing padding) cut at every length: the reader must never read past the end.
  const std::string dir = test::temp_dir("gguf_trunc");
  GgufMetadata m;
  m.set("general.architecture", GgufValue::text("llama"));
  m.set("n", GgufValue::u64(7));
  m.set("tokens", GgufValue::string_array({"a", "bc", ""}));
  m.set("scores", GgufValue::f32_array({0.5, -1}));
  m.set("types", GgufValue::i32_array({1, 2}));
  m.set("add_bos", GgufValue::boolean_value(false));
  const std::vector<float> data(64, 2.f);
  GgufWriter w(dir + "/full.gguf", m, {tensor("a", GgmlType::kF32, {32, 1}), tensor("b", GgmlType::kF32, {8, 4})});
  w.write("a", data.data(), 128);
  w.write("b", data.data(), 128);
  w.finish();
  const std::string full = test::read_file(dir + "/full.gguf");
  ASSERT_EQ(GgufFile::open(dir + "/full.gguf")->tensors().size(), 2u);
  const auto start = std::chrono::steady_clock::now();
  for (size_t n = 0; n < full.size(); ++n) {
    const std::string path = dir + "/cut" + std::to_string(n) + ".gguf";  // a new file: ext4 flushes a truncated one on close
    test::write_file(path, full.substr(0, n));
    try {
      GgufFile::open(path);
      ADD_FAILURE() << "accepted the file cut at " << n << " of " << full.size() << " bytes";
    } catch (const InputError& e) {
      EXPECT_EQ(std::string(e.what()).rfind(path + ": ", 0), 0u) << e.what();
    }
  }
  // Bound for the ASan CI pass; a few hundred small files take milliseconds without it.
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
}

// Random corruption of the header bytes (fixed seed): each file is refused with an InputError, or accepted
// and then every tensor converts without reading outside the mapping (ASan would report it).
TEST(GgufFileHostile, RandomHeaderCorruption) {
  const std::string dir = test::temp_dir("gguf_random");
  RawFile raw;
  raw.metadata.push_back(kv("scores", 9, le<uint32_t>(6) + le<uint64_t>(2) + le(0.5f) + le(1.5f)));
  raw.tensors[1].type = 8;  // Q8_0: 32 weights in 34 bytes
  raw.tensors[1].offset = 288;
  raw.data_bytes = 288 + 34;
  const std::string base = raw.encode();
  const size_t header_bytes = base.size() - raw.data_bytes;
  std::mt19937 rng(21);
  int accepted = 0;
  for (int i = 0; i < 400; ++i) {
    std::string bytes = base;
    for (int k = 1 + static_cast<int>(rng() % 3); k > 0; --k) bytes[rng() % header_bytes] = static_cast<char>(rng());
    const std::string path = dir + "/r" + std::to_string(i) + ".gguf";
    test::write_file(path, bytes);
    try {
      auto f = GgufFile::open(path);
      for (const auto& t : f->tensors()) EXPECT_EQ(f->to_float(t).sizes().vec(), t.torch_shape());
      ++accepted;
    } catch (const InputError& e) {
      EXPECT_EQ(std::string(e.what()).rfind(path + ": ", 0), 0u) << e.what();
    }
  }
  EXPECT_GT(accepted, 0);  // some flips land in values or padding that do not matter
  EXPECT_LT(accepted, 400);
}

TEST(GgufFileHostile, HeaderFields) {
  RawFile f;
  f.magic = "GGML";
  expect_refused(f.encode(), "not a GGUF file");
  for (uint32_t version : {1u, 4u, 0u}) {
    f = RawFile();
    f.version = version;
    expect_refused(f.encode(), "version");
  }
  f = RawFile();
  f.version = 0x03000000;
  expect_refused(f.encode(), "big-endian");
  f = RawFile();
  f.tensor_count = uint64_t{1} << 60;
  expect_refused(f.encode(), "claims 1152921504606846976 tensors");
  f = RawFile();
  f.metadata_count = ~uint64_t{0};
  expect_refused(f.encode(), "metadata entries, more than");
  f = RawFile();
  f.tensor_count = 3;  // a count the file could hold; the third info is read from the padding and data
  expect_refused(f.encode(), "tensor 2");
}

TEST(GgufFileHostile, MetadataFields) {
  const auto with = [](std::vector<std::string> metadata) {
    RawFile f;
    f.metadata = std::move(metadata);
    return f.encode();
  };
  expect_refused(with({le<uint64_t>(uint64_t{1} << 62) + "k"}), "the file ends inside the key");
  expect_refused(with({kv("k", 8, le<uint64_t>(~uint64_t{0}))}), "the file ends inside a string");
  expect_refused(with({kv("k", 9, le<uint32_t>(4) + le<uint64_t>(uint64_t{1} << 61))}), "claims 2305843009213693952 uint32 elements");
  expect_refused(with({kv("k", 9, le<uint32_t>(8) + le<uint64_t>(uint64_t{1} << 61))}), "string elements");
  expect_refused(with({kv("k", 13, "")}), "unknown value type 13");
  expect_refused(with({kv("k", 9, le<uint32_t>(99) + le<uint64_t>(0))}), "unknown value type 99");
  expect_refused(with({kv("k", 9, le<uint32_t>(9) + le<uint64_t>(1) + le<uint32_t>(4) + le<uint64_t>(0))}), "nested arrays");
  expect_refused(with({kv("k", 10, le<uint64_t>(~uint64_t{0}))}), "above the largest value");
  expect_refused(with({kv_u32("dup", 1), kv_u32("dup", 2)}), "metadata key 'dup' appears twice");
  expect_refused(with({kv_u32("bad\nkey", 1), kv_u32("bad\nkey", 2)}), "'bad\\x0akey' appears twice");
  expect_refused(with({kv_u32("", 1)}), "empty key");
  expect_refused(with({kv_u32("general.alignment", 0)}), "general.alignment is 0; it must be a power of two");
  expect_refused(with({kv_u32("general.alignment", 3)}), "general.alignment is 3");
  expect_refused(with({kv("general.alignment", 10, le<uint64_t>(32))}), "'general.alignment' is uint64, expected uint32");
}

TEST(GgufFileHostile, TensorInfoFields) {
  const auto with = [](auto change) {
    RawFile f;
    change(f.tensors[0]);
    return f.encode();
  };
  expect_refused(with([](RawTensor& t) { t.n_dims = 0, t.ne = {}; }), "has 0 dimensions");
  expect_refused(with([](RawTensor& t) { t.ne = {32, 2, 1, 1, 1}; }), "has 5 dimensions");
  expect_refused(with([](RawTensor& t) { t.n_dims = 0xffffffff; }), "has 4294967295 dimensions");
  expect_refused(with([](RawTensor& t) { t.ne = {32, 0}; }), "dimension 1 of size 0");
  expect_refused(with([](RawTensor& t) { t.ne = {32, ~uint64_t{0}}; }), "dimension 1 of size");
  expect_refused(with([](RawTensor& t) { t.ne = {32, uint64_t{1} << 40, uint64_t{1} << 40}; }), "more elements than");
  expect_refused(with([](RawTensor& t) { t.type = 8, t.ne = {33}; }), "rows of 33 weights, not a multiple of Q8_0's block of 32");
  expect_refused(with([](RawTensor& t) { t.type = 23; }), "ggml type 23 (IQ4_XS), which is not supported; qtune reads F32, F16");
  expect_refused(with([](RawTensor& t) { t.type = 1000; }), "ggml type 1000 (unknown)");
  expect_refused(with([](RawTensor& t) { t.offset = 16; }), "data offset 16 is not a multiple of the alignment 32");
  expect_refused(with([](RawTensor& t) { t.offset = 512; }), "runs past the end of the file");
  expect_refused(with([](RawTensor& t) { t.offset = ~uint64_t{31}; }), "runs past the end");            // offset overflow
  expect_refused(with([](RawTensor& t) { t.ne = {uint64_t{1} << 62}; }), "runs past the end");          // byte count overflow
  expect_refused(with([](RawTensor& t) { t.offset = 128; }), "tensors 'a' and 'b' overlap");
  expect_refused(with([](RawTensor& t) { t.name = "b"; }), "tensor 'b' appears twice");
  expect_refused(with([](RawTensor& t) { t.name = ""; }), "tensor 0 has an empty name");
  expect_refused(with([](RawTensor& t) { t.name = std::string(1, '\0'); t.offset = 1024; }), "tensor '\\x00'");
}

}  // namespace
}  // namespace qtune
