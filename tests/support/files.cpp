// Torch-free test helpers (see tests/support/files.h).
#include "tests/support/files.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
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

std::string tokenizers_root() {
  const char* configured = std::getenv("QTUNE_TOKENIZERS");
  if (configured != nullptr && *configured != '\0') return configured;
  return (std::filesystem::path(QTUNE_SOURCE_DIR).parent_path() / "shared" / "fixtures" / "tokenizers").lexically_normal().string();
}

std::string tokenizer_dir(const std::string& name) {
  const auto dir = std::filesystem::path(tokenizers_root()) / name;
  return std::filesystem::is_regular_file(dir / "tokenizer.json") ? dir.string() : std::string();
}

bool reference_required() {
  const char* value = std::getenv("QTUNE_REQUIRE_REFERENCE");
  return value != nullptr && std::string(value) == "1";
}

void make_byte_model(const std::string& dir) {
  CommandResult made = run_qtune("init-model --arch qwen2 --out " + dir + " --hidden 64 --layers 2 --heads 4 --kv-heads 2 --intermediate 128 "
                                 "--dtype f32 --init-std 0.2 --byte-tokenizer --force");
  EXPECT_EQ(made.exit_code, 0) << made.out;
}

}  // namespace qtune::test
