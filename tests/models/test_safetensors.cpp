// Tests for the safetensors reader/writer: byte layout checked by hand-built files in both directions,
// every dtype, sharding + index, zero-copy views, and rejection of corrupted files.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "models/safetensors.h"
#include "tests/support/test_support.h"

namespace qtune {
namespace {

// Builds a safetensors file by hand: u64 LE header length, JSON header, data.
std::string build_file(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + data;
}

std::string float_bytes(std::initializer_list<float> values) {
  std::string s;
  for (float v : values) s.append(reinterpret_cast<const char*>(&v), sizeof v);
  return s;
}

TEST(Safetensors, ReadsAHandBuiltFile) {
  const std::string dir = test::temp_dir("st");
  const std::string header = R"({"b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]},)"
                             R"("a":{"dtype":"F32","shape":[1,3],"data_offsets":[0,12]},"__metadata__":{"format":"pt"}})";
  test::write_file(dir + "/x.safetensors", build_file(header, float_bytes({1, 2, 3, 4, 5})));
  auto file = SafetensorsFile::open(dir + "/x.safetensors");
  ASSERT_EQ(file->tensors().size(), 2u);
  EXPECT_EQ(file->tensors()[0].name, "a");  // file order = offset order
  EXPECT_EQ(file->metadata().at("format"), "pt");
  EXPECT_TRUE(torch::equal(file->view("a"), torch::tensor({{1.f, 2.f, 3.f}})));
  EXPECT_TRUE(torch::equal(file->view("b"), torch::tensor({4.f, 5.f})));
}

TEST(Safetensors, WriterProducesTheDocumentedLayout) {
  const std::string path = test::temp_dir("st") + "/w.safetensors";
  torch::Tensor a = torch::arange(6, torch::kFloat).view({2, 3});
  torch::Tensor b = torch::tensor({7, 8}, torch::kLong);
  save_safetensors(path, {{"a", a}, {"b", b}}, {{"format", "pt"}});
  const std::string bytes = test::read_file(path);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(bytes[i]);
  EXPECT_EQ((8 + n) % 8, 0u) << "data block should start 8-byte aligned";
  auto header = nlohmann::json::parse(bytes.substr(8, n));
  EXPECT_EQ(header["a"]["dtype"], "F32");
  EXPECT_EQ(header["a"]["shape"], nlohmann::json({2, 3}));
  EXPECT_EQ(header["a"]["data_offsets"], nlohmann::json({0, 24}));
  EXPECT_EQ(header["b"]["dtype"], "I64");
  EXPECT_EQ(header["b"]["data_offsets"], nlohmann::json({24, 40}));
  EXPECT_EQ(header["__metadata__"]["format"], "pt");
  ASSERT_EQ(bytes.size(), 8 + n + 40);
  EXPECT_EQ(std::memcmp(bytes.data() + 8 + n, a.data_ptr(), 24), 0);
  EXPECT_EQ(std::memcmp(bytes.data() + 8 + n + 24, b.data_ptr(), 16), 0);
}

TEST(Safetensors, RoundTripsEveryDtype) {
  const std::string path = test::temp_dir("st") + "/all.safetensors";
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  torch::Tensor base = torch::randn({3, 5}) * 100;
  for (auto dtype : {at::kDouble, at::kFloat, at::kHalf, at::kBFloat16, at::kLong, at::kInt, at::kShort, at::kChar,
                     at::kByte, at::kBool})
    tensors.emplace_back(safetensors_dtype_name(dtype), base.to(dtype));
  tensors.emplace_back("empty", torch::zeros({0, 4}));
  tensors.emplace_back("scalar", torch::tensor(3.5));
  save_safetensors(path, tensors);
  auto file = SafetensorsFile::open(path);
  for (const auto& [name, t] : tensors) {
    torch::Tensor back = file->view(name);
    EXPECT_EQ(back.scalar_type(), t.scalar_type()) << name;
    EXPECT_TRUE(torch::equal(back, t)) << name;
  }
}

TEST(Safetensors, ViewsAreZeroCopyAndOutliveTheFileObject) {
  const std::string path = test::temp_dir("st") + "/z.safetensors";
  save_safetensors(path, {{"w", torch::arange(1024, torch::kFloat)}});
  torch::Tensor view;
  {
    auto file = SafetensorsFile::open(path);
    view = file->view("w");
    EXPECT_EQ(file->view("w").data_ptr(), view.data_ptr()) << "two views of one tensor should share the mapped bytes";
  }
  EXPECT_EQ(view[1023].item<float>(), 1023.f);  // the mapping is kept alive by the tensor
}

TEST(Safetensors, ShardedWriterSplitsBySizeAndCheckpointReadsTheIndex) {
  const std::string dir = test::temp_dir("shards");
  std::vector<TensorSpec> specs;
  std::vector<torch::Tensor> values;
  for (int i = 0; i < 5; ++i) {
    values.push_back(torch::full({256}, static_cast<float>(i)));  // 1 KiB each
    specs.push_back({"t" + std::to_string(i), at::kFloat, {256}});
  }
  ShardedWriter writer(dir, specs, /*max_shard_bytes=*/2048);
  for (int i = 0; i < 5; ++i) writer.write("t" + std::to_string(i), values[i]);
  writer.finish();
  EXPECT_EQ(writer.shard_count(), 3u);
  EXPECT_TRUE(std::filesystem::exists(dir + "/model-00001-of-00003.safetensors"));
  EXPECT_TRUE(std::filesystem::exists(dir + "/model-00003-of-00003.safetensors"));
  auto index = nlohmann::json::parse(test::read_file(dir + "/model.safetensors.index.json"));
  EXPECT_EQ(index["metadata"]["total_size"], 5 * 1024);
  EXPECT_EQ(index["weight_map"]["t4"], "model-00003-of-00003.safetensors");
  Checkpoint ckpt = Checkpoint::open(dir);
  EXPECT_EQ(ckpt.names().size(), 5u);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(torch::equal(ckpt.view("t" + std::to_string(i)), values[i]));
  EXPECT_THROW(ckpt.info("nope"), InputError);
}

TEST(Safetensors, SingleShardIsPlainModelFile) {
  const std::string dir = test::temp_dir("one");
  ShardedWriter writer(dir, {{"x", at::kFloat, {4}}}, 1 << 20);
  writer.write("x", torch::ones({4}));
  writer.finish();
  EXPECT_TRUE(std::filesystem::exists(dir + "/model.safetensors"));
  EXPECT_FALSE(std::filesystem::exists(dir + "/model.safetensors.index.json"));
}

TEST(Safetensors, WriterIsAtomicAndChecksOrder) {
  const std::string path = test::temp_dir("st") + "/p.safetensors";
  {
    SafetensorsWriter writer(path, {{"a", at::kFloat, {2}}, {"b", at::kFloat, {2}}});
    EXPECT_THROW(writer.write("b", torch::ones({2})), c10::Error);  // out of order
    writer.write("a", torch::ones({2}));
    EXPECT_FALSE(std::filesystem::exists(path)) << "visible before finish()";
  }  // abandoned
  EXPECT_FALSE(std::filesystem::exists(path));
}

struct Corruption {
  const char* name;
  std::string bytes;
  const char* expected_message;
};

std::vector<Corruption> corrupted_files() {
  const std::string good_header = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  const std::string data = float_bytes({1, 2});
  return {
      {"empty", "", "truncated"},
      {"short", "abc", "truncated"},
      {"header_len_past_end", build_file(good_header, data).substr(0, 8) + "{}", "larger than the file"},
      {"truncated_data", build_file(good_header, data).substr(0, 8 + good_header.size() + 4), "outside the data block"},
      {"invalid_json", build_file(R"({"a":{"dtype":"F32",)", data), "invalid JSON"},
      {"not_object", build_file("[1,2]", data), "not a JSON object"},
      {"unknown_dtype", build_file(R"({"a":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}})", data), "unsupported dtype"},
      {"size_mismatch", build_file(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", data), "needs 12 bytes"},
      {"negative_shape", build_file(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", data), "non-negative"},
      {"offsets_reversed", build_file(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", data), "outside"},
      {"out_of_range", build_file(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", data), "outside the data block"},
      {"overlap", build_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", data), "overlap"},
      {"huge_shape", build_file(R"({"a":{"dtype":"F64","shape":[4611686018427387904,4],"data_offsets":[0,8]}})", data), "too large"},
      {"missing_offsets", build_file(R"({"a":{"dtype":"F32","shape":[2]}})", data), "data_offsets"},
  };
}

TEST(Safetensors, RejectsCorruptedFilesWithAMessageNamingTheFile) {
  const std::string dir = test::temp_dir("bad");
  for (const auto& c : corrupted_files()) {
    const std::string path = dir + "/" + c.name + ".safetensors";
    test::write_file(path, c.bytes);
    try {
      SafetensorsFile::open(path);
      ADD_FAILURE() << c.name << ": accepted";
    } catch (const InputError& e) {
      std::string message = e.what();
      EXPECT_NE(message.find(path), std::string::npos) << c.name << ": " << message;
      EXPECT_NE(message.find(c.expected_message), std::string::npos) << c.name << ": " << message;
      EXPECT_EQ(message.find('\n'), std::string::npos) << c.name << ": not one line: " << message;
    }
  }
}

TEST(Safetensors, IndexWithMissingShardOrTensorIsRejected) {
  const std::string dir = test::temp_dir("idx");
  save_safetensors(dir + "/model-00001-of-00002.safetensors", {{"a", torch::ones({2})}});
  test::write_file(dir + "/model.safetensors.index.json",
                   R"({"metadata":{},"weight_map":{"a":"model-00001-of-00002.safetensors","b":"model-00002-of-00002.safetensors"}})");
  EXPECT_THROW(
      {
        try {
          Checkpoint::open(dir);
        } catch (const InputError& e) {
          EXPECT_NE(std::string(e.what()).find("model-00002-of-00002.safetensors"), std::string::npos) << e.what();
          throw;
        }
      },
      InputError);
  test::write_file(dir + "/model.safetensors.index.json",
                   R"({"metadata":{},"weight_map":{"a":"model-00001-of-00002.safetensors","c":"model-00001-of-00002.safetensors"}})");
  EXPECT_THROW(Checkpoint::open(dir), InputError);
  test::write_file(dir + "/model.safetensors.index.json", R"({"weight_map":{"a":"../etc/passwd"}})");
  EXPECT_THROW(Checkpoint::open(dir), InputError);
}

}  // namespace
}  // namespace qtune
