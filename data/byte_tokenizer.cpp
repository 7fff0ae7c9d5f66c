// The byte-level tokenizer files.
#include "data/byte_tokenizer.h"

#include <filesystem>

#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "data/utf8.h"

namespace qtune {

void write_byte_tokenizer(const std::string& dir) {
  using json = nlohmann::ordered_json;
  std::filesystem::create_directories(dir);
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[utf8::byte_to_char()[b]] = b;
  const char* specials[] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
  json added = json::array();
  for (int i = 0; i < 3; ++i)
    added.push_back({{"id", 256 + i}, {"content", specials[i]}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
                     {"normalized", false}, {"special", true}});
  const json tokenizer = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added},
      {"normalizer", nullptr},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", true}}},
      {"post_processor", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", true}}},
      {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", true}}},
      {"model", {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", nullptr},
                 {"end_of_word_suffix", nullptr}, {"fuse_unk", false}, {"byte_fallback", false}, {"vocab", vocab}, {"merges", json::array()}}}};
  const std::string chatml =
      "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
      "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
  const json config = {{"tokenizer_class", "PreTrainedTokenizerFast"}, {"bos_token", nullptr},  {"eos_token", "<|im_end|>"},
                       {"pad_token", "<|endoftext|>"},                {"add_bos_token", false}, {"chat_template", chatml},
                       {"model_max_length", 4096}};
  AtomicFile::write_all((std::filesystem::path(dir) / "tokenizer.json").string(), tokenizer.dump(2) + "\n");
  AtomicFile::write_all((std::filesystem::path(dir) / "tokenizer_config.json").string(), config.dump(2) + "\n");
}

}  // namespace qtune
