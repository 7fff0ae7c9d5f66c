// qtune::DatasetSpec: one entry of the config's `datasets:` list, with Axolotl's key names and defaults,
// validated from JSON (the YAML layer converts YAML to JSON).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace qtune {

enum class DatasetType { alpaca, sharegpt, chat_template, completion, preference };

// "alpaca", "sharegpt", ... as written in the config.
const char* dataset_type_name(DatasetType type);

struct DatasetSpec {
  std::string path;  // a .jsonl/.json file, or a folder whose *.jsonl/*.json files are read in sorted order
  DatasetType type = DatasetType::chat_template;

  // sharegpt / chat_template: the list of messages; "" means the type's default ("conversations" for
  // sharegpt, "messages" otherwise).
  std::string field_messages;
  // Message property -> the field holding it. Properties: role, content, reasoning_content, train, weight.
  // Absent properties use their defaults: role "role" ("from" for sharegpt), content "content" ("value"
  // for sharegpt), the others their own name.
  std::map<std::string, std::string> message_property_mappings;
  // Dataset role name -> system/user/assistant/tool. Consulted before the built-in names: human/user ->
  // user; gpt/assistant/model/bot -> assistant; system -> system; tool/function/ipython -> tool.
  std::map<std::string, std::string> roles;

  std::string field = "text";  // completion
  std::string field_instruction = "instruction";  // alpaca
  std::string field_input = "input";
  std::string field_output = "output";
  std::string field_system = "system";  // alpaca, sharegpt, preference: optional system prompt
  std::string field_prompt = "prompt";  // preference
  std::string field_chosen = "chosen";
  std::string field_rejected = "rejected";

  bool skip_bad_lines = false;  // skip (and count) malformed samples instead of stopping with an error

  // Resolved field names (defaults applied).
  std::string messages_field() const;
  std::string message_field(const std::string& property) const;

  // system/user/assistant/tool for a role name found in the data, or nullopt when it is unknown.
  std::optional<std::string> normalize_role(const std::string& dataset_role) const;
  // Every dataset role name understood (built-in and mapped), sorted: for error messages.
  std::vector<std::string> accepted_roles() const;

  // Validates one `datasets:` entry. Throws InputError "<where>: ..." for an unknown key (with a
  // "did you mean" hint), a missing path/type, an unknown type or a value of the wrong type.
  // `roles` accepts Axolotl's form (target role -> list of dataset names, e.g. {assistant: [gpt, bot]})
  // and the direct form (dataset name -> target role, e.g. {gpt: assistant}).
  static DatasetSpec from_json(const nlohmann::json& entry, const std::string& where);
};

}  // namespace qtune
