// YAML reading (yaml-cpp) with YAML 1.2 core-schema typing, overrides, and the YAML written back.
#include "trainer/yaml_document.h"

#include <yaml-cpp/yaml.h>

#include <regex>

#include "core/error.h"
#include "core/json_file.h"

namespace qtune {
namespace {

using json = nlohmann::json;

// YAML 1.2 core schema for plain scalars.
json plain_scalar(const std::string& s) {
  if (s == "~" || s == "null" || s == "Null" || s == "NULL" || s.empty()) return nullptr;
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  static const std::regex integer(R"([-+]?[0-9]+)"), real(R"([-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?)");
  if (std::regex_match(s, integer)) {
    try {
      return std::stoll(s);
    } catch (const std::out_of_range&) {
    }
  }
  if (std::regex_match(s, real)) return std::stod(s);
  return s;
}

// A quoted scalar (tag "!") stays a string; a plain one is typed.
bool is_quoted(const YAML::Node& scalar) { return scalar.Tag() == "!"; }

json to_json(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined: return nullptr;
    case YAML::NodeType::Scalar: return is_quoted(node) ? json(node.Scalar()) : plain_scalar(node.Scalar());
    case YAML::NodeType::Sequence: {
      json list = json::array();
      for (const auto& item : node) list.push_back(to_json(item));
      return list;
    }
    case YAML::NodeType::Map: {
      json map = json::object();
      for (const auto& item : node) map[item.first.as<std::string>()] = to_json(item.second);
      return map;
    }
  }
  return nullptr;
}

[[noreturn]] void invalid_yaml(const std::string& where, const YAML::Exception& e) {
  input_error("{}:{}: invalid YAML: {}", where, e.mark.line + 1, e.msg);
}

YAML::Node parse_yaml(const std::string& text, const std::string& where) {
  try {
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    invalid_yaml(where, e);
  }
}

// Writes `node` so that reading it back types every scalar as it was read: a quoted scalar that would read
// as a number, a bool or null unquoted ("123", "true", "") stays quoted.
void emit(YAML::Emitter& out, const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      out << YAML::BeginMap;
      for (const auto& item : node) {
        out << YAML::Key << item.first.as<std::string>() << YAML::Value;
        emit(out, item.second);
      }
      out << YAML::EndMap;
      return;
    case YAML::NodeType::Sequence:
      out << YAML::BeginSeq;
      for (const auto& item : node) emit(out, item);
      out << YAML::EndSeq;
      return;
    case YAML::NodeType::Scalar:
      if (is_quoted(node) && !plain_scalar(node.Scalar()).is_string()) out << YAML::DoubleQuoted;
      out << node.Scalar();
      return;
    default: out << YAML::Null;
  }
}

std::map<std::string, int> top_level_key_lines(const YAML::Node& root) {
  std::map<std::string, int> lines;
  if (root.IsMap())
    for (const auto& item : root) lines[item.first.as<std::string>()] = item.first.Mark().line + 1;
  return lines;
}

// Sets every entry of `key` (a file may repeat a key; the last one counts), or adds it at the end.
void set_key(YAML::Node& map, const std::string& key, const YAML::Node& value) {
  bool found = false;
  for (auto item : map)
    if (item.first.as<std::string>() == key) item.second = YAML::Clone(value), found = true;
  if (!found) map[key] = value;
}

}  // namespace

json yaml_to_json(const std::string& yaml_text, const std::string& where) {
  const YAML::Node root = parse_yaml(yaml_text, where);
  try {
    return to_json(root);
  } catch (const YAML::Exception& e) {  // a key that is not a scalar
    invalid_yaml(where, e);
  }
}

ConfigDocument read_config_document(const std::string& path, const std::vector<std::string>& overrides) try {
  YAML::Node root = parse_yaml(read_text_file(path), path);
  ConfigDocument document;
  document.key_lines = top_level_key_lines(root);
  std::string header = "# the config as run: " + path;
  for (const auto& item : overrides) {
    const auto eq = item.find('=');
    if (eq == std::string::npos || eq == 0) input_error("override '{}' must be key=value", item);
    const std::string key = item.substr(0, eq);
    YAML::Node value = parse_yaml(item.substr(eq + 1), "override " + item);
    if (root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
    if (root.IsMap()) set_key(root, key, value);  // from_json reports a document that is not a mapping
    document.key_lines.erase(key);  // the value no longer comes from the file
    header += (&item == &overrides.front() ? " with " : " ") + item;
  }
  document.json = to_json(root);
  if (document.json.is_null()) document.json = json::object();
  YAML::Emitter out;
  emit(out, root);
  document.yaml = header + "\n" + out.c_str() + "\n";
  return document;
} catch (const YAML::Exception& e) {  // a key that is not a scalar
  invalid_yaml(path, e);
}

}  // namespace qtune
