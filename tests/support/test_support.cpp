// Test helpers implementation.
#include "tests/support/test_support.h"

#include "adapters/peft_format.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>

#include <torch/cuda.h>

#include "trainer/launcher.h"

namespace qtune::test {

double max_relative_error(const torch::Tensor& actual, const torch::Tensor& expected) {
  auto a = actual.to(torch::kDouble), e = expected.to(torch::kDouble);
  double scale = e.abs().max().item<double>();
  return (a - e).abs().max().item<double>() / (scale > 0 ? scale : 1.0);
}

std::string make_tiny_model(const std::string& arch, const std::string& extra_args) {
  std::string dir = temp_dir("model_" + arch);
  const std::string layers = extra_args.find("--layers") == std::string::npos ? " --layers 2" : "";  // extra_args may say
  CommandResult r = run_qtune("init-model --arch " + arch + " --out " + dir + " --hidden 64" + layers +
                              " --heads 4 --kv-heads 2 --vocab 300 --dtype f32 --init-std 0.2 --force " + extra_args);
  EXPECT_EQ(r.exit_code, 0) << r.out;
  return dir;
}

LoraOptions all_linear_lora() {
  LoraOptions o;
  o.r = 4;
  o.alpha = 8;
  o.dropout = 0;
  o.target_linear = true;
  return o;
}

std::string save_random_adapter(CausalLM& model, const LoraOptions& options, uint64_t seed, const std::string& base) {
  inject_lora(model, options, seed);
  torch::manual_seed(seed);
  {
    torch::NoGradGuard no_grad;
    for (auto& [name, t] : lora_state(model)) t.copy_(torch::randn(t.sizes()) * 0.05);
  }
  const std::string dir = temp_dir("adapter");
  save_peft_adapter(model, options, dir, base);
  return dir;
}

const char* gpu_missing() {
#ifdef QTUNE_WITH_CUDA
  return torch::cuda::is_available() ? nullptr : "no GPU present";
#else
  return "not a CUDA build";
#endif
}

LaunchEnvironment rank_of_two(int rank, int port) {
  LaunchEnvironment e;
  e.rank = rank;
  e.world_size = 2;
  e.local_rank = rank;
  e.master_port = port;
  return e;
}

void expect_two_ranks(const std::function<std::string(const LaunchEnvironment&)>& rank) {
  auto environment = [port = free_loopback_port()](int r) { return rank_of_two(r, port); };
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    std::string problem = "threw";
    try {
      problem = rank(environment(1));
    } catch (const std::exception& e) {
      problem = e.what();
    }
    if (!problem.empty()) std::fprintf(stderr, "rank 1: %s\n", problem.c_str());
    ::_exit(problem.empty() ? 0 : 1);
  }
  EXPECT_EQ(rank(environment(0)), "") << "rank 0";
  int status = 0;
  ::waitpid(child, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "rank 1 exit status " << status;
}

}  // namespace qtune::test
