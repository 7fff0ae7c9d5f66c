// GGUF export of a mixture-of-experts model is refused, with one line naming the architecture, before any file is made.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "tests/support/test_support.h"

namespace qtune {
namespace {

TEST(GgufExport, RefusesMixtureOfExpertsModelsBeforeWritingAnything) {
  for (const std::string arch : {"mixtral", "qwen3_moe"}) {
    const std::string dir = test::temp_dir(arch + "_moe"), out = test::temp_dir(arch + "_gguf") + "/m.gguf";
    auto r = test::run_qtune("init-model --arch " + arch + " --out " + dir + " --hidden 64 --layers 1 --heads 4 --vocab 300 --experts 2");
    ASSERT_EQ(r.exit_code, 0) << r.out;
    for (const std::string& extra : std::vector<std::string>{"", " --type q8_0", " --adapter-only --adapter " + dir}) {
      r = test::run_qtune("export --model " + dir + " --out " + out + extra);
      EXPECT_EQ(r.exit_code, 2) << arch << extra << ": " << r.out;
      const std::string name = arch == "mixtral" ? "MixtralForCausalLM" : "Qwen3MoeForCausalLM";
      EXPECT_NE(r.out.find(name + ": GGUF export of mixture-of-experts models is not supported yet"), std::string::npos) << r.out;
      EXPECT_EQ(r.out.find('\n'), r.out.size() - 1) << "one line: " << r.out;
      EXPECT_FALSE(std::filesystem::exists(out)) << arch << extra;
      for (const auto& entry : std::filesystem::directory_iterator(std::filesystem::path(out).parent_path()))
        ADD_FAILURE() << "left behind: " << entry.path();  // no temporary file either
    }
  }
}

}  // namespace
}  // namespace qtune
