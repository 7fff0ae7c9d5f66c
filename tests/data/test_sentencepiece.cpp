// Tests for the sentencepiece .model tokenizer against Debian's spm_encode / spm_decode, on a BPE (with byte
// fallback) and a unigram model trained here by spm_train.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <sstream>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "core/error.h"
#include "data/sentencepiece_tokenizer.h"
#include "tests/support/files.h"

namespace qtune {
namespace {

namespace fs = std::filesystem;
using Ids = std::vector<TokenId>;

// Project-written training text in Latin scripts: accents, numbers, punctuation, code.
const std::vector<std::string>& latin_sentences() {
  static const std::vector<std::string> text = {
      "The quick brown fox jumps over the lazy dog while the farmer watches from the porch.",
      "Fine-tuning a small language model on a single graphics card takes patience and good data.",
      "She sold seashells by the seashore, and the shells she sold were surely seashells.",
      "In 1969 the first humans walked on the Moon; 384,400 km is the average distance.",
      "Please return the tokenizer, the weights, and the configuration file before Friday.",
      "Le café était très chaud, alors nous avons attendu près de la fenêtre ouverte.",
      "Où est la bibliothèque ? Elle se trouve derrière l'église, à côté du marché.",
      "Der Bäcker öffnet um sechs Uhr, und die Straße riecht dann nach frischem Brot.",
      "Zwölf Boxkämpfer jagen Viktor quer über den großen Sylter Deich.",
      "¿Dónde está la estación? Necesitamos llegar antes de que salga el tren.",
      "El niño comió una manzana y después jugó al fútbol con sus amigos.",
      "Não há nada como um pão de queijo quente numa manhã fria em São Paulo.",
      "for (int i = 0; i < n; ++i) { total += values[i] * 2; }",
      "def train(model, data): return model.fit(data, epochs=3, lr=2e-4)",
      "Prices: $19.99, €5.50, £3, ¥1000 — totals 42.5% higher than 2023.",
      "E-mail me at someone@example.com or visit https://example.org/docs?page=2.",
      "Ünïcödé text with dïäcrïtïcs: naïve coöperation, résumé, jalapeño, façade.",
  };
  return text;
}

// Other scripts and emoji, rarer in the corpus: their rarest characters fall outside the models'
// character coverage and become <unk> (unigram) or byte pieces (BPE).
const std::vector<std::string>& other_sentences() {
  static const std::vector<std::string> text = {
      "Привет! Как дела? Сегодня хорошая погода, и мы идём гулять в парк.",
      "Москва большая, а Санкт-Петербург красивый и очень старый город.",
      "Γειά σου κόσμε, η θάλασσα είναι ήρεμη σήμερα το πρωί.",
      "東京は日本の首都で、たくさんの人が電車で通勤しています。",
      "今日はとても暑いので、冷たいお茶を飲みましょう。",
      "我们今天下午去公园散步，然后在湖边喝茶。",
      "学习新的语言需要时间，但是很有意思。",
      "한국어 문장도 조금 넣어 봅시다. 오늘 날씨가 좋네요.",
      "مرحبا بالعالم، هذا نص قصير باللغة العربية.",
      "नमस्ते दुनिया, आज मौसम बहुत अच्छा है।",
      "Emoji appear in chats: 😀 🚀 👍 🎉 and sometimes ❤️ or ✨ too.",
  };
  return text;
}

// 3000 lines mixing the sentences, so the trainers see each word in several contexts.
std::string training_corpus() {
  const auto& latin = latin_sentences();
  const auto& other = other_sentences();
  std::string corpus;
  for (size_t i = 0; i < 3000; ++i) {
    corpus += latin[i % latin.size()];
    if (i % 2 == 0) corpus += " " + latin[(i * 7 + 3) % latin.size()];
    if (i % 16 == 0) corpus += " " + other[(i / 16) % other.size()];
    corpus += "\n";
  }
  return corpus;
}

// Lines the tokenizers are checked on: unseen words, scripts absent from training (unknown / byte
// fallback), NFKC-affected characters, whitespace runs, tabs, empty lines, special tokens written literally.
std::vector<std::string> probe_lines() {
  std::vector<std::string> lines = {
      "Hello world",
      "hello",
      "a",
      "",
      " ",
      "   leading and trailing spaces   ",
      "multiple     internal   spaces\tand\ttabs",
      "Café crème brûlée à la française, naïve résumé",
      "Straße, Größe, übermäßig, ÄÖÜ äöü",
      "Привет, как дела у тебя сегодня?",
      "Γειά σου Κόσμε",
      "東京は日本の首都です。",
      "我们今天去公园散步吧",
      "한국어 텍스트도 있어요",
      "مرحبا بالعالم",
      "नमस्ते दुनिया",
      "emoji 😀🚀👍🏽 and flags 🇫🇷🇯🇵, hearts ❤️",
      "unseen scripts: ሰላም ᚠᛇᚻ ⠓⠑⠇⠇⠕ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
      "ﬁne ｆｕｌｌｗｉｄｔｈ ① ™ ½ ㍿",
      "e\u0301 combining accent vs é",
      "zero\u200bwidth and non\u00a0breaking spaces",
      "numbers 1234567890 3.14159 -42 1e-5",
      "code: if (x != nullptr && y[3] >= 0) { return x->z; }",
      "日本語とEnglishのmixed文章です",
      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
      "¿Dónde está? ¡Aquí!",
      "literal <s> and </s> and <unk> and <pad> in text",
      "[INST] What is this? [/INST] A test.",
      "a<sep>b <sep> c",
      "<|im_start|>user hi<|im_end|>",
  };
  for (size_t i = 0; i < latin_sentences().size(); i += 2) lines.push_back(latin_sentences()[i]);
  for (size_t i = 0; i < other_sentences().size(); i += 3) lines.push_back(other_sentences()[i]);
  return lines;
}

// Control pieces of the test models: lines holding one encode differently when parse_special is on.
bool has_control_literal(const std::string& line) {
  for (const char* piece : {"<s>", "</s>", "<pad>", "[INST]", "[/INST]", "<|im_start|>", "<|im_end|>"}) {
    if (line.find(piece) != std::string::npos) return true;
  }
  return false;
}

bool have_spm_tools() {
  return std::system("command -v spm_train >/dev/null 2>&1 && command -v spm_encode >/dev/null 2>&1 && "
                     "command -v spm_decode >/dev/null 2>&1") == 0;
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::string join_lines(const std::vector<std::string>& lines) {
  std::string text;
  for (const auto& line : lines) text += line + "\n";
  return text;
}

std::string ids_text(const Ids& ids) {
  std::string text;
  for (size_t i = 0; i < ids.size(); ++i) text += (i ? " " : "") + std::to_string(ids[i]);
  return text;
}

Ids parse_ids(const std::string& line) {
  Ids ids;
  std::istringstream in(line);
  for (long id; in >> id;) ids.push_back(static_cast<TokenId>(id));
  return ids;
}

// The two models, trained once per process into a folder of their own.
struct Models {
  std::string dir;
  std::string bpe;      // byte_fallback, default <unk>=0 <s>=1 </s>=2, control <|im_start|> <|im_end|>
  std::string unigram;  // no BOS, </s>=1 <pad>=2, control [INST] [/INST], user-defined <sep>
  std::string error;    // why training failed, empty on success

  Models();
  Models(const Models&) = delete;
  Models& operator=(const Models&) = delete;
  ~Models() {
    std::error_code ec;
    if (!dir.empty()) fs::remove_all(dir, ec);
  }
};

void train_models(Models& m) {
  m.dir = (fs::temp_directory_path() / ("qtune_spm_models_" + std::to_string(::getpid()))).string();
  fs::remove_all(m.dir);
  fs::create_directories(m.dir);
  test::write_file(m.dir + "/corpus.txt", training_corpus());
  const std::string common = "spm_train --input=" + m.dir + "/corpus.txt --num_threads=2 --minloglevel=2 "
                             "--hard_vocab_limit=false ";
  // 256 byte pieces + ~120 characters leave the BPE model ~120 merges.
  const std::string bpe = common + "--model_prefix=" + m.dir + "/bpe --model_type=bpe --vocab_size=500 "
                          "--character_coverage=0.99 --byte_fallback=true "
                          "--control_symbols='<|im_start|>,<|im_end|>'";
  const std::string unigram = common + "--model_prefix=" + m.dir + "/unigram --model_type=unigram "
                              "--vocab_size=400 --character_coverage=0.995 "
                              "--bos_id=-1 --eos_id=1 --pad_id=2 --unk_id=0 "
                              "--control_symbols='[INST],[/INST]' --user_defined_symbols='<sep>'";
  for (const auto& command : {bpe, unigram}) {
    if (std::system((command + " >" + m.dir + "/train.log 2>&1").c_str()) != 0) {
      m.error = "spm_train failed: " + command + "\n" + test::read_file(m.dir + "/train.log");
      return;
    }
  }
  m.bpe = m.dir + "/bpe.model";
  m.unigram = m.dir + "/unigram.model";
}

Models::Models() { train_models(*this); }

// Trained on first use; the folder goes when the process exits.
const Models& models() {
  static const Models trained;
  return trained;
}

// spm_encode --output_format=id, one id list per line.
std::vector<Ids> spm_encode(const std::string& model, const std::vector<std::string>& lines) {
  const std::string in = models().dir + "/encode_in.txt", out = models().dir + "/encode_out.txt";
  test::write_file(in, join_lines(lines));
  std::string command = "spm_encode --model=" + model + " --output_format=id <" + in + " >" + out;
  EXPECT_EQ(std::system(command.c_str()), 0) << command;
  std::vector<Ids> ids;
  for (const auto& line : split_lines(test::read_file(out))) ids.push_back(parse_ids(line));
  EXPECT_EQ(ids.size(), lines.size()) << "spm_encode output lines";
  return ids;
}

// spm_decode --input_format=id, one text per id list.
std::vector<std::string> spm_decode(const std::string& model, const std::vector<Ids>& ids) {
  const std::string in = models().dir + "/decode_in.txt", out = models().dir + "/decode_out.txt";
  std::vector<std::string> lines;
  for (const auto& list : ids) lines.push_back(ids_text(list));
  test::write_file(in, join_lines(lines));
  std::string command = "spm_decode --model=" + model + " --input_format=id <" + in + " >" + out;
  EXPECT_EQ(std::system(command.c_str()), 0) << command;
  auto texts = split_lines(test::read_file(out));
  texts.resize(ids.size());  // a trailing empty text leaves no line behind
  return texts;
}

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
  return text;
}

class SentencepieceTokenizerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!have_spm_tools()) {
      if (test::reference_required()) FAIL() << "spm_train/spm_encode/spm_decode missing: apt-get install sentencepiece";
      GTEST_SKIP() << "spm_train/spm_encode/spm_decode not installed (Debian package sentencepiece)";
    }
    ASSERT_TRUE(models().error.empty()) << models().error;
  }

  static std::vector<std::string> model_paths() { return {models().bpe, models().unigram}; }
};

TEST_F(SentencepieceTokenizerTest, EncodeMatchesSpmEncode) {
  const auto lines = probe_lines();
  for (const auto& path : model_paths()) {
    auto tokenizer = load_sentencepiece_tokenizer(path);
    const auto expected = spm_encode(path, lines);
    ASSERT_EQ(expected.size(), lines.size());
    for (size_t i = 0; i < lines.size(); ++i) {
      EXPECT_EQ(tokenizer->encode(lines[i], false), expected[i])
          << path << ", parse_special=false, line: \"" << lines[i] << "\"\n  qtune: "
          << ids_text(tokenizer->encode(lines[i], false)) << "\n  spm:   " << ids_text(expected[i]);
      if (has_control_literal(lines[i])) continue;
      EXPECT_EQ(tokenizer->encode(lines[i], true), expected[i])
          << path << ", parse_special=true, line: \"" << lines[i] << "\"";
    }
  }
}

// Without special ids, decode is spm_decode; with skip_special off, <unk> is written as its piece (as HF).
TEST_F(SentencepieceTokenizerTest, DecodeMatchesSpmDecode) {
  const auto lines = probe_lines();
  for (const auto& path : model_paths()) {
    auto tokenizer = load_sentencepiece_tokenizer(path);
    const auto ids = spm_encode(path, lines);
    const auto texts = spm_decode(path, ids);
    std::vector<Ids> without_special;
    for (const auto& list : ids) {
      Ids kept;
      for (TokenId id : list) {
        if (!tokenizer->is_special(id)) kept.push_back(id);
      }
      without_special.push_back(kept);
    }
    const auto texts_without_special = spm_decode(path, without_special);
    bool saw_unknown = false;
    for (size_t i = 0; i < ids.size(); ++i) {
      saw_unknown = saw_unknown || without_special[i].size() != ids[i].size();
      EXPECT_EQ(tokenizer->decode(ids[i], true), texts_without_special[i]) << path << ": " << ids_text(ids[i]);
      EXPECT_EQ(tokenizer->decode(ids[i], false), replace_all(texts[i], " \xE2\x81\x87 ", "<unk>"))
          << path << ": " << ids_text(ids[i]);
    }
    if (path == models().unigram) {
      EXPECT_TRUE(saw_unknown) << "the probe lines should reach <unk>";
    }
  }
}

TEST_F(SentencepieceTokenizerTest, DecodeOfEncodeIsTheNormalizedText) {
  const auto lines = probe_lines();
  auto tokenizer = load_sentencepiece_tokenizer(models().bpe);  // byte fallback: nothing becomes <unk>
  const auto normalized = spm_decode(models().bpe, spm_encode(models().bpe, lines));
  for (size_t i = 0; i < lines.size(); ++i) {
    EXPECT_EQ(tokenizer->decode(tokenizer->encode(lines[i], false)), normalized[i]) << lines[i];
  }
  // Text that nmt_nfkc leaves alone comes back unchanged; whitespace runs collapse, ends are trimmed.
  for (const std::string text : {"Hello world", "Café crème brûlée, naïve résumé", "東京は日本の首都です。",
                                 "emoji 😀🚀 and ሰላም", "Привет, мир"}) {
    EXPECT_EQ(tokenizer->decode(tokenizer->encode(text, false)), text);
  }
  EXPECT_EQ(tokenizer->decode(tokenizer->encode("  spaced   out\ttext  ", false)), "spaced out text");
}

TEST_F(SentencepieceTokenizerTest, ControlPiecesWrittenInTextBecomeTheirIds) {
  auto tokenizer = load_sentencepiece_tokenizer(models().bpe);
  const TokenId bos = *tokenizer->token_to_id("<s>"), eos = *tokenizer->token_to_id("</s>");
  const TokenId im_start = *tokenizer->token_to_id("<|im_start|>"), im_end = *tokenizer->token_to_id("<|im_end|>");
  EXPECT_EQ(tokenizer->encode("<s>", true), Ids{bos});
  EXPECT_EQ(tokenizer->encode("</s>", true), Ids{eos});
  EXPECT_EQ(tokenizer->encode("<s>", false), spm_encode(models().bpe, {"<s>"})[0]);  // plain text
  Ids plain = tokenizer->encode("<s></s>", false);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), bos), 0) << ids_text(plain);

  // Text before a special token encodes as on its own; no dummy prefix after it (HF legacy=False).
  Ids hello = tokenizer->encode("Hello world", false);
  Ids with_eos = hello;
  with_eos.push_back(eos);
  EXPECT_EQ(tokenizer->encode("Hello world</s>", true), with_eos);
  Ids ids = tokenizer->encode("<s>Hello world", true);
  ASSERT_GE(ids.size(), 2u);
  EXPECT_EQ(ids[0], bos);
  EXPECT_NE(tokenizer->id_to_token(ids[1]).rfind("\xE2\x96\x81", 0), 0u) << "dummy prefix after <s>";
  EXPECT_EQ(tokenizer->decode(ids, false), "<s>Hello world");
  EXPECT_EQ(tokenizer->decode(ids, true), "Hello world");

  // A chat: special pieces come back as written, or vanish as spm_decode makes them.
  const std::string chat = "<|im_start|>user hi there<|im_end|> <|im_start|>assistant fine, thanks<|im_end|>";
  ids = tokenizer->encode(chat, true);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), im_start), 2) << ids_text(ids);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), im_end), 2) << ids_text(ids);
  EXPECT_EQ(tokenizer->decode(ids, false), chat);
  EXPECT_EQ(tokenizer->decode(ids, true), spm_decode(models().bpe, {ids})[0]);
  EXPECT_EQ(tokenizer->decode(tokenizer->encode("a </s> b", true), false), "a </s> b");
  EXPECT_EQ(tokenizer->decode(tokenizer->encode("</s><s>x", true), false), "</s><s>x");
}

TEST_F(SentencepieceTokenizerTest, UserDefinedAndControlPiecesOfTheUnigramModel) {
  auto tokenizer = load_sentencepiece_tokenizer(models().unigram);
  const TokenId sep = *tokenizer->token_to_id("<sep>"), inst = *tokenizer->token_to_id("[INST]");
  const TokenId end_inst = *tokenizer->token_to_id("[/INST]"), pad = *tokenizer->token_to_id("<pad>");
  // User-defined pieces are always matched, as sentencepiece does; they are not special.
  for (bool parse_special : {false, true}) {
    Ids ids = tokenizer->encode("a<sep>b", parse_special);
    EXPECT_EQ(std::count(ids.begin(), ids.end(), sep), 1) << ids_text(ids);
  }
  EXPECT_FALSE(tokenizer->is_special(sep));
  EXPECT_TRUE(tokenizer->is_special(inst));
  EXPECT_TRUE(tokenizer->is_special(pad));
  EXPECT_TRUE(tokenizer->is_special(*tokenizer->token_to_id("<unk>")));

  const std::string prompt = "[INST] where is the bread? [/INST] on the porch.";
  Ids ids = tokenizer->encode(prompt, true);
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids[0], inst) << ids_text(ids);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), end_inst), 1) << ids_text(ids);
  EXPECT_EQ(tokenizer->decode(ids, false), prompt);
  Ids plain = tokenizer->encode(prompt, false);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), inst), 0) << ids_text(plain);
  EXPECT_EQ(tokenizer->encode("<pad>", true), Ids{pad});
}

TEST_F(SentencepieceTokenizerTest, EncodeWithSpecialTokensAddsBosOnly) {
  auto bpe = load_sentencepiece_tokenizer(models().bpe);
  Ids expected{*bpe->token_to_id("<s>")};
  Ids body = bpe->encode("Hello <|im_end|> world", true);
  expected.insert(expected.end(), body.begin(), body.end());
  EXPECT_EQ(bpe->encode_with_special_tokens("Hello <|im_end|> world"), expected);
  EXPECT_EQ(bpe->encode_with_special_tokens(""), Ids{*bpe->token_to_id("<s>")});

  auto unigram = load_sentencepiece_tokenizer(models().unigram);  // trained with --bos_id=-1
  EXPECT_EQ(unigram->encode_with_special_tokens("Hello world"), unigram->encode("Hello world", true));
}

// A piece as the input spells it: "▁" is a space, "<0xNN>" the byte NN, control pieces their own text.
std::string piece_text(const Tokenizer& tokenizer, TokenId id) {
  std::string piece = tokenizer.id_to_token(id);
  if (piece.size() == 6 && piece.rfind("<0x", 0) == 0 && piece.back() == '>') {
    return std::string(1, static_cast<char>(std::stoi(piece.substr(3, 2), nullptr, 16)));
  }
  return replace_all(piece, "\xE2\x96\x81", " ");
}

TEST_F(SentencepieceTokenizerTest, OffsetsAreMonotonicAndMatchEncode) {
  for (const auto& path : model_paths()) {
    auto tokenizer = load_sentencepiece_tokenizer(path);
    for (const auto& line : probe_lines()) {
      for (bool parse_special : {false, true}) {
        Encoding encoding = tokenizer->encode_with_offsets(line, parse_special);
        EXPECT_EQ(encoding.ids, tokenizer->encode(line, parse_special)) << line;
        ASSERT_EQ(encoding.offsets.size(), encoding.ids.size()) << line;
        EXPECT_TRUE(std::is_sorted(encoding.offsets.begin(), encoding.offsets.end())) << line;
        if (!encoding.offsets.empty()) {
          EXPECT_LE(encoding.offsets.back(), line.size()) << line;
        }
      }
    }
  }
}

// On text normalization leaves alone, each token is the input from its offset to the next token's
// (the first token's dummy-prefix space excepted).
TEST_F(SentencepieceTokenizerTest, OffsetsPointAtEachPieceInTheInput) {
  auto tokenizer = load_sentencepiece_tokenizer(models().bpe);
  for (const std::string text : {"Hello world, this is the porch.", "def train(model, data): return 42",
                                 "<s>Hello</s> a <|im_start|>user hi<|im_end|>", "x</s>"}) {
    Encoding encoding = tokenizer->encode_with_offsets(text, true);
    ASSERT_EQ(encoding.offsets.size(), encoding.ids.size());
    for (size_t i = 0; i < encoding.ids.size(); ++i) {
      size_t end = i + 1 < encoding.ids.size() ? encoding.offsets[i + 1] : text.size();
      std::string slice = text.substr(encoding.offsets[i], end - encoding.offsets[i]);
      std::string expected = piece_text(*tokenizer, encoding.ids[i]);
      if (i == 0 && !expected.empty() && expected[0] == ' ' && slice.rfind(' ', 0) != 0) expected.erase(0, 1);
      EXPECT_EQ(slice, expected) << "\"" << text << "\" token " << i << " (" << tokenizer->id_to_token(encoding.ids[i])
                                 << ") at " << encoding.offsets[i];
    }
  }
}

// The .vocab file spm_train writes next to the model lists every piece in id order.
TEST_F(SentencepieceTokenizerTest, VocabularyMatchesTheVocabFile) {
  for (const auto& path : model_paths()) {
    auto tokenizer = load_sentencepiece_tokenizer(path);
    const auto vocab = split_lines(test::read_file(path.substr(0, path.size() - 6) + ".vocab"));
    ASSERT_EQ(tokenizer->vocab_size(), static_cast<TokenId>(vocab.size())) << path;
    for (TokenId id = 0; id < tokenizer->vocab_size(); ++id) {
      const std::string piece = vocab[id].substr(0, vocab[id].find('\t'));
      EXPECT_EQ(tokenizer->id_to_token(id), piece) << path << " id " << id;
      EXPECT_EQ(tokenizer->token_to_id(piece), std::optional<TokenId>(id)) << path << " piece " << piece;
    }
    EXPECT_EQ(tokenizer->id_to_token(-1), "");
    EXPECT_EQ(tokenizer->id_to_token(tokenizer->vocab_size()), "");
    EXPECT_EQ(tokenizer->token_to_id("no such piece"), std::nullopt);
    EXPECT_FALSE(tokenizer->is_special(-1));
    EXPECT_FALSE(tokenizer->is_special(tokenizer->vocab_size()));
  }
  auto bpe = load_sentencepiece_tokenizer(models().bpe);
  EXPECT_TRUE(bpe->is_special(*bpe->token_to_id("<s>")));
  EXPECT_FALSE(bpe->is_special(*bpe->token_to_id("<0xF0>")));  // byte pieces are ordinary
  EXPECT_FALSE(bpe->is_special(bpe->encode("Hello", false).at(0)));
}

TEST_F(SentencepieceTokenizerTest, ByteFallbackDecodesPartialUtf8AsReplacementCharacters) {
  auto tokenizer = load_sentencepiece_tokenizer(models().bpe);
  Ids emoji = tokenizer->encode("🦙", false);  // not in the corpus: byte pieces
  ASSERT_GE(emoji.size(), 4u) << ids_text(emoji);
  EXPECT_EQ(tokenizer->decode(emoji), "🦙");
  Ids partial(emoji.end() - 4, emoji.end() - 2);  // F0 9F: the first half of the character
  EXPECT_EQ(tokenizer->decode(partial), "\xEF\xBF\xBD\xEF\xBF\xBD") << ids_text(partial);
  EXPECT_EQ(tokenizer->decode(partial), spm_decode(models().bpe, {partial})[0]);
}

TEST_F(SentencepieceTokenizerTest, DecodeSkipsIdsOutOfRange) {
  auto tokenizer = load_sentencepiece_tokenizer(models().bpe);
  Ids ids = tokenizer->encode("Hello world", false);
  Ids noisy = ids;
  noisy.insert(noisy.begin(), -7);
  noisy.push_back(tokenizer->vocab_size());
  noisy.push_back(1 << 30);
  EXPECT_EQ(tokenizer->decode(noisy), tokenizer->decode(ids));
  EXPECT_EQ(tokenizer->decode({}), "");
}

TEST_F(SentencepieceTokenizerTest, SharedAcrossThreads) {
  auto tokenizer = load_sentencepiece_tokenizer(models().unigram);
  const auto lines = probe_lines();
  std::vector<Ids> expected;
  for (const auto& line : lines) expected.push_back(tokenizer->encode(line, true));
  std::vector<int> mismatches(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 20; ++round) {
        for (size_t i = 0; i < lines.size(); ++i) {
          Ids ids = tokenizer->encode(lines[i], true);
          if (ids != expected[i] || tokenizer->decode(ids) != tokenizer->decode(expected[i])) ++mismatches[t];
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(mismatches, std::vector<int>(4, 0));
}

// Loading must fail with an InputError that names the file, never crash.
void expect_input_error(const std::string& path, const std::string& what) {
  try {
    load_sentencepiece_tokenizer(path);
    ADD_FAILURE() << what << ": loaded without error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << what << ": " << e.what();
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << what << ": " << e.what();
  }
}

TEST_F(SentencepieceTokenizerTest, BadFilesGiveInputErrorNamingTheFile) {
  const std::string dir = test::temp_dir("bad");
  expect_input_error(dir + "/missing.model", "missing file");
  expect_input_error(dir, "a folder");

  const std::string model = test::read_file(models().bpe);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"empty.model", ""},
      {"json.model", "{\"version\": \"1.0\", \"model\": {\"type\": \"BPE\"}}"},
      {"text.model", "this is not a protobuf at all\n"},
      {"truncated.model", model.substr(0, model.size() / 2)},
      {"garbage.model", std::string("\x0a\xff\xff\xff\xff\x0f\x01\x02", 8) + std::string(64, '\xfe')},
  };
  for (const auto& [name, content] : cases) {
    test::write_file(dir + "/" + name, content);
    expect_input_error(dir + "/" + name, name);
  }
}

}  // namespace
}  // namespace qtune
