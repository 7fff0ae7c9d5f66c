// `qtune train` with rl: dpo / orpo end to end on a tiny model: pair accuracy rises, metrics.jsonl has
// TRL's names, a stopped and resumed run equals an uninterrupted one, DPO from an SFT adapter starts at
// zero rewards (that adapter is the reference), and bad pairs are counted or named file:line.
#include <gtest/gtest.h>

#include <cmath>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "tests/support/files.h"

namespace qtune {
namespace {

namespace fs = std::filesystem;

const char* kWords[] = {"cat", "dog", "sun", "sky", "red", "sea", "owl", "fig"};

std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

// A tiny model and 48 pairs "say w" -> chosen "W", rejected "w"; returns the config path.
std::string make_run(const std::string& name, const std::string& extra) {
  const std::string dir = test::temp_dir(name);
  test::make_byte_model(dir + "/model");
  std::ofstream data(dir + "/pairs.jsonl");
  for (int i = 0; i < 48; ++i) {
    const std::string w = kWords[i % 8] + std::to_string(i / 8);
    data << nlohmann::json({{"prompt", "say " + w}, {"chosen", upper(w)}, {"rejected", w}}).dump() << "\n";
  }
  test::write_file(dir + "/config.yaml", "base_model: model\n"
                                         "datasets:\n  - path: pairs.jsonl\n    type: preference\n"
                                         "chat_template: chatml\nsequence_len: 64\nmicro_batch_size: 4\ngradient_accumulation_steps: 2\n"
                                         "max_steps: 12\nlearning_rate: 0.005\nwarmup_steps: 2\nlora_r: 4\nlora_alpha: 8\nlora_dropout: 0.1\n"
                                         "lora_target_linear: true\noutput_dir: out\nseed: 3\ndevice: cpu\n" +
                                             extra);
  return dir + "/config.yaml";
}

std::vector<nlohmann::json> metrics(const std::string& config) {
  std::vector<nlohmann::json> lines;
  std::ifstream in(fs::path(config).parent_path() / "out" / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

TEST(PreferenceRun, DpoLearnsThePreferenceAndLogsTrlMetrics) {
  const std::string config = make_run("dpo", "rl: dpo\nrl_beta: 0.5\n");
  auto r = test::run_qtune("train " + config);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  auto m = metrics(config);
  ASSERT_EQ(m.size(), 12u);
  for (const char* name : {"rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins", "logps/chosen", "logps/rejected",
                           "logits/chosen", "logits/rejected"})
    EXPECT_TRUE(m.back().contains(name)) << name;
  // Step 1 scores before any update: policy = reference. The two are separate forward passes, equal to the bit
  // only when BLAS takes the same code path in both; some runs of the same binary give a margin of -1.0e-4
  // (logps ≈ -35, so about 50 float32 ulps of the summed log-probabilities; cause not pinned down, 2026-12-05).
  // The bound: 1e-5 of β·(|logps/chosen| + |logps/rejected|), 3.5e-4 here.
  const double scale = 0.5 * (std::abs(m.front()["logps/chosen"].get<double>()) + std::abs(m.front()["logps/rejected"].get<double>()));
  EXPECT_LE(std::abs(m.front()["rewards/margins"].get<double>()), 1e-5 * scale) << "scale " << scale;
  EXPECT_GT(m.back()["rewards/margins"].get<double>(), 0.5);
  EXPECT_EQ(m.back()["rewards/accuracies"].get<double>(), 1.0);
  EXPECT_LT(m.back()["loss"].get<double>(), 0.5 * m.front()["loss"].get<double>());
  EXPECT_NE(r.out.find("acc 1.00"), std::string::npos) << r.out;
  EXPECT_TRUE(fs::exists(fs::path(config).parent_path() / "out" / "adapter_model.safetensors"));
}

TEST(PreferenceRun, StoppedAndResumedEqualsUninterrupted) {
  const std::string extra = "rl: dpo\nrl_beta: 0.5\nval_set_size: 8\neval_steps: 4\ndisable_dropout: false\n";  // dropout: the RNG resumes too
  const std::string straight = make_run("dpo_straight", extra);
  ASSERT_EQ(test::run_qtune("train " + straight).exit_code, 0);
  const std::string resumed = make_run("dpo_resumed", extra);
  auto first = test::run_qtune("train " + resumed + " stop_after_steps=5");
  ASSERT_EQ(first.exit_code, 0) << first.out;
  auto second = test::run_qtune("train " + resumed + " resume_from_checkpoint=auto");
  ASSERT_EQ(second.exit_code, 0) << second.out;
  auto a = metrics(straight), b = metrics(resumed);
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i)
    for (const char* key : {"loss", "rewards/margins", "grad_norm"}) EXPECT_EQ(a[i][key], b[i][key]) << "step " << i + 1 << " " << key;
  EXPECT_EQ(a.back()["eval_rewards/accuracies"], b.back()["eval_rewards/accuracies"]);
  const std::string adapter = "/out/adapter_model.safetensors";
  EXPECT_EQ(test::read_file(fs::path(straight).parent_path().string() + adapter), test::read_file(fs::path(resumed).parent_path().string() + adapter));
}

TEST(PreferenceRun, OrpoAndDpoFromAnAdapter) {
  const std::string orpo = make_run("orpo", "rl: orpo\norpo_alpha: 0.5\n");
  auto r = test::run_qtune("train " + orpo);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  auto m = metrics(orpo);
  for (const char* name : {"nll_loss", "log_odds_ratio", "log_odds_chosen"}) EXPECT_TRUE(m.back().contains(name)) << name;
  EXPECT_LT(m.back()["nll_loss"].get<double>(), m.front()["nll_loss"].get<double>());

  // DPO continuing the ORPO adapter: that adapter is the reference, so step 1 has zero rewards and a loss of log 2.
  const std::string adapter = (fs::path(orpo).parent_path() / "out").string();
  const std::string dpo = make_run("dpo_from_adapter", "rl: dpo\nlora_model_dir: " + adapter + "\nmax_steps: 2\n");
  auto d = test::run_qtune("train " + dpo);
  ASSERT_EQ(d.exit_code, 0) << d.out;
  auto first = metrics(dpo).front();
  EXPECT_NEAR(first["loss"].get<double>(), std::log(2.0), 1e-6);
  EXPECT_EQ(first["rewards/chosen"].get<double>(), 0.0);
  EXPECT_LT(first["logps/chosen"].get<double>(), 0.0);
}

TEST(PreferenceRun, BadPairsAreCountedOrNamedWithTheirLine) {
  const std::string config = make_run("bad_pairs", "rl: dpo\nsequence_len: 40\n");
  const std::string dir = fs::path(config).parent_path().string();
  {
    std::ofstream data(dir + "/pairs.jsonl", std::ios::app);
    data << nlohmann::json({{"prompt", std::string(60, 'x')}, {"chosen", "A"}, {"rejected", "B"}}).dump() << "\n";  // line 49
  }
  auto ok = test::run_qtune("validate " + config);
  ASSERT_EQ(ok.exit_code, 0) << ok.out;
  EXPECT_NE(ok.out.find("48 pairs"), std::string::npos) << ok.out;
  EXPECT_NE(ok.out.find("1 dropped as the prompt fills sequence_len"), std::string::npos) << ok.out;

  {
    std::ofstream data(dir + "/pairs.jsonl", std::ios::app);
    data << R"({"prompt": "say hi", "chosen": "hi", "rejected": "hi"})" << "\n"   // line 50: identical
         << R"({"prompt": "say hi", "chosen": ""})" << "\n";                       // line 51
  }
  auto identical = test::run_qtune("validate " + config);
  EXPECT_EQ(identical.exit_code, 2);
  EXPECT_NE(identical.out.find("pairs.jsonl:50: fields 'chosen' and 'rejected' are identical"), std::string::npos) << identical.out;

  std::string yaml = test::read_file(config);
  yaml.replace(yaml.find("type: preference"), 16, "type: preference\n    skip_bad_lines: true");
  test::write_file(config, yaml);
  auto skipped = test::run_qtune("validate " + config);
  ASSERT_EQ(skipped.exit_code, 0) << skipped.out;
  EXPECT_NE(skipped.out.find("2 skipped"), std::string::npos) << skipped.out;
  EXPECT_NE(skipped.out.find("pairs.jsonl:51:"), std::string::npos) << skipped.out;  // the missing 'rejected' field

  auto sft = test::run_qtune("validate " + config + " rl=");
  EXPECT_EQ(sft.exit_code, 2);
  EXPECT_NE(sft.out.find("need rl: dpo, ipo, orpo or simpo"), std::string::npos) << sft.out;
  auto packed = test::run_qtune("train " + config + " sample_packing=true");
  EXPECT_EQ(packed.exit_code, 2);
  EXPECT_NE(packed.out.find("sample_packing does not apply to rl: dpo"), std::string::npos) << packed.out;
}

}  // namespace
}  // namespace qtune
