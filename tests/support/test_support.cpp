// Test helpers implementation. Depends on: tests/support/test_support.h.
#include "tests/support/test_support.h"

namespace qtune::test {

double max_relative_error(const torch::Tensor& actual, const torch::Tensor& expected) {
  auto a = actual.to(torch::kDouble), e = expected.to(torch::kDouble);
  double scale = e.abs().max().item<double>();
  return (a - e).abs().max().item<double>() / (scale > 0 ? scale : 1.0);
}

std::string make_tiny_model(const std::string& arch, const std::string& extra_args) {
  std::string dir = temp_dir("model_" + arch);
  CommandResult r = run_qtune("init-model --arch " + arch + " --out " + dir +
                              " --hidden 64 --layers 2 --heads 4 --kv-heads 2 --vocab 300 --dtype f32 --init-std 0.2 --force " + extra_args);
  EXPECT_EQ(r.exit_code, 0) << r.out;
  return dir;
}

}  // namespace qtune::test
