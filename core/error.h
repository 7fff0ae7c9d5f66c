// qtune::InputError (bad user input: config, data, model files; exit status 2) and the helpers that throw it.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace qtune {

// A problem the user can fix: a malformed file, a missing key, a wrong shape. The message is one line
// that names the file (or key) and says what to fix; the CLI prints it as "error: <message>" and exits 2.
class InputError : public std::runtime_error {
 public:
  explicit InputError(const std::string& message) : std::runtime_error(message) {}
};

template <typename... Args>
[[noreturn]] void input_error(fmt::format_string<Args...> format, Args&&... args) {
  throw InputError(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace qtune
