// load_tokenizer(): picks tokenizer.json or a sentencepiece .model from a file or model folder.
#include "data/tokenizer.h"

#include <filesystem>

#include "core/error.h"
#include "data/hf_tokenizer.h"
#include "data/sentencepiece_tokenizer.h"

namespace qtune {

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path) {
  namespace fs = std::filesystem;
  if (!fs::exists(path)) input_error("{}: no such tokenizer file or folder", path);
  if (fs::is_directory(path)) {
    for (const char* name : {"tokenizer.json", "tokenizer.model"}) {
      fs::path candidate = fs::path(path) / name;
      if (fs::exists(candidate)) return load_tokenizer(candidate.string());
    }
    input_error("{}: holds neither tokenizer.json nor tokenizer.model; copy the model's tokenizer files there", path);
  }
  if (fs::path(path).extension() == ".json") return load_hf_tokenizer(path);
  return load_sentencepiece_tokenizer(path);
}

}  // namespace qtune
