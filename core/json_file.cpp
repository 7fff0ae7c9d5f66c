// read_json_file / parse_json: whole-file JSON parsing with file-naming errors.
#include "core/json_file.h"

#include <filesystem>
#include <fstream>
#include <sstream>

namespace qtune {

nlohmann::json parse_json(const std::string& text, const std::string& where) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    input_error("{}: invalid JSON at byte {}; fix or regenerate the file", where, e.byte);
  }
}

std::string read_text_file(const std::string& path) {
  if (!std::filesystem::exists(path)) input_error("{}: no such file", path);
  std::ifstream in(path, std::ios::binary);
  if (!in) input_error("{}: cannot open (unreadable)", path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

nlohmann::json read_json_file(const std::string& path) { return parse_json(read_text_file(path), path); }

}  // namespace qtune
