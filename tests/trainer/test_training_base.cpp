// The training base record (qtune_training_base.json): written and read back, read from the
// qtune_training.yaml of outputs made before it existed, refused when malformed, and compared on resume.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tests/support/files.h"
#include "trainer/training_base.h"

namespace qtune {
namespace {

TrainingBase llama_nf4() {
  TrainingBase b;
  b.base_model = "/models/llama";
  b.architecture = "LlamaForCausalLM";
  b.hidden_size = 64;
  b.num_layers = 2;
  b.vocab_size = 300;
  b.quantize = QuantizeOptions{QuantType::NF4, 64, true};
  b.compute_dtype = at::kBFloat16;
  return b;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST(TrainingBase, IsWrittenAndReadBack) {
  const std::string dir = test::temp_dir("base_record");
  write_training_base(dir, llama_nf4());
  const auto json = nlohmann::json::parse(test::read_file(dir + "/qtune_training_base.json"));
  EXPECT_EQ(json["format"], "qtune-training-base");
  EXPECT_EQ(json["version"], 1);
  EXPECT_EQ(json["quantize"], nlohmann::json({{"type", "nf4"}, {"blocksize", 64}, {"double_quant", true}}));
  EXPECT_EQ(json["compute_dtype"], "bfloat16");
  EXPECT_EQ(json["model"]["architecture"], "LlamaForCausalLM");
  const TrainingBase read = read_training_base(dir);
  EXPECT_EQ(read.source, dir + "/qtune_training_base.json");
  EXPECT_EQ(read.base_model, "/models/llama");
  EXPECT_EQ(read.vocab_size, 300);
  ASSERT_TRUE(read.quantize.has_value());
  EXPECT_EQ(read.quantize->type, QuantType::NF4);
  EXPECT_EQ(read.compute_dtype, at::kBFloat16);

  TrainingBase sixteen = llama_nf4();
  sixteen.quantize.reset();
  sixteen.compute_dtype = at::kFloat;
  write_training_base(dir, sixteen);
  EXPECT_FALSE(read_training_base(dir).quantize.has_value());
  EXPECT_EQ(read_training_base(dir).compute_dtype, at::kFloat);
}

// Outputs of earlier versions have the config as run, with the compute dtype appended.
TEST(TrainingBase, OldOutputsAreReadFromTheirYaml) {
  const std::string dir = test::temp_dir("old_output");
  test::write_file(dir + "/qtune_training.yaml", "base_model: model\nbnb_4bit_quant_type: fp4\nlora_r: 4\n\nbnb_4bit_compute_dtype: bfloat16\n");
  TrainingBase old = read_training_base(dir);
  EXPECT_EQ(old.source, dir + "/qtune_training.yaml");
  ASSERT_TRUE(old.quantize.has_value());  // load_in_4bit defaults to true
  EXPECT_EQ(old.quantize->type, QuantType::FP4);
  EXPECT_EQ(old.quantize->blocksize, 64);
  EXPECT_TRUE(old.quantize->double_quant);
  EXPECT_EQ(old.compute_dtype, at::kBFloat16);
  EXPECT_TRUE(old.architecture.empty());
  test::write_file(dir + "/qtune_training.yaml", "base_model: model\nload_in_4bit: false\n");
  old = read_training_base(dir);
  EXPECT_FALSE(old.quantize.has_value());
  EXPECT_FALSE(old.compute_dtype.has_value());
  // Nothing recorded (an adapter made elsewhere): nothing known.
  const TrainingBase none = read_training_base(test::temp_dir("peft_adapter"));
  EXPECT_TRUE(none.source.empty());
  EXPECT_FALSE(none.quantize.has_value());
}

TEST(TrainingBase, MalformedRecordsNameTheFile) {
  const std::string dir = test::temp_dir("bad_record");
  const std::string path = dir + "/qtune_training_base.json";
  test::write_file(path, R"({"format": "qtune-training-base", "version": 2})");
  EXPECT_NE(error_of([&] { read_training_base(dir); }).find(path + ": version 2 is not supported"), std::string::npos);
  test::write_file(path, R"({"format": "something-else"})");
  EXPECT_NE(error_of([&] { read_training_base(dir); }).find(path + ": not a qtune-training-base record"), std::string::npos);
  write_training_base(dir, llama_nf4());
  auto json = nlohmann::json::parse(test::read_file(path));
  json["quantize"]["type"] = "int3";
  test::write_file(path, json.dump());
  EXPECT_NE(error_of([&] { read_training_base(dir); }).find(path), std::string::npos);
}

// Resume refuses a base that differs in what the adapter depends on, and accepts a moved model folder.
TEST(TrainingBase, ResumeComparesWhatTheAdapterDependsOn) {
  TrainingBase checkpoint = llama_nf4();
  checkpoint.source = "out/checkpoint-4/qtune_training_base.json";
  TrainingBase moved = llama_nf4();
  moved.base_model = "/elsewhere/llama";
  EXPECT_NO_THROW(check_same_training_base(checkpoint, moved));

  TrainingBase fp4 = llama_nf4();
  fp4.quantize->type = QuantType::FP4;
  const std::string quantize = error_of([&] { check_same_training_base(checkpoint, fp4); });
  EXPECT_EQ(quantize.rfind(checkpoint.source + ": the checkpoint's base was 4-bit nf4 (blocksize 64, double quantization), this run's is 4-bit fp4", 0), 0u)
      << quantize;
  EXPECT_NE(quantize.find("or start a new output_dir"), std::string::npos) << quantize;

  TrainingBase f32 = llama_nf4();
  f32.compute_dtype = at::kFloat;
  EXPECT_NE(error_of([&] { check_same_training_base(checkpoint, f32); }).find("computed in bfloat16, this run's is computed in float32; set bf16: true"),
            std::string::npos);

  TrainingBase wider = llama_nf4();
  wider.hidden_size = 128;
  EXPECT_NE(error_of([&] { check_same_training_base(checkpoint, wider); }).find("resume with the base_model it trained on"), std::string::npos);

  TrainingBase old = checkpoint;  // records of earlier versions: no model, maybe no dtype
  old.architecture.clear();
  old.compute_dtype.reset();
  EXPECT_NO_THROW(check_same_training_base(old, wider));
  EXPECT_NO_THROW(check_same_training_base(TrainingBase{}, fp4));  // no record at all
}

}  // namespace
}  // namespace qtune
