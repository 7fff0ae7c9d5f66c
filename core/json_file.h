// Reading JSON files and typed keys with errors that name the file and the key.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>

#include "core/error.h"

namespace qtune {

// A whole file as text; InputError naming it when it is missing or unreadable.
std::string read_text_file(const std::string& path);
// Parses a whole JSON file; InputError names the file and, for a syntax error, the byte offset.
nlohmann::json read_json_file(const std::string& path);
// Parses JSON text that came from `where` (a file name, or "file: header" for embedded JSON).
nlohmann::json parse_json(const std::string& text, const std::string& where);

// The value of `key` in `object` as T; InputError "<where>: key '<key>' ..." if missing or of the wrong type.
template <typename T>
T json_required(const nlohmann::json& object, const std::string& key, const std::string& where) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) input_error("{}: missing required key '{}'", where, key);
  try {
    return it->get<T>();
  } catch (const nlohmann::json::exception&) {
    input_error("{}: key '{}' has the wrong type ({})", where, key, it->type_name());
  }
}

// Like json_required but returns `fallback` when the key is absent or null.
template <typename T>
T json_optional(const nlohmann::json& object, const std::string& key, const std::string& where, T fallback) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return fallback;
  return json_required<T>(object, key, where);
}

}  // namespace qtune
