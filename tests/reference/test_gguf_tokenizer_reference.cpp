// The tokenizer in GGUF files `qtune export` wrote (tests/reference/gguf_tokenizer.py, ctest Reference.gguf_tokenizer),
// checked against transformers 5 (which wraps HF tokenizers) on the committed tokenizer corpus plus each family's
// special tokens written in text, for llama2 (Mistral v1), llama3, llama3_1, qwen2_5 and qwen3:
//  - qtune reads its GGUF back into a tokenizer that encodes (with and without BOS/EOS) and decodes every text
//    exactly as HF tokenizers does with the original tokenizer.json, with the BOS/EOS/PAD ids transformers reads;
//  - transformers' own GGUF loader reads the same vocabulary and merges (Llama 2's rebuilt from the scores), and
//    encodes every text as the original, up to the loader's documented choices (kLoaderChoices) that the test
//    applies to the original tokenizer.json before comparing, so that any other difference fails.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "data/hf_tokenizer.h"
#include "gguf/gguf_file.h"
#include "gguf/gguf_tokenizer.h"
#include "tests/reference/reference_files.h"
#include "tests/support/files.h"

namespace qtune {
namespace {

using json = nlohmann::json;
using Ids = std::vector<TokenId>;
constexpr const char* kArea = "gguf_tokenizer";
const std::vector<std::string> kFamilies = {"llama2", "llama3", "llama3_1", "qwen2_5", "qwen3"};

json read_json(const std::string& path) {
  std::ifstream in(path);
  return json::parse(in);
}

// The original tokenizer.json as transformers' GGUF loader rebuilds it (transformers/integrations/gguf/
// gguf_tokenizer_mapping.py): it has no say in these, a GGUF file carries no field for them.
json as_transformers_loader_builds(json doc, const std::string& family) {
  if (family == "llama2") {
    // LlamaTokenizer: "▁" from a Metaspace pre-tokenizer that prepends to the first piece only, where the file
    // prepends to every piece between special tokens (as llama.cpp also does).
    doc["normalizer"] = nullptr;
    doc["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", "first"}, {"split", false}};
  } else if (family == "llama3" || family == "llama3_1") {
    doc["model"]["ignore_merges"] = false;  // GPT2Tokenizer's BPE, where llama.cpp sets ignore_merges for llama-bpe
  } else {
    doc["normalizer"] = nullptr;  // GPT2Tokenizer has no NFC normalizer (Qwen's files have one)
  }
  return doc;
}

Ids ids_at(const json& list, std::size_t i) { return list.at(i).get<Ids>(); }

TEST(GgufTokenizerReference, QtuneReadsItsGgufAsHfTokenizersReadsTheOriginal) {
  for (const std::string& family : kFamilies) {
    const std::string ids_path = test::reference_path(kArea, family + "/ids.json");
    QTUNE_REQUIRE_REFERENCE_FILE(ids_path, kArea);
    const json ref = read_json(ids_path);
    const auto file = GgufFile::open(test::reference_path(kArea, family + "/model.gguf"));
    const auto tokenizer = tokenizer_from_gguf(file->metadata(), file->path());
    const json& original = ref.at("original");
    const auto& texts = ref.at("texts");
    ASSERT_GT(texts.size(), 6000u);
    for (std::size_t i = 0; i < texts.size(); ++i) {
      const std::string text = texts[i];
      ASSERT_EQ(tokenizer->encode(text), ids_at(original["ids"], i)) << family << " text: " << text;
      ASSERT_EQ(tokenizer->encode_with_special_tokens(text), ids_at(original["ids_with_special"], i)) << family << " text: " << text;
      ASSERT_EQ(tokenizer->decode(ids_at(original["ids"], i)), original["decoded"][i].get<std::string>()) << family << " text: " << text;
    }
    const TokenizerConfig config = tokenizer_config_from_gguf(file->metadata(), file->path());
    auto id_of = [&](const std::string& text) { return text.empty() ? json() : json(*tokenizer->token_to_id(text)); };
    EXPECT_EQ(id_of(config.bos_token), original["bos_token_id"]) << family;
    EXPECT_EQ(id_of(config.eos_token), original["eos_token_id"]) << family;
    EXPECT_EQ(id_of(config.pad_token), original["pad_token_id"]) << family;
  }
}

// A merge's two parts, from "left right" or ["left", "right"].
std::pair<std::string, std::string> merge_parts(const json& merge) {
  if (!merge.is_string()) return {merge.at(0).get<std::string>(), merge.at(1).get<std::string>()};
  const std::string text = merge.get<std::string>();
  const std::size_t space = text.find(' ', 1);
  return {text.substr(0, space), text.substr(space + 1)};
}

// Merges as "left right" keys in file order.
std::vector<std::string> merge_keys(const json& merges) {
  std::vector<std::string> keys;
  for (const auto& merge : merges) {
    const auto [left, right] = merge_parts(merge);
    keys.push_back(left + " " + right);
  }
  return keys;
}

// Each merged piece in the order its first merge appears: what decides which merge BPE applies first.
std::vector<std::string> piece_order(const json& merges) {
  std::vector<std::string> order;
  std::set<std::string> seen;
  for (const auto& merge : merges) {
    const auto [left, right] = merge_parts(merge);
    if (seen.insert(left + right).second) order.push_back(left + right);
  }
  return order;
}

TEST(GgufTokenizerReference, TransformersReadsTheSameVocabularyAndMerges) {
  for (const std::string& family : kFamilies) {
    const std::string merges_path = test::reference_path(kArea, family + "/merges.json");
    QTUNE_REQUIRE_REFERENCE_FILE(merges_path, kArea);
    const std::string dir = test::tokenizer_dir(family);
    ASSERT_FALSE(dir.empty()) << "tokenizer files missing under " << test::tokenizers_root();
    const json loaded = read_json(merges_path), original = read_json(dir + "/tokenizer.json");
    const auto original_tokenizer = make_hf_tokenizer(original, dir);
    EXPECT_EQ(loaded["vocab_size"].get<int64_t>(), original_tokenizer->vocab_size()) << family;
    if (family != "llama2") {
      EXPECT_EQ(merge_keys(loaded["merges"]), merge_keys(original["model"]["merges"])) << family;
      continue;
    }
    // Llama 2: transformers rebuilt the merges from tokenizer.ggml.scores. Same merges, same order of the pieces
    // they make; within one piece its own order (longest left part first), which BPE never needs to break a tie.
    std::vector<std::string> rebuilt = merge_keys(loaded["merges"]), expected = merge_keys(original["model"]["merges"]);
    EXPECT_EQ(std::multiset<std::string>(rebuilt.begin(), rebuilt.end()), std::multiset<std::string>(expected.begin(), expected.end()));
    EXPECT_EQ(piece_order(loaded["merges"]), piece_order(original["model"]["merges"]));
  }
}

TEST(GgufTokenizerReference, TransformersEncodesAsTheOriginalUpToItsLoadersChoices) {
  for (const std::string& family : kFamilies) {
    const std::string ids_path = test::reference_path(kArea, family + "/ids.json");
    QTUNE_REQUIRE_REFERENCE_FILE(ids_path, kArea);
    const std::string dir = test::tokenizer_dir(family);
    ASSERT_FALSE(dir.empty()) << "tokenizer files missing under " << test::tokenizers_root();
    const json ref = read_json(ids_path);
    const auto loader_model = make_hf_tokenizer(as_transformers_loader_builds(read_json(dir + "/tokenizer.json"), family), dir);
    const auto& texts = ref.at("texts");
    int same_as_original = 0;
    for (std::size_t i = 0; i < texts.size(); ++i) {
      const std::string text = texts[i];
      const Ids ids = ids_at(ref["gguf"]["ids"], i);
      same_as_original += ids == ids_at(ref["transformers"]["ids"], i);
      // GPT2Tokenizer adds an "<|endoftext|>" of its own (id 128256) to the Llama 3 vocabulary, which has none.
      if (text.find("<|endoftext|>") != std::string::npos && family.rfind("llama3", 0) == 0) continue;
      ASSERT_EQ(ids, loader_model->encode(text)) << family << " text: " << text;
    }
    // Most texts encode as AutoTokenizer on the original folder does (measured: 6307/6354 llama2, 6340/6354 llama3 and llama3_1,
    // 6242/6362 qwen2_5, 6244/6364 qwen3); a loader that read the file wrongly would differ on far more.
    EXPECT_GT(same_as_original, static_cast<int>(texts.size()) * 98 / 100) << family;
  }
}

}  // namespace
}  // namespace qtune
