// `qtune validate`, `qtune data preview` and `qtune tokenize` run as a user runs them: real-format configs
// and datasets, the real Llama 3 tokenizer files, and a corpus of bad inputs that must each end in one
// "error:" line naming the file (and line or key) with exit status 2.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "tests/support/files.h"

namespace qtune {
namespace {

namespace fs = std::filesystem;

class DataCommands : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tokenizer_ = test::tokenizer_dir("llama3_1");
    if (tokenizer_.empty()) return;
    model_ = (fs::temp_directory_path() / ("qtune_DataCommands_model_" + std::to_string(::getpid()))).string();
    auto made = test::run_qtune("init-model --arch llama --out " + model_ + " --hidden 16 --layers 1 --heads 2 --kv-heads 1 --intermediate 32 --vocab 128256 --force");
    ASSERT_EQ(made.exit_code, 0) << made.out;
  }
  static void TearDownTestSuite() {
    if (!model_.empty()) fs::remove_all(model_);
  }
  void SetUp() override {
    if (tokenizer_.empty()) {
      if (test::reference_required()) FAIL() << "llama3_1 tokenizer missing under " << test::tokenizers_root() << " (set QTUNE_TOKENIZERS)";
      GTEST_SKIP() << "llama3_1 tokenizer not found under " << test::tokenizers_root();
    }
    dir_ = test::temp_dir("run");
    test::write_file(dir_ + "/train.jsonl",
                     R"({"messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Capital of France?"}, {"role": "assistant", "content": "Paris."}]})"
                     "\n"
                     R"({"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]})"
                     "\n");
    write_config("");
  }
  void write_config(const std::string& extra, const std::string& dataset_extra = "") {
    test::write_file(dir_ + "/config.yaml", "base_model: " + model_ + "\ntokenizer: " + tokenizer_ +
                                                "\ndatasets:\n  - path: train.jsonl\n    type: chat_template\n" + dataset_extra +
                                                "sequence_len: 64\nshuffle_merged_datasets: false\n" + extra);
  }
  test::CommandResult qtune(const std::string& args) { return test::run_qtune(args); }
  std::string config() const { return dir_ + "/config.yaml"; }

  // Runs `validate` and checks the single error line.
  void expect_error(const std::string& file, const std::string& problem) {
    auto r = qtune("validate " + config());
    EXPECT_EQ(r.exit_code, 2) << r.out;
    EXPECT_EQ(r.out.rfind("error: ", 0), 0u) << r.out;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << "one line expected: " << r.out;
    EXPECT_NE(r.out.find(file), std::string::npos) << r.out;
    EXPECT_NE(r.out.find(problem), std::string::npos) << r.out;
  }

  static std::string tokenizer_, model_;
  std::string dir_;
};
std::string DataCommands::tokenizer_, DataCommands::model_;

TEST_F(DataCommands, ValidateReportsCountsAndReusesTheCache) {
  auto r = qtune("validate " + config());
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("template    llama3 (recognized from the tokenizer)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("memory plan on cpu (estimate)"), std::string::npos) << r.out;  // what a run would keep where
  EXPECT_NE(r.out.find("2 samples"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("cached in "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\nok\n"), std::string::npos) << r.out;
  r = qtune("validate " + config());
  EXPECT_NE(r.out.find("cache hit "), std::string::npos) << r.out;
  // Changed data, or a changed option that changes the tokens, is not served from the old cache.
  std::ofstream(dir_ + "/train.jsonl", std::ios::app) << R"({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]})" << "\n";
  r = qtune("validate " + config());
  EXPECT_NE(r.out.find("3 samples"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("cached in "), std::string::npos) << r.out;
  r = qtune("validate " + config() + " train_on_inputs=true");
  EXPECT_NE(r.out.find("cached in "), std::string::npos) << r.out;
}

TEST_F(DataCommands, PreviewBracketsExactlyTheTrainedTokens) {
  auto r = qtune("data preview " + config() + " --n 1");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("--- sample 1: "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("<|start_header_id|>assistant<|end_header_id|>\n\n[[Paris.<|eot_id|>]]"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("[[You are terse"), std::string::npos) << r.out;
  r = qtune("data preview " + config() + " --n 1 train_on_inputs=true");
  EXPECT_NE(r.out.find("[[<|begin_of_text|><|start_header_id|>system"), std::string::npos) << r.out;
}

// The ids themselves are compared with HF tokenizers on the whole corpus by tests/data/test_tokenize_cli.cpp.
TEST_F(DataCommands, TokenizeRejectsTextThatIsNotUtf8) {
  auto r = qtune("tokenize --tokenizer " + tokenizer_ + " < /dev/null");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  test::write_file(dir_ + "/bad.txt", "fine\n\xC3(bad\n");
  r = qtune("tokenize --tokenizer " + tokenizer_ + " < " + dir_ + "/bad.txt");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("error: stdin:2: text is not valid UTF-8"), std::string::npos) << r.out;
}

TEST_F(DataCommands, BadConfigsNameTheFileAndKey) {
  test::write_file(config(), "base_model: x\ndatasets: [\n  - oops: {\n");
  expect_error("config.yaml:", "invalid YAML");
  write_config("lerning_rate: 0.001\n");
  expect_error("config.yaml", "unknown key 'lerning_rate' (did you mean 'learning_rate'?)");
  write_config("sequence_len: long\n");
  expect_error("config.yaml", "key 'sequence_len' must be a whole number");
  write_config("chat_template: llama4\n");
  expect_error("config.yaml", "use one of: llama3");
  write_config("", "    feild_messages: conversations\n");
  expect_error("config.yaml", "did you mean 'field_messages'");
  write_config("base_model: no/such/model\n");
  expect_error("config.yaml", "key 'base_model': no model folder at");
  write_config("sequence_len: 64\n");  // an override's value is named without the file's line
  auto r = qtune("validate " + config() + " micro_batch_size=0");
  EXPECT_NE(r.out.find("config.yaml: key 'micro_batch_size' must be at least 1"), std::string::npos) << r.out;
}

TEST_F(DataCommands, BadDatasetsNameFileAndLine) {
  const std::string data = dir_ + "/train.jsonl";
  auto good = R"({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]})";
  test::write_file(data, std::string(good) + "\n{\"messages\": [\n");
  expect_error("train.jsonl:2", "JSON");
  test::write_file(data, std::string(good) + "\n" + R"({"messages": [{"role": "human", "content": "a"}, {"role": "robot", "content": "b"}]})" + "\n");
  expect_error("train.jsonl:2", "robot");
  test::write_file(data, std::string(good) + "\n{\"messages\": [{\"role\": \"user\", \"content\": \"\xC3(\"}]}\n");
  expect_error("train.jsonl:2", "UTF-8");
  test::write_file(data, "\n\n");
  expect_error("train.jsonl", "no samples");
  fs::remove(data);
  expect_error("train.jsonl", "no such");
  // A conversation the template cannot render (Llama 2's roles must alternate).
  test::write_file(data, R"({"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}, {"role": "assistant", "content": "c"}]})" "\n");
  write_config("chat_template: llama2\n");
  expect_error("train.jsonl:1", "roles must alternate");
}

TEST_F(DataCommands, SkipBadLinesCountsInsteadOfStopping) {
  auto good = R"({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]})";
  test::write_file(dir_ + "/train.jsonl", std::string(good) + "\nnot json\n" + good + "\n");
  write_config("", "    skip_bad_lines: true\n");
  auto r = qtune("validate " + config());
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("2 samples"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("1 skipped"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("train.jsonl:2"), std::string::npos) << r.out;
}

TEST_F(DataCommands, BrokenTokenizerOrMismatchedModelIsAnError) {
  const std::string broken = dir_ + "/tok";
  fs::create_directories(broken);
  std::string json = test::read_file(tokenizer_ + "/tokenizer.json");
  test::write_file(broken + "/tokenizer.json", json.substr(0, json.size() / 2));  // truncated download
  fs::copy_file(tokenizer_ + "/tokenizer_config.json", broken + "/tokenizer_config.json");
  write_config("tokenizer: tok\n");
  expect_error("tok/tokenizer.json", "invalid JSON");
  // A model with fewer embeddings than the tokenizer has ids.
  const std::string small = dir_ + "/small";
  ASSERT_EQ(qtune("init-model --arch llama --out " + small + " --hidden 16 --layers 1 --heads 2 --kv-heads 1 --intermediate 32 --vocab 300").exit_code, 0);
  write_config("base_model: small\n");
  expect_error("", "embeddings");
}

TEST_F(DataCommands, LongSamplesAreTruncatedOrDroppedAndCounted) {
  std::string long_answer(400, 'x');
  for (std::size_t i = 0; i < long_answer.size(); i += 4) long_answer[i] = ' ';
  test::write_file(dir_ + "/train.jsonl",
                   R"({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]})" "\n"
                   R"({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": ")" + long_answer + "\"}]}\n");
  auto r = qtune("validate " + config());
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("1 truncated, 0 dropped"), std::string::npos) << r.out;
  r = qtune("validate " + config() + " overlong_samples=drop");
  EXPECT_NE(r.out.find("0 truncated, 1 dropped"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace qtune
