// Where the reference scripts (tests/reference/*.py, ctest Reference.<area>) left what the Python libraries
// computed, and the one rule for when it is missing: fail under QTUNE_REQUIRE_REFERENCE=1, else skip.
#pragma once

#include <filesystem>
#include <string>

#include "tests/support/files.h"

namespace qtune::test {

// ${QTUNE_REFERENCE_DIR}/<area>/<relative>
inline std::string reference_path(const std::string& area, const std::string& relative = "") {
  const std::filesystem::path dir = std::filesystem::path(QTUNE_REFERENCE_DIR) / area;
  return (relative.empty() ? dir : dir / relative).string();
}

}  // namespace qtune::test

// Skips (or fails, when references are required) unless `path` exists; names the ctest that makes it.
#define QTUNE_REQUIRE_REFERENCE_FILE(path, area)                                                                 \
  if (!std::filesystem::exists(path)) {                                                                           \
    const std::string qtune_why = std::string("no reference output ") + (path) + " (ctest -R Reference." + (area) + \
                                  " makes it)";                                                                   \
    if (::qtune::test::reference_required()) FAIL() << qtune_why;                                                 \
    GTEST_SKIP() << qtune_why;                                                                                    \
  }
