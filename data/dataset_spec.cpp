// DatasetSpec defaults, role normalization and validation of a `datasets:` entry.
#include "data/dataset_spec.h"

#include <algorithm>
#include <set>

#include "core/did_you_mean.h"
#include "core/error.h"

namespace qtune {
namespace {

using json = nlohmann::json;

const std::vector<std::string>& canonical_roles() {
  static const std::vector<std::string> roles = {"system", "user", "assistant", "tool"};
  return roles;
}

bool is_canonical_role(const std::string& role) {
  const auto& roles = canonical_roles();
  return std::find(roles.begin(), roles.end(), role) != roles.end();
}

const std::map<std::string, std::string>& builtin_roles() {
  static const std::map<std::string, std::string> roles = {
      {"human", "user"},     {"user", "user"},      {"gpt", "assistant"},    {"assistant", "assistant"},
      {"model", "assistant"}, {"bot", "assistant"},  {"system", "system"},     {"tool", "tool"},
      {"function", "tool"},  {"ipython", "tool"}};
  return roles;
}

const std::vector<std::string>& type_names() {
  static const std::vector<std::string> names = {"alpaca", "sharegpt", "chat_template", "completion", "preference"};
  return names;
}

const std::vector<std::string>& message_properties() {
  static const std::vector<std::string> names = {"role", "content", "reasoning_content", "train", "weight"};
  return names;
}

// Every key a datasets entry may hold. ds_type and split are accepted for Axolotl configs of local
// JSON files (ds_type: json, split: train) and checked; everything else configures the reader.
const std::vector<std::string>& known_keys() {
  static const std::vector<std::string> keys = {
      "path",           "type",           "field_messages",        "message_property_mappings",
      "roles",          "field",          "field_instruction",     "field_input",
      "field_output",   "field_system",   "field_prompt",          "field_chosen",
      "field_rejected", "skip_bad_lines", "message_field_role",    "message_field_content",
      "ds_type",        "split"};
  return keys;
}

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& name : names) out += (out.empty() ? "" : ", ") + name;
  return out;
}

std::string string_value(const json& value, const std::string& where, const std::string& key) {
  if (!value.is_string()) input_error("{}: key '{}' must be a string, not {}", where, key, value.type_name());
  const auto& text = value.get_ref<const std::string&>();
  if (text.empty()) input_error("{}: key '{}' must not be empty", where, key);
  return text;
}

void set_property(DatasetSpec& spec, const std::string& property, const std::string& field, const std::string& where,
                  const std::string& key) {
  auto [it, inserted] = spec.message_property_mappings.emplace(property, field);
  if (!inserted && it->second != field)
    input_error("{}: '{}' maps {} to '{}' but message_property_mappings maps it to '{}'; keep one", where, key,
                property, field, it->second);
}

void read_roles(DatasetSpec& spec, const json& value, const std::string& where) {
  if (!value.is_object())
    input_error("{}: key 'roles' must be a mapping such as {{assistant: [gpt, bot], user: [human]}}, not {}", where,
                value.type_name());
  auto map_role = [&](const std::string& dataset_role, const std::string& target) {
    auto [it, inserted] = spec.roles.emplace(dataset_role, target);
    if (!inserted && it->second != target)
      input_error("{}: roles maps '{}' to both '{}' and '{}'", where, dataset_role, it->second, target);
  };
  for (const auto& [key, names] : value.items()) {
    if (names.is_array()) {  // Axolotl: target role -> dataset role names
      if (!is_canonical_role(key))
        input_error("{}: roles: '{}' is not a role; use one of {} as the key of a list{}", where, key,
                    join(canonical_roles()), did_you_mean(key, canonical_roles()));
      for (const auto& name : names) map_role(string_value(name, where, "roles." + key), key);
    } else if (names.is_string()) {
      const std::string target = string_value(names, where, "roles." + key);
      if (is_canonical_role(target))
        map_role(key, target);  // dataset name -> target role
      else if (is_canonical_role(key))
        map_role(target, key);  // Axolotl with a single name instead of a list
      else
        input_error("{}: roles: '{}: {}' maps to no known role; write 'dataset_name: {}'", where, key, target,
                    join(canonical_roles()));
    } else {
      input_error("{}: roles.{} must be a role name or a list of names, not {}", where, key, names.type_name());
    }
  }
}

}  // namespace

const char* dataset_type_name(DatasetType type) {
  switch (type) {
    case DatasetType::alpaca: return "alpaca";
    case DatasetType::sharegpt: return "sharegpt";
    case DatasetType::chat_template: return "chat_template";
    case DatasetType::completion: return "completion";
    case DatasetType::preference: return "preference";
  }
  return "?";
}

std::string DatasetSpec::messages_field() const {
  if (!field_messages.empty()) return field_messages;
  return type == DatasetType::sharegpt ? "conversations" : "messages";
}

std::string DatasetSpec::message_field(const std::string& property) const {
  auto it = message_property_mappings.find(property);
  if (it != message_property_mappings.end()) return it->second;
  if (type == DatasetType::sharegpt) {
    if (property == "role") return "from";
    if (property == "content") return "value";
  }
  return property;
}

std::optional<std::string> DatasetSpec::normalize_role(const std::string& dataset_role) const {
  auto it = roles.find(dataset_role);
  if (it != roles.end()) return it->second;
  it = builtin_roles().find(dataset_role);
  if (it != builtin_roles().end()) return it->second;
  return std::nullopt;
}

std::vector<std::string> DatasetSpec::accepted_roles() const {
  std::set<std::string> names;
  for (const auto& entry : builtin_roles()) names.insert(entry.first);
  for (const auto& entry : roles) names.insert(entry.first);
  return {names.begin(), names.end()};
}

DatasetSpec DatasetSpec::from_json(const json& entry, const std::string& where) {
  if (!entry.is_object())
    input_error("{}: a dataset entry must be a mapping with at least 'path' and 'type', not {}", where,
                entry.type_name());
  for (const auto& item : entry.items()) {
    const auto& keys = known_keys();
    if (std::find(keys.begin(), keys.end(), item.key()) != keys.end()) continue;
    const std::string hint = did_you_mean(item.key(), keys);
    if (!hint.empty()) input_error("{}: unknown key '{}'{}", where, item.key(), hint);
    input_error("{}: unknown key '{}'; dataset keys are: {}", where, item.key(), join(keys));
  }

  DatasetSpec spec;
  auto it = entry.find("path");
  if (it == entry.end() || it->is_null()) input_error("{}: missing key 'path' (a .jsonl/.json file or a folder)", where);
  spec.path = string_value(*it, where, "path");

  it = entry.find("type");
  if (it == entry.end() || it->is_null())
    input_error("{}: missing key 'type' (one of {})", where, join(type_names()));
  if (!it->is_string())
    input_error("{}: key 'type' must be one of {}, not a {} (custom prompt formats are not supported)", where,
                join(type_names()), it->type_name());
  const std::string type = it->get<std::string>();
  const auto& names = type_names();
  auto found = std::find(names.begin(), names.end(), type);
  if (found == names.end())
    input_error("{}: unknown dataset type '{}'{}; supported: {}", where, type, did_you_mean(type, names), join(names));
  spec.type = static_cast<DatasetType>(found - names.begin());

  auto string_key = [&](const char* key, std::string& target) {
    auto value = entry.find(key);
    if (value != entry.end() && !value->is_null()) target = string_value(*value, where, key);
  };
  string_key("field_messages", spec.field_messages);
  string_key("field", spec.field);
  string_key("field_instruction", spec.field_instruction);
  string_key("field_input", spec.field_input);
  string_key("field_output", spec.field_output);
  string_key("field_system", spec.field_system);
  string_key("field_prompt", spec.field_prompt);
  string_key("field_chosen", spec.field_chosen);
  string_key("field_rejected", spec.field_rejected);

  it = entry.find("message_property_mappings");
  if (it != entry.end() && !it->is_null()) {
    if (!it->is_object())
      input_error("{}: key 'message_property_mappings' must be a mapping such as {{role: from, content: value}}, not {}",
                  where, it->type_name());
    for (const auto& [property, field] : it->items()) {
      const auto& properties = message_properties();
      if (std::find(properties.begin(), properties.end(), property) == properties.end())
        input_error("{}: message_property_mappings: unknown property '{}'{}; properties: {}", where, property,
                    did_you_mean(property, properties), join(properties));
      spec.message_property_mappings[property] = string_value(field, where, "message_property_mappings." + property);
    }
  }
  // Axolotl's older spelling of the same mapping.
  for (const auto& [key, property] : {std::pair<const char*, const char*>{"message_field_role", "role"},
                                      std::pair<const char*, const char*>{"message_field_content", "content"}}) {
    auto value = entry.find(key);
    if (value != entry.end() && !value->is_null()) set_property(spec, property, string_value(*value, where, key), where, key);
  }

  it = entry.find("roles");
  if (it != entry.end() && !it->is_null()) read_roles(spec, *it, where);

  it = entry.find("skip_bad_lines");
  if (it != entry.end() && !it->is_null()) {
    if (!it->is_boolean()) input_error("{}: key 'skip_bad_lines' must be true or false, not {}", where, it->type_name());
    spec.skip_bad_lines = it->get<bool>();
  }

  it = entry.find("ds_type");
  if (it != entry.end() && !it->is_null()) {
    const std::string ds_type = string_value(*it, where, "ds_type");
    if (ds_type != "json")
      input_error("{}: ds_type '{}' is not supported; qtune reads JSON Lines or JSON files (ds_type: json)", where,
                  ds_type);
  }
  it = entry.find("split");
  if (it != entry.end() && !it->is_null()) {
    const std::string split = string_value(*it, where, "split");
    if (split != "train")
      input_error("{}: split '{}' is not supported: a local JSON file has only the 'train' split; use "
                  "val_set_size for a validation split",
                  where, split);
  }
  return spec;
}

}  // namespace qtune
