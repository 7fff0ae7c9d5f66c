// Data-parallel training on the CPU machine (Gloo over loopback, ranks spawned by qtune train --nproc):
// 2 ranks × micro-batch b give the losses and adapter of 1 rank × micro-batch 2b for SFT and DPO (the
// reference log-probs precomputed, each rank scoring a share) (fp32,
// rel ≤ 1e-6 at every step); only rank 0 writes; a rank killed mid-run stops the other at once with a
// line naming it, and resuming on 2 ranks reproduces the uninterrupted run to the bit (every rank's RNG
// and the data position are in the checkpoint); a 2-rank checkpoint resumes on 1 rank with a note.
#include <gtest/gtest.h>
#include <signal.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "adapters/peft_format.h"
#include "tests/support/test_support.h"

namespace qtune {
namespace {

namespace fs = std::filesystem;

// A tiny model and 40 chat samples or pairs (answers of different lengths, so rows are padded).
std::string make_run(const std::string& name, bool pairs, const std::string& extra) {
  const std::string dir = test::temp_dir(name);
  test::make_byte_model(dir + "/model");
  std::ofstream data(dir + "/data.jsonl");
  const char* words[] = {"cat", "doggo", "sun", "skyline", "red", "seaside", "owl", "figure"};
  for (int i = 0; i < 40; ++i) {
    const std::string w = words[i % 8] + std::to_string(i);
    if (pairs) data << nlohmann::json({{"prompt", "say " + w}, {"chosen", w + "!"}, {"rejected", w}}).dump() << "\n";
    else data << nlohmann::json({{"messages", {{{"role", "user"}, {"content", "say " + w}}, {{"role", "assistant"}, {"content", w + " " + w}}}}}).dump() << "\n";
  }
  test::write_file(dir + "/config.yaml", std::string("base_model: model\ndatasets:\n  - path: data.jsonl\n    type: ") +
                                             (pairs ? "preference\nrl: dpo\nrl_beta: 0.5\nprecompute_ref_log_probs: true\n" : "chat_template\n") +
                                             "chat_template: chatml\nsequence_len: 64\ngradient_accumulation_steps: 2\nmax_steps: 6\n"
                                             "learning_rate: 0.01\nlora_r: 4\nlora_alpha: 8\nlora_dropout: 0\nlora_target_linear: true\n"
                                             "output_dir: out\nseed: 5\ndevice: cpu\nsave_steps: 3\npad_to_sequence_len: true\nval_set_size: 8\neval_steps: 3\n" + extra);
  return dir + "/config.yaml";
}

// `key` of every metrics.jsonl record that has it.
std::vector<double> logged(const std::string& config, const std::string& key = "loss") {
  std::vector<double> out;
  std::ifstream in(fs::path(config).parent_path() / "out" / "metrics.jsonl");
  for (std::string line; std::getline(in, line);)
    if (const auto record = nlohmann::json::parse(line); record.contains(key)) out.push_back(record.at(key).get<double>());
  return out;
}

// One BLAS thread per process for the whole test. The BLAS (MKL in PyTorch's wheel) splits a GEMM's work by
// its thread count and that changes the order of the additions (~1e-7 apart, which Adam turns into ~1e-5
// after a few steps); qtune train --nproc N gives each rank cores/N threads, so the one-rank reference must run with as many
// threads as each rank for the comparison to be about data parallelism alone.
class OneBlasThread {
 public:
  OneBlasThread() {
    ::setenv("MKL_NUM_THREADS", "1", 1);
    ::setenv("OMP_NUM_THREADS", "1", 1);
  }
  ~OneBlasThread() {
    ::unsetenv("MKL_NUM_THREADS");
    ::unsetenv("OMP_NUM_THREADS");
  }
};

void expect_same_training(bool pairs, const std::string& lora = "") {
  OneBlasThread threads;
  const std::string tag = (pairs ? "dpo" : "sft") + std::string(lora.empty() ? "" : "_variant");
  const std::string one = make_run(tag + "_one_rank", pairs, "micro_batch_size: 4\n" + lora);
  auto r1 = test::run_qtune("train " + one);
  ASSERT_EQ(r1.exit_code, 0) << r1.out;
  // DPO with 2 KiB gradient buckets (a few adapters each), SFT with the default (one bucket here).
  const std::string two = make_run(tag + "_two_ranks", pairs, std::string("micro_batch_size: 2\n") + (pairs ? "ddp_bucket_cap_mb: 0.002\n" : "") + lora);
  auto r2 = test::run_qtune("train " + two + " --nproc 2");
  ASSERT_EQ(r2.exit_code, 0) << r2.out;
  EXPECT_EQ(r2.out.find("step 1/6"), r2.out.rfind("step 1/6")) << "more than one rank reported:\n" << r2.out;

  const auto a = logged(one), b = logged(two);
  ASSERT_EQ(a.size(), 6u);
  ASSERT_EQ(b.size(), 6u);  // rank 0 alone writes metrics.jsonl
  // Each token is computed by the same per-sequence GEMMs on 1 and 2 ranks and the LoRA gradients are
  // float64 sums, so the runs agree to float32 rounding (measured: equal to the bit).
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(b[i], a[i], 1e-6 * std::abs(a[i])) << "step " << i + 1;
  // Validation at steps 3 and 6, each rank evaluating every other batch.
  const auto eval_a = logged(one, "eval_loss"), eval_b = logged(two, "eval_loss");
  ASSERT_EQ(eval_a.size(), 2u);
  ASSERT_EQ(eval_b.size(), 2u);
  for (std::size_t i = 0; i < 2; ++i) EXPECT_NEAR(eval_b[i], eval_a[i], 1e-6 * std::abs(eval_a[i]));
  const PeftAdapter x = read_peft_adapter((fs::path(one).parent_path() / "out").string());
  const PeftAdapter y = read_peft_adapter((fs::path(two).parent_path() / "out").string());
  ASSERT_EQ(x.modules.size(), y.modules.size());
  for (const auto& [name, factors] : x.modules) {
    EXPECT_LE(test::max_relative_error(y.modules.at(name).A, factors.A), 1e-6) << name;
    EXPECT_LE(test::max_relative_error(y.modules.at(name).B, factors.B), 1e-6) << name;
    if (factors.magnitude.defined()) EXPECT_LE(test::max_relative_error(y.modules.at(name).magnitude, factors.magnitude), 1e-6) << name;
  }
  EXPECT_TRUE(fs::exists(fs::path(two).parent_path() / "out" / "checkpoint-6"));
}

TEST(DistributedTrain, TwoRanksEqualOneRankWithTheDoubleBatchSft) { expect_same_training(false); }
TEST(DistributedTrain, TwoRanksEqualOneRankWithTheDoubleBatchDpo) { expect_same_training(true); }
// DoRA's magnitude gradients go through the same float64 sums and buckets; PiSSA starts alike on every rank.
TEST(DistributedTrain, TwoRanksEqualOneRankWithDora) { expect_same_training(false, "peft_use_dora: true\n"); }
TEST(DistributedTrain, TwoRanksEqualOneRankWithPissa) { expect_same_training(false, "lora_init: pissa\n"); }

// The run of the kill-and-resume tests: 2 ranks, 16 steps, a checkpoint every 2, LoRA dropout on (so each
// rank's RNG must come back too).
constexpr const char* kLongRun = " --nproc 2 micro_batch_size=2 max_steps=16 save_steps=2 lora_dropout=0.1";

// Starts `config` on 2 ranks and kills rank 1 once checkpoint-2 is written; returns the command's result.
test::CommandResult kill_rank_one_after_first_checkpoint(const std::string& config, std::chrono::steady_clock::duration* took) {
  const fs::path checkpoint = fs::path(config).parent_path() / "out" / "checkpoint-2";
  std::thread killer([&] {
    for (int i = 0; i < 6000 && !fs::exists(checkpoint); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    // Anchored at the program name so that the shell running pkill (whose command line holds the
    // pattern too) does not match; the newest match is the last rank started.
    std::system(("pkill -KILL --newest -f '^[^ ]*qtune train " + config + kLongRun + "$'").c_str());
  });
  const auto start = std::chrono::steady_clock::now();
  auto r = test::run_qtune("train " + config + kLongRun);
  *took = std::chrono::steady_clock::now() - start;
  killer.join();
  return r;
}

TEST(DistributedTrain, AKilledRankStopsTheOthersAndResumingReproducesTheUninterruptedRun) {
  const std::string straight = make_run("ddp_straight", false, "");
  auto s = test::run_qtune("train " + straight + kLongRun);
  ASSERT_EQ(s.exit_code, 0) << s.out;

  const std::string config = make_run("ddp_kill", false, "");
  std::chrono::steady_clock::duration took{};
  auto killed = kill_rank_one_after_first_checkpoint(config, &took);
  ASSERT_NE(killed.exit_code, 0) << "the run ended before the kill:\n" << killed.out;
  EXPECT_NE(killed.out.find("error: rank 1 of 2 was killed by signal 9; stopping the other ranks"), std::string::npos) << killed.out;
  EXPECT_LT(took, std::chrono::seconds(90));

  // Resume on 2 ranks from the last complete checkpoint: the same losses and the same adapter, to the bit.
  auto resumed = test::run_qtune("train " + config + kLongRun + " resume_from_checkpoint=auto");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.out;
  EXPECT_EQ(resumed.out.find("note:"), std::string::npos) << resumed.out;
  EXPECT_EQ(logged(config), logged(straight));
  const std::string adapter = "/out/adapter_model.safetensors";
  EXPECT_EQ(test::read_file(fs::path(straight).parent_path().string() + adapter), test::read_file(fs::path(config).parent_path().string() + adapter));
}

TEST(DistributedTrain, ACheckpointOfTwoRanksResumesOnOneWithANote) {
  const std::string config = make_run("ddp_to_one", false, "");
  auto first = test::run_qtune("train " + config + kLongRun + " stop_after_steps=3");
  ASSERT_EQ(first.exit_code, 0) << first.out;
  // 32 training samples: 8 global micro-batches of 2 × 2 rows per epoch on 2 ranks, 16 of 2 rows on one;
  // after 3 steps × 2 accumulation = 6 of 8, one rank continues at 12 of 16.
  auto r = test::run_qtune("train " + config + " micro_batch_size=2 max_steps=16 save_steps=2 lora_dropout=0.1 resume_from_checkpoint=auto");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("was written by 2 rank(s), this run has 1: continuing at the same point of the epoch (global micro-batch 12 instead of 6)"),
            std::string::npos) << r.out;
  std::vector<nlohmann::json> records;
  std::ifstream in(fs::path(config).parent_path() / "out" / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) records.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(records.size(), 16u);
  EXPECT_DOUBLE_EQ(records[2]["epoch"].get<double>(), 0.75);   // 6 of 8 (2 ranks)
  EXPECT_DOUBLE_EQ(records[3]["epoch"].get<double>(), 0.875);  // 14 of 16 (1 rank)
  EXPECT_TRUE(fs::exists(fs::path(config).parent_path() / "out" / "adapter_model.safetensors"));
}

TEST(DistributedTrain, NcclWithoutGpusIsAnErrorNamingTheConfig) {
  const std::string config = make_run("ddp_nccl_cpu", false, "");
  auto r = test::run_qtune("train " + config + " ddp_backend=nccl");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("error: " + config + ": ddp_backend: nccl needs training on GPUs"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace qtune
