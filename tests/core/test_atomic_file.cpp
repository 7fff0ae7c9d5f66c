// Tests for AtomicFile: content lands only on commit; an abandoned write leaves the old file intact.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/atomic_file.h"
#include "core/error.h"

namespace {

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string temp_dir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() / ("qtune_test_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

TEST(AtomicFile, CommitReplacesAndAbandonKeepsOld) {
  const std::string dir = temp_dir("atomic");
  const std::string path = dir + "/out.txt";
  qtune::AtomicFile::write_all(path, "first");
  EXPECT_EQ(read_text(path), "first");
  {
    qtune::AtomicFile f(path);
    f.write("second", 6);
    EXPECT_EQ(read_text(path), "first");  // not visible before commit
  }  // destroyed without commit: a crash mid-write
  EXPECT_EQ(read_text(path), "first");
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir), {}), 1) << "temporary file left behind";
  qtune::AtomicFile::write_all(path, "third");
  EXPECT_EQ(read_text(path), "third");
}

TEST(AtomicFile, MissingFolderIsAnInputError) {
  EXPECT_THROW(qtune::AtomicFile("/nonexistent_qtune_dir/x.txt"), qtune::InputError);
}

}  // namespace
