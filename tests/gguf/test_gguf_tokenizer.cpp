// The tokenizer.ggml.* keys: written from the real tokenizer files of six families (../shared/fixtures/tokenizers),
// read back as a Tokenizer, and compared with the original tokenizer.json on the committed corpus (6,000+
// texts: English, code, whitespace runs, numbers, emoji, CJK, special tokens written in text). The keys' facts
// (token types, ids, flags) are checked against what llama.cpp's converter writes for these files.
#include <gtest/gtest.h>

#include <filesystem>

#include "core/error.h"
#include "data/tokenizer.h"
#include "gguf/gguf_file.h"
#include "gguf/gguf_tokenizer.h"
#include "tests/data/hf_reference.h"
#include "tests/support/files.h"

namespace qtune {
namespace {

namespace fs = std::filesystem;
using Ids = std::vector<TokenId>;

// The tokenizer folder of `family`, or "" (and a skip, or a failure under QTUNE_REQUIRE_REFERENCE=1).
std::string family_dir(const std::string& family) {
  const std::string dir = test::tokenizer_dir(family);
  if (dir.empty() && test::reference_required()) ADD_FAILURE() << family << " tokenizer files missing under " << test::tokenizers_root();
  return dir;
}

GgufMetadata metadata_for(const std::string& dir, int64_t vocab_size) {
  GgufMetadata metadata;
  add_tokenizer_metadata(dir, vocab_size, metadata);
  return metadata;
}

// The corpus plus texts that write each family's special tokens and the edges of the "▁" handling.
std::vector<std::string> texts_for(const Tokenizer& original) {
  std::vector<std::string> texts = test::corpus_texts();
  for (const char* special : {"<s>", "</s>", "<unk>", "<|begin_of_text|>", "<|eot_id|>", "<|im_start|>", "<|im_end|>", "<tool_call>",
                              "<think>", "<|fim_prefix|>", "<｜begin▁of▁sentence｜>", "<｜User｜>", "<|reserved_special_token_3|>"}) {
    if (!original.token_to_id(special)) continue;
    texts.push_back(std::string(special) + "hello");
    texts.push_back(std::string("a ") + special + " b\n" + special + special);
  }
  for (const char* text : {" leading space", "  two leading", "trailing  ", "\u2581already metaspace", "[PAD5]", "<0x0A>"})
    texts.push_back(text);
  return texts;
}

// What qtune adds around a sequence when training on `dir` (prepare_data's rule): BOS when tokenizer_config.json
// says add_bos_token, else what the post-processor adds. DeepSeek V3's file says add_bos_token: true over a
// post-processor that adds nothing (HF's LlamaTokenizerFast adds BOS there too).
Ids expected_with_special(const Tokenizer& original, const TokenizerConfig& config, const std::string& text) {
  Ids ids = original.encode_with_special_tokens(text);
  const auto bos = config.bos_token.empty() ? std::nullopt : original.token_to_id(config.bos_token);
  const Ids body = original.encode(text, true);
  if (bos && config.add_bos_token == true && ids.size() == body.size()) ids.insert(ids.begin(), *bos);
  return ids;
}

// Encodes and decodes every text with both tokenizers; the first difference fails the test.
void expect_same_tokenizer(const Tokenizer& original, const Tokenizer& from_gguf, const std::string& family,
                           const TokenizerConfig& config) {
  int checked = 0;
  for (const std::string& text : texts_for(original)) {
    for (bool parse_special : {true, false}) {
      const Ids ids = original.encode(text, parse_special);
      ASSERT_EQ(from_gguf.encode(text, parse_special), ids) << family << " parse_special=" << parse_special << " text: " << text;
      ASSERT_EQ(from_gguf.decode(ids), original.decode(ids)) << family << " text: " << text;
      ASSERT_EQ(from_gguf.decode(ids, true), original.decode(ids, true)) << family << " text: " << text;
    }
    ASSERT_EQ(from_gguf.encode_with_special_tokens(text), expected_with_special(original, config, text)) << family << " text: " << text;
    ++checked;
  }
  EXPECT_GT(checked, 6000);
}

struct Family {
  const char* name;
  const char* model;  // tokenizer.ggml.model
  const char* pre;
};
const Family kFamilies[] = {{"llama2", "llama", "default"},  {"llama3", "gpt2", "llama-bpe"}, {"llama3_1", "gpt2", "llama-bpe"},
                            {"qwen2_5", "gpt2", "qwen2"},    {"qwen3", "gpt2", "qwen2"},      {"deepseek_v3", "gpt2", "deepseek-v3"}};

TEST(GgufTokenizer, RoundTripEncodesAndDecodesLikeTheOriginal) {
  for (const Family& family : kFamilies) {
    const std::string dir = family_dir(family.name);
    if (dir.empty()) continue;
    const auto original = load_tokenizer(dir);
    const GgufMetadata metadata = metadata_for(dir, original->vocab_size());
    EXPECT_EQ(metadata.string("tokenizer.ggml.model", "t"), family.model) << family.name;
    EXPECT_EQ(metadata.string("tokenizer.ggml.pre", "t"), family.pre) << family.name;
    const auto from_gguf = tokenizer_from_gguf(metadata, family.name);
    EXPECT_EQ(from_gguf->vocab_size(), original->vocab_size()) << family.name;
    for (TokenId id = 0; id < original->vocab_size(); id += 97) {
      EXPECT_EQ(from_gguf->id_to_token(id), original->id_to_token(id)) << family.name << " id " << id;
      EXPECT_EQ(from_gguf->is_special(id), original->is_special(id)) << family.name << " id " << id;
    }
    expect_same_tokenizer(*original, *from_gguf, family.name, TokenizerConfig::load(dir));
  }
}

// The keys go through a real file (GgufWriter, GgufFile) unchanged, and padding to a larger embedding gives
// unused "[PAD<id>]" tokens that the read-back tokenizer counts but never produces.
TEST(GgufTokenizer, PaddedVocabularyThroughAFile) {
  const std::string dir = family_dir("qwen2_5");
  if (dir.empty()) GTEST_SKIP() << "no qwen2_5 tokenizer files";
  const auto original = load_tokenizer(dir);
  const int64_t padded = original->vocab_size() + 271;  // Qwen 2.5's embeddings have 151,936 rows for 151,665 tokens
  const std::string path = test::temp_dir("gguf_tokenizer") + "/t.gguf";
  {
    GgufWriter writer(path, metadata_for(dir, padded), {});
    writer.finish();
  }
  const auto file = GgufFile::open(path);
  const GgufMetadata& metadata = file->metadata();
  const GgufValue* tokens = metadata.find("tokenizer.ggml.tokens");
  ASSERT_NE(tokens, nullptr);
  ASSERT_EQ(static_cast<int64_t>(tokens->strings.size()), padded);
  EXPECT_EQ(tokens->strings[151665], "[PAD151665]");
  EXPECT_EQ(metadata.find("tokenizer.ggml.token_type")->integers[151665], 5);  // UNUSED
  EXPECT_EQ(metadata.find("tokenizer.ggml.token_type")->integers[151644], 3);  // <|im_start|>: special -> CONTROL
  EXPECT_EQ(metadata.find("tokenizer.ggml.token_type")->integers[151657], 4);  // <tool_call>: not special -> USER_DEFINED
  EXPECT_EQ(metadata.find("tokenizer.ggml.token_type")->integers[9707], 1);    // "Hello"
  EXPECT_EQ(metadata.find("tokenizer.ggml.merges")->strings.front(), "Ġ Ġ");
  const auto from_gguf = tokenizer_from_gguf(metadata, path);
  EXPECT_EQ(from_gguf->vocab_size(), padded);
  EXPECT_EQ(from_gguf->id_to_token(151935), "[PAD151935]");
  EXPECT_EQ(from_gguf->encode("[PAD151665] [PAD151935]"), original->encode("[PAD151665] [PAD151935]"));
  expect_same_tokenizer(*original, *from_gguf, "qwen2_5 padded", TokenizerConfig::load(dir));
}

TEST(GgufTokenizer, SpecialTokenIdsAndFlags) {
  struct Expected {
    const char* family;
    std::optional<int64_t> bos, eos, unk, pad;
    bool add_bos, add_eos, chat_template;
  };
  const Expected cases[] = {
      {"llama2", 1, 2, 0, std::nullopt, true, false, false},             // post-processor adds <s>
      {"llama3", 128000, 128001, std::nullopt, std::nullopt, false, false, true},  // this file's post-processor adds nothing
      {"llama3_1", 128000, 128009, std::nullopt, std::nullopt, true, false, true},  // TemplateProcessing adds <|begin_of_text|>
      {"qwen2_5", std::nullopt, 151645, std::nullopt, 151643, false, false, true},  // bos_token null, add_bos_token false
      {"deepseek_v3", 0, 1, std::nullopt, 1, true, false, true},
  };
  for (const Expected& e : cases) {
    const std::string dir = family_dir(e.family);
    if (dir.empty()) continue;
    const GgufMetadata metadata = metadata_for(dir, load_tokenizer(dir)->vocab_size());
    auto id = [&](const char* key) -> std::optional<int64_t> {
      const GgufValue* value = metadata.find(key);
      if (value == nullptr) return std::nullopt;
      EXPECT_EQ(value->type, GgufValueType::kUint32) << key;
      return value->integer;
    };
    EXPECT_EQ(id("tokenizer.ggml.bos_token_id"), e.bos) << e.family;
    EXPECT_EQ(id("tokenizer.ggml.eos_token_id"), e.eos) << e.family;
    EXPECT_EQ(id("tokenizer.ggml.unknown_token_id"), e.unk) << e.family;
    EXPECT_EQ(id("tokenizer.ggml.padding_token_id"), e.pad) << e.family;
    EXPECT_EQ(metadata.boolean("tokenizer.ggml.add_bos_token", e.family), e.add_bos) << e.family;
    EXPECT_EQ(metadata.boolean("tokenizer.ggml.add_eos_token", e.family), e.add_eos) << e.family;
    EXPECT_EQ(metadata.contains("tokenizer.chat_template"), e.chat_template) << e.family;

    // tokenizer_config_from_gguf gives back what TokenizerConfig::load read (BOS/EOS texts and the template).
    const TokenizerConfig original = TokenizerConfig::load(dir), back = tokenizer_config_from_gguf(metadata, e.family);
    EXPECT_EQ(back.eos_token, original.eos_token) << e.family;
    EXPECT_EQ(back.chat_template, original.chat_template) << e.family;
    EXPECT_EQ(back.add_bos_token, e.add_bos) << e.family;
    if (e.bos) EXPECT_EQ(back.bos_token, original.bos_token) << e.family;
  }
}

// Gemma 1/2 and Gemma 3 (byte-fallback BPE over "▁"-spaced text, no "▁" prepended): llama.cpp's converter writes
// them as its "llama" (sentencepiece) model without the space prefix; read back, they tokenize as the originals.
TEST(GgufTokenizer, GemmaIsTheLlamaModelWithoutSpacePrefix) {
  for (const char* family : {"gemma", "gemma3"}) {
    const std::string dir = family_dir(family);
    if (dir.empty()) continue;
    const auto original = load_tokenizer(dir);
    const GgufMetadata metadata = metadata_for(dir, original->vocab_size());
    EXPECT_EQ(metadata.string("tokenizer.ggml.model", "t"), "llama") << family;
    EXPECT_FALSE(metadata.boolean("tokenizer.ggml.add_space_prefix", "t")) << family;
    const auto from_gguf = tokenizer_from_gguf(metadata, family);
    EXPECT_EQ(from_gguf->vocab_size(), original->vocab_size()) << family;
    expect_same_tokenizer(*original, *from_gguf, family, TokenizerConfig::load(dir));
  }
}

// Llama 2: byte tokens, <unk> as UNKNOWN, scores that rank merges, the "▁" prefix flag.
TEST(GgufTokenizer, SentencepieceScoresRankMerges) {
  const std::string dir = family_dir("llama2");
  if (dir.empty()) GTEST_SKIP() << "no llama2 tokenizer files";
  const GgufMetadata metadata = metadata_for(dir, 32000);
  EXPECT_FALSE(metadata.contains("tokenizer.ggml.merges"));  // llama.cpp's "llama" model has scores instead
  const auto& types = metadata.find("tokenizer.ggml.token_type")->integers;
  const auto& scores = metadata.find("tokenizer.ggml.scores")->numbers;
  const auto& tokens = metadata.find("tokenizer.ggml.tokens")->strings;
  EXPECT_EQ(types[0], 2);  // <unk>
  EXPECT_EQ(types[1], 3);  // <s>
  EXPECT_EQ(types[3], 6);  // <0x00>
  EXPECT_EQ(tokens[3], "<0x00>");
  EXPECT_EQ(scores[3], 0.0);
  // The file's merges start "▁ t" (rank 0, making "▁t", id 261), "i n", "e r" (rank 2, making "er", id 263).
  EXPECT_EQ(tokens[261], "\u2581t");
  EXPECT_EQ(scores[261], -1.0);
  EXPECT_EQ(tokens[263], "er");
  EXPECT_EQ(scores[263], -3.0);
  EXPECT_TRUE(metadata.boolean("tokenizer.ggml.add_space_prefix", "t"));
}

TEST(GgufTokenizer, RefusesWhatGgufCannotDescribe) {
  const std::string dir = family_dir("llama3");
  if (dir.empty()) GTEST_SKIP() << "no llama3 tokenizer files";
  GgufMetadata metadata;
  // Fewer embedding rows than tokens.
  EXPECT_THROW(add_tokenizer_metadata(dir, 1000, metadata), InputError);

  // A pre-tokenizer llama.cpp has no name for.
  const std::string other = test::temp_dir("gguf_tokenizer_pre");
  auto doc = nlohmann::json::parse(test::read_file(dir + "/tokenizer.json"));
  doc["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "\\s+|\\S+";
  test::write_file(other + "/tokenizer.json", doc.dump());
  try {
    add_tokenizer_metadata(other, 128256, metadata);
    ADD_FAILURE() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer.json"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("qwen2"), std::string::npos) << e.what();  // names what is supported
  }
  EXPECT_THROW(add_tokenizer_metadata(test::temp_dir("gguf_tokenizer_none"), 10, metadata), InputError);
}

TEST(GgufTokenizer, ReadBackRefusesBadKeys) {
  GgufMetadata metadata;
  metadata.set("tokenizer.ggml.model", GgufValue::text("gpt2"));
  metadata.set("tokenizer.ggml.pre", GgufValue::text("some-new-model"));
  metadata.set("tokenizer.ggml.tokens", GgufValue::string_array({"a", "b", "ab"}));
  metadata.set("tokenizer.ggml.merges", GgufValue::string_array({"a b"}));
  try {
    tokenizer_from_gguf(metadata, "x.gguf");
    ADD_FAILURE() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("x.gguf"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("llama-bpe"), std::string::npos) << e.what();
  }
  metadata.set("tokenizer.ggml.pre", GgufValue::text("qwen2"));
  EXPECT_NO_THROW(tokenizer_from_gguf(metadata, "x.gguf"));
  metadata.set("tokenizer.ggml.bos_token_id", GgufValue::u32(3));  // one past the last token
  EXPECT_THROW(tokenizer_from_gguf(metadata, "x.gguf"), InputError);
  metadata.set("tokenizer.ggml.bos_token_id", GgufValue::u32(0));
  metadata.set("tokenizer.ggml.token_type", GgufValue::i32_array({1, 1}));  // two types for three tokens
  EXPECT_THROW(tokenizer_from_gguf(metadata, "x.gguf"), InputError);
  metadata.set("tokenizer.ggml.token_type", GgufValue::i32_array({1, 1, 9}));  // no such type
  EXPECT_THROW(tokenizer_from_gguf(metadata, "x.gguf"), InputError);
  metadata.set("tokenizer.ggml.token_type", GgufValue::i32_array({1, 1, 1}));
  metadata.set("tokenizer.ggml.merges", GgufValue::string_array({"a c"}));  // c is no token
  EXPECT_THROW(tokenizer_from_gguf(metadata, "x.gguf"), InputError);
  metadata.set("tokenizer.ggml.model", GgufValue::text("llama"));  // without scores
  EXPECT_THROW(tokenizer_from_gguf(metadata, "x.gguf"), InputError);
  metadata.set("tokenizer.ggml.model", GgufValue::text("bert"));
  EXPECT_THROW(tokenizer_from_gguf(metadata, "x.gguf"), InputError);
}

}  // namespace
}  // namespace qtune
