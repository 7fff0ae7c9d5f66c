// Output-folder helpers.
#include "models/model_files.h"

#include <filesystem>

#include "core/error.h"

namespace qtune {

namespace fs = std::filesystem;

void prepare_model_output_dir(const std::string& dir, bool force) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) input_error("{}: cannot create the output folder ({})", dir, ec.message());
  if (!force && (fs::exists(fs::path(dir) / "config.json") || fs::exists(fs::path(dir) / "model.safetensors") ||
                 fs::exists(fs::path(dir) / "model.safetensors.index.json")))
    input_error("{}: already holds a model; choose another --out or pass --force to overwrite it", dir);
}

void copy_tokenizer_files(const std::string& from, const std::string& to, bool generation_config) {
  for (const char* name : {"tokenizer.json", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
                           "generation_config.json"}) {
    if (!generation_config && std::string(name) == "generation_config.json") continue;
    const fs::path source = fs::path(from) / name;
    if (fs::exists(source)) fs::copy_file(source, fs::path(to) / name, fs::copy_options::overwrite_existing);
  }
}

}  // namespace qtune
