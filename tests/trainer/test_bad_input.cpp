// The broken-checkpoint corpus: each case damages a valid model folder in one way, and `qtune inspect`
// must exit 2 with exactly one "error:" line naming the file and the problem (never a crash).
// scripts/test.sh also runs this suite under AddressSanitizer.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <functional>

#include "tests/support/test_support.h"

namespace qtune {
namespace {

namespace fs = std::filesystem;

// Splits a safetensors file into its JSON header and data block.
std::pair<nlohmann::ordered_json, std::string> split(const std::string& bytes) {
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(bytes[i]);
  return {nlohmann::ordered_json::parse(bytes.substr(8, n)), bytes.substr(8 + n)};
}

std::string join(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((static_cast<uint64_t>(header.size()) >> (8 * i)) & 0xff);
  return out + header + data;
}

// Rewrites model.safetensors after `edit` changed its header.
void edit_header(const std::string& dir, const std::function<void(nlohmann::ordered_json&)>& edit) {
  auto [header, data] = split(test::read_file(dir + "/model.safetensors"));
  edit(header);
  test::write_file(dir + "/model.safetensors", join(header.dump(), data));
}

// Deletes shard 2 of a sharded checkpoint, whatever the shard count is.
void remove_second_shard(const std::string& dir) {
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().filename().string().rfind("model-00002-of-", 0) == 0) {
      fs::remove(entry.path());
      return;
    }
  }
  FAIL() << "no second shard in " << dir;
}

void edit_config(const std::string& dir, const std::function<void(nlohmann::json&)>& edit) {
  auto config = nlohmann::json::parse(test::read_file(dir + "/config.json"));
  edit(config);
  test::write_file(dir + "/config.json", config.dump());
}

struct BrokenCase {
  std::string name;
  std::function<void(const std::string& dir)> damage;
  std::string file;     // the file the message must name (relative to the folder; "" = the folder)
  std::string problem;  // a fragment of the message
};

const char* kQ = "model.layers.0.self_attn.q_proj.weight";

std::vector<BrokenCase> broken_cases() {
  auto model = [](const std::string& dir) { return dir + "/model.safetensors"; };
  return {
      {"truncated_file", [&](const std::string& d) { auto b = test::read_file(model(d)); test::write_file(model(d), b.substr(0, b.size() / 2)); },
       "model.safetensors", "outside the data block"},
      {"empty_file", [&](const std::string& d) { test::write_file(model(d), ""); }, "model.safetensors", "truncated"},
      {"header_longer_than_file", [&](const std::string& d) { auto b = test::read_file(model(d)); b[6] = 0x10; test::write_file(model(d), b); },
       "model.safetensors", "larger than the file"},
      {"invalid_header_json", [&](const std::string& d) { auto b = test::read_file(model(d)); b[8] = '#'; test::write_file(model(d), b); },
       "model.safetensors", "invalid JSON"},
      {"overlapping_offsets", [](const std::string& d) { edit_header(d, [](auto& h) {
         auto& a = h["model.norm.weight"]["data_offsets"]; a[0] = a[0].template get<uint64_t>() + 4; a[1] = a[1].template get<uint64_t>() + 4; }); },
       "model.safetensors", "overlap"},
      {"offsets_out_of_range", [](const std::string& d) { edit_header(d, [](auto& h) {
         auto& a = h["model.norm.weight"]["data_offsets"]; a[0] = 1ull << 40; a[1] = (1ull << 40) + 256; }); },
       "model.safetensors", "outside the data block"},
      {"unknown_dtype", [](const std::string& d) { edit_header(d, [](auto& h) { h[kQ]["dtype"] = "F8_E5M2"; }); },
       "model.safetensors", "unsupported dtype 'F8_E5M2'"},
      {"shape_times_dtype_mismatch", [](const std::string& d) { edit_header(d, [](auto& h) { h[kQ]["dtype"] = "F32"; }); },
       "model.safetensors", "needs"},
      {"shape_differs_from_config", [](const std::string& d) { edit_header(d, [](auto& h) {
         h[kQ]["shape"] = {32, 128}; }); },
       "model.safetensors", "config.json implies [64, 64]"},
      {"integer_weights", [](const std::string& d) { edit_header(d, [](auto& h) { h[kQ]["dtype"] = "I16"; }); },
       "model.safetensors", "floating-point"},
      {"missing_tensor", [](const std::string& d) { edit_header(d, [](auto& h) { h.erase("model.norm.weight"); }); },
       "", "'model.norm.weight' required by config.json"},
      {"missing_shard", [](const std::string& d) { remove_second_shard(d); },
       "model.safetensors.index.json", "missing"},
      {"index_invalid_json", [](const std::string& d) { test::write_file(d + "/model.safetensors.index.json", "{\"weight_map\": "); },
       "model.safetensors.index.json", "invalid JSON"},
      {"no_weights", [&](const std::string& d) { fs::remove(model(d)); }, "", "no model.safetensors"},
      {"config_missing", [](const std::string& d) { fs::remove(d + "/config.json"); }, "config.json", "no such file"},
      {"config_invalid_json", [](const std::string& d) { test::write_file(d + "/config.json", "{\"hidden_size\": 64,"); },
       "config.json", "invalid JSON"},
      {"config_missing_key", [](const std::string& d) { edit_config(d, [](auto& c) { c.erase("num_hidden_layers"); }); },
       "config.json", "'num_hidden_layers'"},
      {"config_unsupported_architecture", [](const std::string& d) { edit_config(d, [](auto& c) { c["architectures"] = {"GPT2LMHeadModel"}; }); },
       "config.json", "supported: LlamaForCausalLM"},
      {"config_wrong_type", [](const std::string& d) { edit_config(d, [](auto& c) { c["vocab_size"] = "300"; }); },
       "config.json", "'vocab_size' has the wrong type"},
  };
}

TEST(BadInput, InspectReportsEveryBrokenCheckpointInOneLine) {
  for (const auto& c : broken_cases()) {
    SCOPED_TRACE(c.name);
    const bool sharded = c.name == "missing_shard";
    const std::string dir = test::temp_dir(c.name);
    auto made = test::run_qtune("init-model --arch llama --out " + dir + " --hidden 64 --layers 2 --heads 4 --vocab 300 --force" +
                                (sharded ? " --max-shard-gb 0.00005" : ""));
    ASSERT_EQ(made.exit_code, 0) << made.out;
    c.damage(dir);
    auto r = test::run_qtune("inspect " + dir);
    EXPECT_EQ(r.exit_code, 2) << r.out;
    ASSERT_EQ(r.out.rfind("error: ", 0), 0u) << r.out;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << "one line expected: " << r.out;
    EXPECT_NE(r.out.find(c.file.empty() ? dir : dir + "/" + c.file), std::string::npos) << r.out;
    EXPECT_NE(r.out.find(c.problem), std::string::npos) << r.out;
  }
}

TEST(BadInput, UsageErrorsExitTwo) {
  EXPECT_EQ(test::run_qtune("").exit_code, 2);
  EXPECT_EQ(test::run_qtune("inspect").exit_code, 2);
  EXPECT_EQ(test::run_qtune("no-such-command").exit_code, 2);
  EXPECT_EQ(test::run_qtune("inspect /nonexistent/qtune/model").exit_code, 2);
  auto r = test::run_qtune("init-model --arch gpt2 --out " + test::temp_dir("x"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("llama, mistral, qwen2, qwen3, gemma2, gemma3, phi3"), std::string::npos) << r.out;
  EXPECT_EQ(test::run_qtune("init-model --arch llama --hidden 30 --heads 4 --out " + test::temp_dir("y")).exit_code, 2);
  EXPECT_EQ(test::run_qtune("--help").exit_code, 0);
}

// A training run on the byte model with `extra` config lines; returns the config's path.
std::string training_config(const std::string& name, const std::string& extra) {
  const std::string dir = test::temp_dir(name);
  test::make_byte_model(dir + "/model");
  std::ofstream(dir + "/train.jsonl") << R"({"text": "one two three four five six seven eight"})" << "\n";
  test::write_file(dir + "/config.yaml", "base_model: model\ndatasets:\n  - path: train.jsonl\n    type: completion\nsequence_len: 32\n"
                                         "max_steps: 1\nlora_r: 2\ndevice: cpu\nseed: 1\n" + extra);
  return dir + "/config.yaml";
}

// `qtune train` refuses with exit status 2 and one "error:" line holding every fragment of `message`.
void expect_refused(const std::string& config, const std::vector<std::string>& message, const std::string& overrides = "") {
  auto r = test::run_qtune("train " + config + " " + overrides);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  ASSERT_EQ(r.out.rfind("error: " + config + ": ", 0), 0u) << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << "one line expected: " << r.out;
  for (const auto& fragment : message) EXPECT_NE(r.out.find(fragment), std::string::npos) << fragment << " not in: " << r.out;
}

// An output_dir that cannot be created is refused before any work, naming the key and why; nothing is
// written (tests may run as root, so the folder is made impossible by a file in its path).
TEST(BadInput, OutputDirThatCannotBeCreated) {
  const std::string config = training_config("output_dir_under_file", "output_dir: blocker/out\n");
  const std::string dir = fs::path(config).parent_path().string();
  test::write_file(dir + "/blocker", "a file, not a folder\n");
  expect_refused(config, {"key 'output_dir'", "cannot create the folder " + dir + "/blocker/out", dir + "/blocker is a file, not a folder"});
  EXPECT_EQ(test::read_file(dir + "/blocker"), "a file, not a folder\n");
  auto validate = test::run_qtune("validate " + config);
  EXPECT_EQ(validate.exit_code, 2) << validate.out;
  EXPECT_NE(validate.out.find("key 'output_dir'"), std::string::npos) << validate.out;
  expect_refused(training_config("prepared_under_file", "dataset_prepared_path: config.yaml/cache\n"),
                 {"key 'dataset_prepared_path'", "config.yaml is a file, not a folder"});
}

// A sequence_len no position embedding can reach is refused (1e12 was once accepted), naming the model's limit.
TEST(BadInput, SequenceLenBeyondTheModel) {
  expect_refused(training_config("sequence_len_huge", "sequence_len: 1000000000000\n"),
                 {"key 'sequence_len' is 1000000000000", "handles at most 32768 positions (max_position_embeddings 32768)", "lower sequence_len"});
  expect_refused(training_config("sequence_len_over", "sequence_len: 32769\n"), {"key 'sequence_len' is 32769", "at most 32768"});
}

// With linear RoPE scaling the model reaches max_position_embeddings × factor: beyond that an error, between
// the two a warning (as Axolotl warns), and the run goes on.
TEST(BadInput, SequenceLenThatNeedsRopeScaling) {
  const std::string config = training_config("sequence_len_rope", "sequence_len: 48\n");
  const std::string model = fs::path(config).parent_path() / "model";
  edit_config(model, [](auto& c) {
    c["max_position_embeddings"] = 16;
    c["rope_scaling"] = {{"rope_type", "linear"}, {"factor", 4.0}};
  });
  auto r = test::run_qtune("train " + config);
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("warning: " + config + ": key 'sequence_len' 48 is above max_position_embeddings 16 of " + model +
                       "/config.json: positions beyond it rely on the linear RoPE scaling (factor 4)"),
            std::string::npos)
      << r.out;
  expect_refused(config, {"key 'sequence_len' is 65", "at most 64 positions (max_position_embeddings 16 × linear RoPE scaling factor 4)"},
                 "sequence_len=65");
}

// The GGUF readers behind `qtune generate` and `qtune eval` (a model file) refuse damaged and hostile files with one
// line naming the file; the export they came from is intact. (gguf/ tests the reader field by field.)
TEST(BadInput, DamagedGgufModelsAreOneLineErrors) {
  const std::string dir = test::temp_dir("gguf_bad");
  auto made = test::run_qtune("init-model --arch llama --out " + dir + "/model --hidden 64 --layers 1 --heads 4 --vocab 300 --byte-tokenizer --force");
  ASSERT_EQ(made.exit_code, 0) << made.out;
  auto exported = test::run_qtune("export --model " + dir + "/model --out " + dir + "/good.gguf --type q8_0");
  ASSERT_EQ(exported.exit_code, 0) << exported.out;
  const std::string good = test::read_file(dir + "/good.gguf");
  test::write_file(dir + "/text.txt", "some text to score\n");
  auto patched = [&](std::size_t at, const std::string& bytes) { std::string b = good; b.replace(at, bytes.size(), bytes); return b; };
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"truncated", good.substr(0, good.size() / 2)},
      {"header_only", good.substr(0, 24)},
      {"wrong_magic", patched(0, "GGUG")},
      {"huge_tensor_count", patched(8, std::string("\xff\xff\xff\xff\xff\xff\xff\x7f", 8))},
      {"huge_metadata_count", patched(16, std::string("\xff\xff\xff\xff\xff\xff\xff\x0f", 8))},
      {"huge_first_key_length", patched(24, std::string("\xff\xff\xff\xff\xff\xff\x00\x00", 8))},
  };
  for (const auto& [name, bytes] : cases) {
    SCOPED_TRACE(name);
    const std::string path = dir + "/" + name + ".gguf";
    test::write_file(path, bytes);
    for (const std::string command : {"eval --model " + path + " --text " + dir + "/text.txt", "generate --model " + path + " --prompt hi"}) {
      auto r = test::run_qtune(command);
      EXPECT_EQ(r.exit_code, 2) << command << ": " << r.out;
      ASSERT_EQ(r.out.rfind("error: " + path, 0), 0u) << r.out;
      EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << "one line expected: " << r.out;
    }
  }
  auto missing_text = test::run_qtune("eval --model " + dir + "/good.gguf --text " + dir + "/missing.txt");
  EXPECT_EQ(missing_text.exit_code, 2) << missing_text.out;
  EXPECT_EQ(test::read_file(dir + "/good.gguf"), good);
}

}  // namespace
}  // namespace qtune
