// Reading tokenizer_config.json.
#include "data/tokenizer_config.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/json_file.h"

namespace qtune {
namespace {

// Special tokens are written either as "<s>" or as {"content": "<s>", ...}.
std::string token_text(const nlohmann::json& config, const char* key, const std::string& where) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) return (*it)["content"].get<std::string>();
  input_error("{}: '{}' must be a string or an object with 'content'", where, key);
}

std::optional<bool> optional_bool(const nlohmann::json& config, const char* key, const std::string& where) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return std::nullopt;
  if (!it->is_boolean()) input_error("{}: '{}' must be true or false", where, key);
  return it->get<bool>();
}

}  // namespace

TokenizerConfig TokenizerConfig::load(const std::string& model_dir) {
  namespace fs = std::filesystem;
  TokenizerConfig config;
  const fs::path path = fs::path(model_dir) / "tokenizer_config.json";
  config.source = path.string();
  if (fs::exists(path)) {
    nlohmann::json json = read_json_file(path.string());
    if (!json.is_object()) input_error("{}: expected a JSON object", config.source);
    config.bos_token = token_text(json, "bos_token", config.source);
    config.eos_token = token_text(json, "eos_token", config.source);
    config.pad_token = token_text(json, "pad_token", config.source);
    config.unk_token = token_text(json, "unk_token", config.source);
    config.add_bos_token = optional_bool(json, "add_bos_token", config.source);
    config.add_eos_token = optional_bool(json, "add_eos_token", config.source);
    if (auto it = json.find("chat_template"); it != json.end()) {
      if (it->is_string()) {
        config.chat_template = it->get<std::string>();
      } else if (it->is_array()) {  // [{"name": "default", "template": "..."}, {"name": "tool_use", ...}]
        for (const auto& entry : *it)
          if (entry.is_object() && entry.value("name", "") == "default" && entry.contains("template"))
            config.chat_template = entry["template"].get<std::string>();
      }
    }
  }
  const fs::path jinja = fs::path(model_dir) / "chat_template.jinja";
  if (config.chat_template.empty() && fs::exists(jinja)) {
    std::ifstream in(jinja, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    config.chat_template = text.str();
  }
  return config;
}

}  // namespace qtune
