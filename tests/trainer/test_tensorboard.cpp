// TensorBoard event files: CRC-32C against the published check values, TFRecord framing read back, a damaged
// tail dropped, the resume rule (events up to the resumed step kept, then appended to), and the config keys
// report_to and logging_dir. tests/reference/tensorboard_events.py reads real runs' files with TensorBoard.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "core/error.h"
#include "tests/support/files.h"
#include "trainer/tensorboard.h"
#include "trainer/train_config.h"

namespace qtune {
namespace {

namespace fs = std::filesystem;

uint32_t crc_of(const std::string& bytes) { return crc32c(bytes.data(), bytes.size()); }

// RFC 3720 (iSCSI) appendix B.4 and the common "123456789" check value of CRC-32C.
TEST(TensorBoard, Crc32cOfKnownVectors) {
  EXPECT_EQ(crc_of(""), 0u);
  EXPECT_EQ(crc_of("123456789"), 0xE3069283u);
  EXPECT_EQ(crc_of(std::string(32, '\0')), 0x8A9136AAu);
  EXPECT_EQ(crc_of(std::string(32, '\xff')), 0x62A8AB43u);
  std::string ascending, descending;
  for (int i = 0; i < 32; ++i) ascending.push_back(static_cast<char>(i)), descending.push_back(static_cast<char>(31 - i));
  EXPECT_EQ(crc_of(ascending), 0x46DD794Eu);
  EXPECT_EQ(crc_of(descending), 0x113FDB5Cu);
}

TEST(TensorBoard, RecordsFramedAndReadBack) {
  const std::vector<std::string> data = {"", "a", std::string(300, 'x'), std::string("\0\x01\xff", 3)};
  std::string file;
  for (const auto& d : data) file += tfrecord(d);
  EXPECT_EQ(read_tfrecords(file), data);
  // Layout: 8-byte little-endian length, 4-byte CRC, data, 4-byte CRC.
  const std::string one = tfrecord("abc");
  ASSERT_EQ(one.size(), 8u + 4 + 3 + 4);
  EXPECT_EQ(one.substr(0, 8), std::string("\x03\0\0\0\0\0\0\0", 8));
  EXPECT_EQ(one.substr(12, 3), "abc");
}

TEST(TensorBoard, ADamagedTailIsDropped) {
  const std::string good = tfrecord("first") + tfrecord("second");
  const std::string third = tfrecord("third");
  for (std::size_t cut = 1; cut < third.size(); ++cut)  // a record cut anywhere
    EXPECT_EQ(read_tfrecords(good + third.substr(0, cut)).size(), 2u) << cut;
  std::string corrupt = good + third;
  corrupt[good.size() + 13] ^= 1;  // a flipped bit in the data: its CRC no longer matches
  EXPECT_EQ(read_tfrecords(corrupt).size(), 2u);
  corrupt = good + third;
  corrupt[good.size()] ^= 1;  // in the length
  EXPECT_EQ(read_tfrecords(corrupt).size(), 2u);
}

TEST(TensorBoard, EventsKeepTheirStep) {
  EXPECT_EQ(event_step(file_version_event(1.5)), 0);
  EXPECT_EQ(event_step(scalars_event(1.5, 300, {{"train/loss", 1.25}, {"eval/loss", 2.0}})), 300);
  EXPECT_EQ(event_step(text_event(1.5, 7, "config", "lr: 1\n")), 7);
  EXPECT_EQ(event_step(scalars_event(1.5, int64_t(1) << 40, {})), int64_t(1) << 40);
}

TEST(TensorBoard, TagsFollowHfTensorBoardCallback) {
  EXPECT_EQ(tensorboard_tag("loss"), "train/loss");
  EXPECT_EQ(tensorboard_tag("lr"), "train/lr");
  EXPECT_EQ(tensorboard_tag("rewards/accuracies"), "train/rewards/accuracies");
  EXPECT_EQ(tensorboard_tag("eval_loss"), "eval/loss");
  EXPECT_EQ(tensorboard_tag("eval_rewards/margins"), "eval/rewards/margins");
}

std::vector<int64_t> steps_in(const std::string& path) {
  std::vector<int64_t> steps;
  for (const auto& event : read_tfrecords(test::read_file(path))) steps.push_back(event_step(event));
  return steps;
}

TEST(TensorBoard, AResumedRunKeepsEventsUpToItsStepAndAppends) {
  const std::string dir = test::temp_dir("tensorboard_resume");
  std::string first;
  {
    TensorBoardWriter writer(dir, 0, "lr: 1\n");
    for (int64_t step = 1; step <= 5; ++step) writer.scalars(100.0 + step, step, {{"train/loss", 1.0}});
    first = writer.path();
  }
  EXPECT_EQ(steps_in(first), (std::vector<int64_t>{0, 0, 1, 2, 3, 4, 5}));  // file version, config, steps
  test::write_file(dir + "/events.out.tfevents.1.other", "not qtune's: left alone");
  {
    TensorBoardWriter writer(dir, 3, "lr: 1\n");  // its checkpoint was step 3
    EXPECT_EQ(writer.path(), first);
    writer.scalars(200, 4, {{"train/loss", 0.5}});
  }
  EXPECT_EQ(steps_in(first), (std::vector<int64_t>{0, 0, 1, 2, 3, 4}));
  EXPECT_EQ(test::read_file(dir + "/events.out.tfevents.1.other"), "not qtune's: left alone");
  {
    TensorBoardWriter writer(dir, 0, "lr: 2\n");  // a fresh run starts over: its file alone, without the old steps
    EXPECT_EQ(steps_in(writer.path()), (std::vector<int64_t>{0, 0}));
    int qtune_files = 0;
    for (const auto& entry : fs::directory_iterator(dir)) qtune_files += entry.path().extension() == ".qtune";
    EXPECT_EQ(qtune_files, 1);
  }
  EXPECT_TRUE(fs::exists(dir + "/events.out.tfevents.1.other"));
}

const char* kMinimal = "base_model: models/tiny\ndatasets:\n  - path: data/train.jsonl\n    type: alpaca\noutput_dir: out\n";

std::string write_config(const std::string& body) {
  const std::string dir = test::temp_dir("tensorboard_config");
  test::write_file(dir + "/config.yaml", body);
  return dir + "/config.yaml";
}

std::string load_error(const std::string& body) {
  try {
    TrainConfig::load(write_config(body));
  } catch (const InputError& e) {
    return e.what();
  }
  return "no error";
}

TEST(TensorBoard, ReportToAndLoggingDirKeys) {
  const std::string path = write_config(kMinimal);
  const std::string dir = fs::path(path).parent_path().string();
  TrainConfig plain = TrainConfig::load(path);
  EXPECT_FALSE(plain.reports_to_tensorboard());
  EXPECT_EQ(plain.logging_dir, dir + "/out/runs");  // HF's default root: <output_dir>/runs
  EXPECT_TRUE(TrainConfig::load(path, {"report_to=tensorboard"}).reports_to_tensorboard());
  EXPECT_TRUE(TrainConfig::load(path, {"report_to=[tensorboard]"}).reports_to_tensorboard());
  EXPECT_FALSE(TrainConfig::load(path, {"report_to=none"}).reports_to_tensorboard());
  EXPECT_EQ(TrainConfig::load(path, {"logging_dir=tb"}).logging_dir, dir + "/tb");  // relative to the config's folder
  EXPECT_EQ(TrainConfig::load(path, {"logging_dir=/abs/tb"}).logging_dir, "/abs/tb");

  const std::string base(kMinimal);
  EXPECT_NE(load_error(base + "report_to: wandb\n").find("key 'report_to': 'wandb' is not supported"), std::string::npos);
  EXPECT_NE(load_error(base + "report_to: [tensorboard, mlflow]\n").find("'mlflow' is not supported"), std::string::npos);
  EXPECT_NE(load_error(base + "report_to: tensorbord\n").find("did you mean 'tensorboard'"), std::string::npos);
  EXPECT_NE(load_error(base + "report_to: 3\n").find("key 'report_to' must be a string or a list of strings"), std::string::npos);
  EXPECT_NE(load_error(base + "logging_dir: [a]\n").find("key 'logging_dir' must be a string"), std::string::npos);
}

}  // namespace
}  // namespace qtune
