// `qtune train` end to end on a tiny model with qtune's byte tokenizer: the loss falls, a run stopped
// and resumed equals an uninterrupted one (same losses, byte-identical adapter), SIGTERM saves a
// checkpoint and exits 0, and the outputs are a PEFT adapter.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "tests/support/files.h"

namespace qtune {
namespace {

namespace fs = std::filesystem;

// A model with the byte tokenizer and a small chat dataset in a fresh folder; returns the config path.
std::string make_run(const std::string& name, const std::string& extra = "") {
  const std::string dir = test::temp_dir(name);
  test::make_byte_model(dir + "/model");
  std::ofstream data(dir + "/train.jsonl");
  const char* words[] = {"cat", "dog", "sun", "sky", "red", "sea", "owl", "fig"};
  for (int i = 0; i < 64; ++i) {
    std::string w = words[i % 8];
    data << nlohmann::json({{"messages", {{{"role", "user"}, {"content", "say " + w}}, {{"role", "assistant"}, {"content", w + " " + w}}}}}).dump()
         << "\n";
  }
  test::write_file(dir + "/config.yaml", "base_model: model\n"
                                         "datasets:\n  - path: train.jsonl\n    type: chat_template\n"
                                         "chat_template: chatml\nsequence_len: 64\nsample_packing: true\nmicro_batch_size: 2\n"
                                         "gradient_accumulation_steps: 2\nmax_steps: 20\nlearning_rate: 0.01\nlr_scheduler: cosine\nwarmup_steps: 2\n"
                                         "lora_r: 4\nlora_alpha: 8\nlora_dropout: 0.1\nlora_target_linear: true\nload_in_4bit: true\n"
                                         "output_dir: out\nlogging_steps: 1\nseed: 7\ndevice: cpu\n" +
                                             extra);
  return dir + "/config.yaml";
}

std::vector<double> losses(const std::string& metrics) {
  std::vector<double> out;
  std::ifstream in(metrics);
  for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line).at("loss").get<double>());
  return out;
}

TEST(Train, LossFallsAndTheOutputIsAPeftAdapter) {
  const std::string config = make_run("falls");
  auto r = test::run_qtune("train " + config);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const std::string out = fs::path(config).parent_path() / "out";
  auto l = losses(out + "/metrics.jsonl");
  ASSERT_EQ(l.size(), 20u);
  EXPECT_LT(l.back(), l.front() * 0.7) << "loss did not fall: " << l.front() << " -> " << l.back();
  // Each line has its step's time; GPU memory only on a GPU.
  std::ifstream metrics(out + "/metrics.jsonl");
  std::string line, last_line;
  while (std::getline(metrics, line)) last_line = line;
  const auto last = nlohmann::json::parse(last_line);
  EXPECT_GT(last.at("step_time_s").get<double>(), 0.0);
  const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  EXPECT_NEAR(last.at("wall_time").get<double>(), now, 600.0);  // Unix seconds of the line (bench/compare.py's clock)
  EXPECT_FALSE(last.contains("device_peak_allocated_bytes"));
  EXPECT_TRUE(fs::exists(out + "/adapter_model.safetensors"));
  auto adapter = nlohmann::json::parse(test::read_file(out + "/adapter_config.json"));
  EXPECT_EQ(adapter["peft_type"], "LORA");
  EXPECT_EQ(adapter["r"], 4);
  EXPECT_TRUE(fs::exists(out + "/tokenizer.json"));
  EXPECT_NE(r.out.find("done: 20 steps"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("rss "), std::string::npos) << r.out;  // the progress line's memory on the CPU
  // The run record and the report (what `qtune report` reads and writes), named by the last line.
  EXPECT_NE(r.out.find("; report " + out + "/report.html\n"), std::string::npos) << r.out;
  EXPECT_NE(test::read_file(out + "/report.html").find(R"(<svg class="plot" data-metric="loss")"), std::string::npos);
  const auto record = nlohmann::json::parse(test::read_file(out + "/qtune_run.json"));
  EXPECT_EQ(record["status"], "done");
  EXPECT_EQ(record["recipe"], "sft");
  EXPECT_EQ(record["total_steps"], 20);
  EXPECT_EQ(record["final"]["steps"], 20);
  EXPECT_DOUBLE_EQ(record["final"]["loss"].get<double>(), l.back());
  EXPECT_EQ(record["data"]["train_samples"], 64);
  EXPECT_EQ(record["data"]["datasets"][0]["samples"], 64);
  EXPECT_GT(record["data"]["packing_efficiency"].get<double>(), 0.5);
  EXPECT_EQ(record["memory_plan"]["text"].get<std::string>().rfind("memory plan on cpu", 0), 0u);
  EXPECT_EQ(record["config"], test::read_file(out + "/qtune_training.yaml"));

  // Generation with the adapter equals generation with the merged model (greedy, f32).
  const std::string dir = fs::path(config).parent_path();
  auto with_adapter = test::run_qtune("generate --model " + dir + "/model --adapter " + out + " --prompt 'say dog' --chat --max-new-tokens 8");
  ASSERT_EQ(with_adapter.exit_code, 0) << with_adapter.out;
  auto merged = test::run_qtune("merge --base " + dir + "/model --adapter " + out + " --out " + dir + "/merged --dtype f32");
  ASSERT_EQ(merged.exit_code, 0) << merged.out;
  EXPECT_NE(merged.out.find("4-bit base was dequantized to f32"), std::string::npos) << merged.out;  // as trained: load_in_4bit, CPU
  auto from_merged = test::run_qtune("generate --model " + dir + "/merged --prompt 'say dog' --chat --max-new-tokens 8");
  ASSERT_EQ(from_merged.exit_code, 0) << from_merged.out;
  EXPECT_EQ(with_adapter.out, from_merged.out);
}

// Beside the adapter: the training base record (what merge, generate and resume read) and the config as run.
TEST(Train, OutputsRecordTheBaseTheyTrainedOn) {
  const std::string config = make_run("records", "max_steps: 2\nsave_steps: 2\n");
  auto r = test::run_qtune("train " + config + " lora_r=2");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const std::string dir = fs::path(config).parent_path(), out = dir + "/out";
  for (const std::string& folder : {out, out + "/checkpoint-2"}) {
    const auto base = nlohmann::json::parse(test::read_file(folder + "/qtune_training_base.json"));
    EXPECT_EQ(base["format"], "qtune-training-base");
    EXPECT_EQ(base["version"], 1);
    EXPECT_EQ(base["base_model"], dir + "/model");
    EXPECT_EQ(base["model"]["architecture"], "Qwen2ForCausalLM");
    EXPECT_EQ(base["quantize"], nlohmann::json({{"type", "nf4"}, {"blocksize", 64}, {"double_quant", true}}));
    EXPECT_EQ(base["compute_dtype"], "float32");  // bf16: auto on the CPU
    const std::string yaml = test::read_file(folder + "/qtune_training.yaml");
    EXPECT_EQ(yaml.rfind("# the config as run: " + config + " with lora_r=2\n", 0), 0u) << yaml;
    EXPECT_NE(yaml.find("\nlora_r: 2\n"), std::string::npos) << yaml;
  }
  // An output of an earlier version has only the config as run, with the compute dtype appended: merge reads it.
  fs::remove(out + "/qtune_training_base.json");
  test::write_file(out + "/qtune_training.yaml", test::read_file(config) + "\nbnb_4bit_compute_dtype: bfloat16\n");
  auto merged = test::run_qtune("merge --base " + dir + "/model --adapter " + out + " --out " + dir + "/merged");
  ASSERT_EQ(merged.exit_code, 0) << merged.out;
  EXPECT_NE(merged.out.find("4-bit base was dequantized to bf16"), std::string::npos) << merged.out;
}

// Resume refuses a checkpoint whose base differs from the run's in what the adapter depends on, before any step.
TEST(Train, ResumeRefusesACheckpointOfAnotherBase) {
  const std::string config = make_run("other_base", "max_steps: 4\n");
  ASSERT_EQ(test::run_qtune("train " + config + " stop_after_steps=2").exit_code, 0);
  const std::string checkpoint = (fs::path(config).parent_path() / "out" / "checkpoint-2").string();
  auto r = test::run_qtune("train " + config + " resume_from_checkpoint=auto bnb_4bit_quant_type=fp4");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_EQ(r.out.rfind("error: " + checkpoint + "/qtune_training_base.json: the checkpoint's base was 4-bit nf4", 0), 0u) << r.out;
  EXPECT_NE(r.out.find("this run's is 4-bit fp4"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("bnb_4bit_quant_type"), std::string::npos) << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << "one line expected: " << r.out;
  auto same = test::run_qtune("train " + config + " resume_from_checkpoint=auto");
  EXPECT_EQ(same.exit_code, 0) << same.out;
}

// bf16: true computes in bf16 on the CPU too (HF's bf16 autocast does there); the default, auto, keeps fp32 on
// the CPU (the test above merges "dequantized to f32"). The run records its compute dtype, which merge uses.
TEST(Train, Bf16TrueComputesInBf16OnTheCpu) {
  const std::string config = make_run("bf16_cpu", "bf16: true\n");
  auto r = test::run_qtune("train " + config);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const std::string dir = fs::path(config).parent_path();
  auto l = losses(dir + "/out/metrics.jsonl");
  ASSERT_EQ(l.size(), 20u);
  EXPECT_LT(l.back(), l.front() * 0.7) << "loss did not fall in bf16: " << l.front() << " -> " << l.back();
  auto merged = test::run_qtune("merge --base " + dir + "/model --adapter " + dir + "/out --out " + dir + "/merged");
  ASSERT_EQ(merged.exit_code, 0) << merged.out;
  EXPECT_NE(merged.out.find("4-bit base was dequantized to bf16"), std::string::npos) << merged.out;
}

// `qtune train` on a run with `extra` in its config stops with exit status 2 and "error: CONFIG: <message>".
void expect_config_error(const std::string& name, const std::string& extra, const std::string& message) {
  const std::string config = make_run(name, extra);
  auto r = test::run_qtune("train " + config);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("error: " + config + ": " + message), std::string::npos) << r.out;
}

TEST(Train, GpuMemoryLimitNeedsACudaDevice) {
  expect_config_error("gpu_limit", "gpu_memory_limit: 1GiB\n", "key 'gpu_memory_limit' needs a CUDA device (this run is on cpu)");
}

// offload_base streams the 4-bit layers from host memory: the same run as the resident model with
// checkpointing (losses, adapter bytes), plus what the streaming moved in each metrics line.
TEST(Train, OffloadBaseTrainsExactlyAsTheResidentModel) {
  const std::string resident = make_run("resident", "gradient_checkpointing: true\noffload_base: false\n");
  auto a = test::run_qtune("train " + resident);
  ASSERT_EQ(a.exit_code, 0) << a.out;
  EXPECT_NE(a.out.find("memory plan on cpu (estimate)"), std::string::npos) << a.out;
  const std::string streamed = make_run("streamed", "offload_base: true\n");
  auto b = test::run_qtune("train " + streamed);
  ASSERT_EQ(b.exit_code, 0) << b.out;
  EXPECT_NE(b.out.find("2 slots for the streamed decoder layers (offload_base)"), std::string::npos) << b.out;
  const std::string out_a = fs::path(resident).parent_path() / "out", out_b = fs::path(streamed).parent_path() / "out";
  EXPECT_EQ(losses(out_a + "/metrics.jsonl"), losses(out_b + "/metrics.jsonl"));
  EXPECT_EQ(test::read_file(out_a + "/adapter_model.safetensors"), test::read_file(out_b + "/adapter_model.safetensors"));
  std::ifstream metrics(out_b + "/metrics.jsonl");
  std::string line;
  std::getline(metrics, line);
  const auto first = nlohmann::json::parse(line);
  EXPECT_GT(first.at("offload_h2d_bytes").get<double>(), 0.0);
  EXPECT_GT(first.at("offload_h2d_gb_per_s").get<double>(), 0.0);
  EXPECT_EQ(first.at("offload_copy_hidden").get<double>(), 0.0);  // a CPU copy overlaps nothing
  EXPECT_EQ(test::read_file(out_a + "/metrics.jsonl").find("offload_h2d_bytes"), std::string::npos);
}

// What the memory plan does when nothing else fits: the same rows per step in smaller micro-batches. Without
// dropout the steps are the same (the loss is normalized over the whole step; CPU gradient sums are float64).
TEST(Train, SplittingMicroBatchesKeepsTheSteps) {
  const std::string whole = make_run("whole", "micro_batch_size: 4\ngradient_accumulation_steps: 1\nlora_dropout: 0\nmax_steps: 6\n");
  const std::string split = make_run("split", "micro_batch_size: 2\ngradient_accumulation_steps: 2\nlora_dropout: 0\nmax_steps: 6\n");
  ASSERT_EQ(test::run_qtune("train " + whole).exit_code, 0);
  ASSERT_EQ(test::run_qtune("train " + split).exit_code, 0);
  const std::string a = fs::path(whole).parent_path() / "out", b = fs::path(split).parent_path() / "out";
  EXPECT_EQ(losses(a + "/metrics.jsonl"), losses(b + "/metrics.jsonl"));
  EXPECT_EQ(test::read_file(a + "/adapter_model.safetensors"), test::read_file(b + "/adapter_model.safetensors"));
}

// A checkpoint resumed with other micro-batches (another gpu_memory_limit can make the plan split them):
// the run continues at the same point of the epoch, and says so.
TEST(Train, ResumingWithAnotherMicroBatchSplitContinuesAtTheSamePoint) {
  const std::string config = make_run("resplit", "micro_batch_size: 4\ngradient_accumulation_steps: 1\nmax_steps: 8\n");
  ASSERT_EQ(test::run_qtune("train " + config + " stop_after_steps=4").exit_code, 0);
  auto r = test::run_qtune("train " + config + " resume_from_checkpoint=auto micro_batch_size=2 gradient_accumulation_steps=2");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("micro-batches per epoch, this run has"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("(global micro-batch 8 instead of 4)"), std::string::npos) << r.out;
  EXPECT_EQ(losses(fs::path(config).parent_path() / "out" / "metrics.jsonl").size(), 8u);
}

TEST(Train, OffloadBaseNeedsAFourBitBase) {
  expect_config_error("offload_16bit", "offload_base: true\nload_in_4bit: false\n",
                      "offload_base streams 4-bit layers from host memory; set load_in_4bit: true");
}

// A run stopped after step 10 and resumed gives the losses and the adapter (to the byte) of the run that never stopped.
void expect_exact_resume(const std::string& name, const std::string& extra) {
  const std::string straight = make_run(name + "_straight", extra);
  ASSERT_EQ(test::run_qtune("train " + straight).exit_code, 0);
  const std::string resumed = make_run(name + "_resumed", extra);
  auto first = test::run_qtune("train " + resumed + " stop_after_steps=10");
  ASSERT_EQ(first.exit_code, 0) << first.out;
  EXPECT_NE(first.out.find("resume_from_checkpoint=auto"), std::string::npos) << first.out;
  auto second = test::run_qtune("train " + resumed + " resume_from_checkpoint=auto");
  ASSERT_EQ(second.exit_code, 0) << second.out;
  const std::string a = fs::path(straight).parent_path() / "out", b = fs::path(resumed).parent_path() / "out";
  EXPECT_EQ(losses(a + "/metrics.jsonl"), losses(b + "/metrics.jsonl"));
  EXPECT_EQ(test::read_file(a + "/adapter_model.safetensors"), test::read_file(b + "/adapter_model.safetensors"));
}

TEST(Train, StoppedAndResumedEqualsUninterrupted) { expect_exact_resume("plain", ""); }
// DoRA's magnitudes and their moments; PiSSA's start, re-drawn on the 4-bit base at resume.
TEST(Train, DoraStoppedAndResumedEqualsUninterrupted) { expect_exact_resume("dora", "peft_use_dora: true\n"); }
TEST(Train, PissaStoppedAndResumedEqualsUninterrupted) { expect_exact_resume("pissa", "lora_init: pissa_niter_2\n"); }

TEST(Train, SigtermSavesACheckpointAndExitsZero) {
  const std::string config = make_run("sigterm", "max_steps: 100000\n");
  const std::string command = std::string(QTUNE_BINARY) + " train " + config + " > " + fs::path(config).parent_path().string() + "/log.txt 2>&1";
  pid_t pid = fork();
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", ("exec " + command).c_str(), nullptr);
    _exit(127);
  }
  const std::string metrics = (fs::path(config).parent_path() / "out" / "metrics.jsonl").string();
  for (int i = 0; i < 600 && losses(metrics).size() < 3; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << test::read_file(fs::path(config).parent_path() / "log.txt");
  bool checkpoint = false;
  for (const auto& e : fs::directory_iterator(fs::path(config).parent_path() / "out"))
    checkpoint = checkpoint || e.path().filename().string().rfind("checkpoint-", 0) == 0;
  EXPECT_TRUE(checkpoint);
  EXPECT_NE(test::read_file(fs::path(config).parent_path() / "log.txt").find("Resume with"), std::string::npos);
  const auto record = nlohmann::json::parse(test::read_file(fs::path(config).parent_path() / "out" / "qtune_run.json"));
  EXPECT_EQ(record["status"], "stopped");
  EXPECT_TRUE(fs::exists(fs::path(config).parent_path() / "out" / "report.html"));
}

}  // namespace
}  // namespace qtune
