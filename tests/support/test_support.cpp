// Test helpers implementation. Depends on: tests/support/test_support.h.
#include "tests/support/test_support.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace qtune::test {

std::string temp_dir(const std::string& name) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string test = info ? std::string(info->test_suite_name()) + "_" + info->name() : "global";
  auto dir = std::filesystem::temp_directory_path() / ("qtune_" + test + "_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

CommandResult run_qtune(const std::string& args) {
  const std::string command = std::string(QTUNE_BINARY) + " " + args + " 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return {-1, "popen failed"};
  std::string out;
  char buffer[4096];
  std::size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) out.append(buffer, n);
  int status = ::pclose(pipe);
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  return {code, out};
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_file(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
}

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
