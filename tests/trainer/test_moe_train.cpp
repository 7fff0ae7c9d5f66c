// `qtune train` of an MoE model with LoRA on attention only: the routers' load-balancing loss joins the SFT loss
// where config.json sets output_router_logits (with its router_aux_loss_coef, as transformers adds it) or the YAML
// sets moe_aux_loss_coef (LLaMA-Factory's key, that weight), and not otherwise. The first step's weights are the
// same in every run, so its loss is the plain run's plus coef · aux_loss exactly; its gradient reaches the attention
// adapters (the routers score their output), so the second step differs.
#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "tests/support/files.h"

namespace qtune {
namespace {

struct MoeRun {
  std::vector<double> loss, aux_loss;  // per step; aux_loss empty when not logged
  int exit_code = 0;
  std::string out;
};

// A tiny Qwen3-MoE with the byte tokenizer (config.json's output_router_logits as given) trained 2 steps.
MoeRun train_moe(const std::string& name, bool output_router_logits, const std::string& extra) {
  const std::string dir = test::temp_dir(name);
  test::CommandResult made = test::run_qtune("init-model --arch qwen3_moe --out " + dir + "/model --hidden 64 --layers 2 --heads 4 --kv-heads 2 "
                                       "--experts 4 --experts-per-token 2 --moe-intermediate 32 --dtype f32 --init-std 0.2 --byte-tokenizer --force");
  EXPECT_EQ(made.exit_code, 0) << made.out;
  nlohmann::json config = nlohmann::json::parse(std::ifstream(dir + "/model/config.json"));
  config["output_router_logits"] = output_router_logits;
  test::write_file(dir + "/model/config.json", config.dump(2));
  std::ofstream data(dir + "/train.jsonl");
  for (int i = 0; i < 16; ++i) data << nlohmann::json({{"text", "the experts route token " + std::to_string(i * 7) + " of many"}}).dump() << "\n";
  data.close();
  test::write_file(dir + "/config.yaml", "base_model: model\ndatasets:\n  - path: train.jsonl\n    type: completion\nsequence_len: 32\n"
                                         "micro_batch_size: 2\ngradient_accumulation_steps: 2\nmax_steps: 2\nlearning_rate: 0.05\n"
                                         "lr_scheduler: constant\nlora_r: 4\nlora_alpha: 8\nlora_dropout: 0.0\n"
                                         "lora_target_modules: [q_proj, k_proj, v_proj, o_proj]\noutput_dir: out\nlogging_steps: 1\n"
                                         "seed: 3\ndevice: cpu\n" + extra);
  test::CommandResult r = test::run_qtune("train " + dir + "/config.yaml");
  MoeRun run{{}, {}, r.exit_code, r.out};
  if (r.exit_code != 0) return run;
  std::ifstream metrics(dir + "/out/metrics.jsonl");
  for (std::string line; std::getline(metrics, line);) {
    const auto record = nlohmann::json::parse(line);
    run.loss.push_back(record.at("loss").get<double>());
    if (record.contains("aux_loss")) run.aux_loss.push_back(record.at("aux_loss").get<double>());
  }
  return run;
}

TEST(MoeTrain, LoadBalancingLossJoinsSftWhereTheConfigOrTheYamlAsks) {
  const MoeRun plain = train_moe("moe_plain", false, "");
  ASSERT_EQ(plain.exit_code, 0) << plain.out;
  ASSERT_EQ(plain.loss.size(), 2u);
  EXPECT_TRUE(plain.aux_loss.empty());  // no trained router, no output_router_logits: the plain cross-entropy

  const MoeRun yaml = train_moe("moe_yaml", false, "moe_aux_loss_coef: 0.5\n");
  const MoeRun model = train_moe("moe_config", true, "");
  for (const auto& [run, coef] : {std::pair<const MoeRun*, double>{&yaml, 0.5}, {&model, 0.001}}) {  // 0.001: init-model's router_aux_loss_coef
    ASSERT_EQ(run->exit_code, 0) << run->out;
    ASSERT_EQ(run->aux_loss.size(), 2u);
    EXPECT_GT(run->aux_loss[0], 0.9);  // transformers' form is about k (here 2) for a balanced router
    EXPECT_NEAR(run->loss[0], plain.loss[0] + coef * run->aux_loss[0], 1e-6 * plain.loss[0]) << coef;
    EXPECT_NE(run->loss[1] - coef * run->aux_loss[1], plain.loss[1]) << coef;  // its gradient moved the attention adapters
  }
}

TEST(MoeTrain, NegativeMoeAuxLossCoefIsAnError) {
  const MoeRun r = train_moe("moe_negative", false, "moe_aux_loss_coef: -0.1\n");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("moe_aux_loss_coef"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace qtune
