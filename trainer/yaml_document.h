// The YAML side of the training config: YAML text -> JSON with YAML 1.2's typing of plain scalars, the
// command line's key=value overrides applied to the document, and the document written back as YAML
// (qtune_training.yaml, the config as run, for people to read).
#pragma once

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace qtune {

// YAML text -> JSON (plain scalars become bool/int/float/null where YAML 1.2 says so; quoted stay
// strings). Throws InputError naming `where` and the line on a syntax error.
nlohmann::json yaml_to_json(const std::string& yaml_text, const std::string& where);

// A config file with its overrides ("key=value", the value in YAML syntax) applied: an override
// replaces the key's value where the file has the key, else it is added at the end.
struct ConfigDocument {
  nlohmann::json json;                   // what TrainConfig::from_json reads
  std::map<std::string, int> key_lines;  // top-level key -> its 1-based line in the file (not for overridden keys)
  std::string yaml;                      // the document as YAML, in the file's key order: the config as run
};

// InputError naming the file (and line) on a missing file or a YAML syntax error, or the override
// when one is not key=value.
ConfigDocument read_config_document(const std::string& path, const std::vector<std::string>& overrides);

}  // namespace qtune
