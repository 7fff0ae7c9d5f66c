// Tests of the tokenizer.json implementation: hand-built vocabularies whose expected ids follow from the
// BPE definition by hand, then parity with HF tokenizers (the Rust library) on the real files of nine
// model families: the committed corpus encoded at test time by scripts/make_tokenizer_fixtures.py
// (ctest Reference.HfTokenizers; files found by test::tokenizer_dir).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/hf_tokenizer.h"
#include "data/regex.h"
#include "data/utf8.h"
#include "tests/data/hf_reference.h"
#include "tests/support/files.h"

namespace qtune {
namespace {

using json = nlohmann::json;
using Ids = std::vector<TokenId>;

// A byte-level BPE with merges over a tiny alphabet, shaped like Llama 3's file.
json byte_level_document() {
  json vocab = json::object();
  int id = 0;
  for (const char* t : {"a", "b", "c", "Ġ", "ab", "bc", "abc", "Ġa", "Ġab", "!", "Ċ"}) vocab[t] = id++;
  // Every other byte-level character gets an id from 100 up, so any UTF-8 text is encodable.
  for (int b = 0; b < 256; ++b)
    if (!vocab.contains(utf8::byte_to_char()[b])) vocab[utf8::byte_to_char()[b]] = 100 + b;
  return {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", {"a b", "Ġ a", "ab c", "b c", "Ġa b"}}}},
          {"added_tokens",
           {{{"id", 20}, {"content", "<|eot|>"}, {"special", true}},
            {{"id", 21}, {"content", "<|eot|>x"}, {"special", false}},
            {{"id", 22}, {"content", "<pad>"}, {"special", true}, {"lstrip", true}, {"rstrip", true}}}},
          {"normalizer", nullptr},
          {"pre_tokenizer",
           {{"type", "Sequence"},
            {"pretokenizers",
             {{{"type", "Split"}, {"pattern", {{"Regex", R"( ?\p{L}+|\s+|[^\s\p{L}]+)"}}}, {"behavior", "Isolated"}},
              {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}}},
          {"post_processor",
           {{"type", "TemplateProcessing"},
            {"single", {{{"SpecialToken", {{"id", "<|eot|>"}}}}, {{"Sequence", {{"id", "A"}}}}}},
            {"special_tokens", {{"<|eot|>", {{"id", "<|eot|>"}, {"ids", {20}}}}}}}},
          {"decoder", {{"type", "ByteLevel"}}}};
}

TEST(HfTokenizer, MergesApplyByRankNotByPosition) {
  auto tok = make_hf_tokenizer(byte_level_document(), "test");
  // "abc": a+b (rank 0) first, then ab+c (rank 2) -> "abc" (6), even though b+c also exists.
  EXPECT_EQ(tok->encode("abc"), Ids({6}));
  // "bc": only b+c applies.
  EXPECT_EQ(tok->encode("bc"), Ids({5}));
  // " ab": Ġ+a (rank 1) ... but a+b (rank 0) wins first -> Ġ, ab; then no merge "Ġ ab" -> [3, 4].
  EXPECT_EQ(tok->encode(" ab"), Ids({3, 4}));
  // " a": Ġ+a -> "Ġa".
  EXPECT_EQ(tok->encode(" a"), Ids({7}));
  // "cab": c, then a+b -> [2, 4].
  EXPECT_EQ(tok->encode("cab"), Ids({2, 4}));
}

TEST(HfTokenizer, AddedTokensAreLongestMatchAndSpecialsCanBeText) {
  auto tok = make_hf_tokenizer(byte_level_document(), "test");
  EXPECT_EQ(tok->encode("a<|eot|>b"), Ids({0, 20, 1}));
  EXPECT_EQ(tok->encode("<|eot|>x"), Ids({21}));  // longest added token wins
  // lstrip/rstrip swallow the blanks around <pad>.
  EXPECT_EQ(tok->encode("a  <pad>  b"), Ids({0, 22, 1}));
  // With parse_special off, "<|eot|>" is ordinary text; the non-special "<|eot|>x" still matches.
  Ids as_text = tok->encode("<|eot|>", false);
  EXPECT_EQ(std::find(as_text.begin(), as_text.end(), 20), as_text.end());
  EXPECT_EQ(tok->decode(as_text), "<|eot|>");
  EXPECT_EQ(tok->encode("<|eot|>x", false), Ids({21}));
}

TEST(HfTokenizer, PostProcessorAndDecodeOptions) {
  auto tok = make_hf_tokenizer(byte_level_document(), "test");
  EXPECT_EQ(tok->encode_with_special_tokens("ab"), Ids({20, 4}));
  EXPECT_EQ(tok->decode({20, 6, 7}), "<|eot|>abc a");
  EXPECT_EQ(tok->decode({20, 6, 7}, true), "abc a");
  EXPECT_TRUE(tok->is_special(20));
  EXPECT_FALSE(tok->is_special(21));
  EXPECT_EQ(tok->vocab_size(), 356);
  EXPECT_EQ(tok->token_to_id("Ġab"), 8);
  EXPECT_EQ(tok->token_to_id("<pad>"), 22);
  EXPECT_FALSE(tok->token_to_id("zzz").has_value());
  EXPECT_EQ(tok->id_to_token(8), "Ġab");
}

TEST(HfTokenizer, ByteLevelRoundTripsAnyUtf8) {
  auto tok = make_hf_tokenizer(byte_level_document(), "test");
  for (std::string text : {"héllo wörld", "日本語 テキスト", "emoji 👍🏽 and \t tabs\n\r\n", "  lead and trail  ", "", "a<|eot|>b<pad>"}) {
    EXPECT_EQ(tok->decode(tok->encode(text)), text);
    EXPECT_EQ(tok->decode(tok->encode(text, false)), text);
  }
}

// Llama-2 style: Prepend + Replace normalizer, no pre-tokenizer, byte fallback, unk, fused decoder.
json metaspace_document() {
  json vocab = json::object();
  vocab["<unk>"] = 0;
  vocab["<s>"] = 1;
  vocab["</s>"] = 2;
  for (int b = 0; b < 256; ++b) vocab[fmt::format("<0x{:02X}>", b)] = 3 + b;
  int id = 259;
  for (const char* t : {"▁", "h", "i", "▁h", "▁hi", "é"}) vocab[t] = id++;
  return {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", {"▁ h", "▁h i"}}, {"unk_token", "<unk>"},
                     {"fuse_unk", true}, {"byte_fallback", true}}},
          {"added_tokens", {{{"id", 0}, {"content", "<unk>"}, {"special", true}},
                            {{"id", 1}, {"content", "<s>"}, {"special", true}},
                            {{"id", 2}, {"content", "</s>"}, {"special", true}}}},
          {"normalizer", {{"type", "Sequence"}, {"normalizers", {{{"type", "Prepend"}, {"prepend", "▁"}},
                                                                  {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "▁"}}}}}},
          {"pre_tokenizer", nullptr},
          {"post_processor", {{"type", "TemplateProcessing"},
                              {"single", {{{"SpecialToken", {{"id", "<s>"}}}}, {{"Sequence", {{"id", "A"}}}}}},
                              {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {1}}}}}}}},
          {"decoder", {{"type", "Sequence"}, {"decoders", {{{"type", "Replace"}, {"pattern", {{"String", "▁"}}}, {"content", " "}},
                                                           {{"type", "ByteFallback"}}, {{"type", "Fuse"}},
                                                           {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}}}};
}

TEST(HfTokenizer, MetaspaceWithByteFallback) {
  auto tok = make_hf_tokenizer(metaspace_document(), "test");
  EXPECT_EQ(tok->encode("hi"), Ids({263}));                    // "▁hi"
  EXPECT_EQ(tok->encode("hi hi"), Ids({263, 263}));
  EXPECT_EQ(tok->encode("hé"), Ids({262, 264}));               // "▁h", "é"
  // "€" (E2 82 AC) is not in the vocab: three byte tokens.
  EXPECT_EQ(tok->encode("€"), Ids({259, 3 + 0xE2, 3 + 0x82, 3 + 0xAC}));
  EXPECT_EQ(tok->encode_with_special_tokens("hi"), Ids({1, 263}));
  for (std::string text : {"hi hé €", "x", "  hi  "}) EXPECT_EQ(tok->decode(tok->encode(text)), text);
  // A cut byte sequence decodes to U+FFFD per byte, as HF's ByteFallback does.
  EXPECT_EQ(tok->decode({263, 3 + 0xE2, 3 + 0x82}), "hi\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST(HfTokenizer, UnknownWithoutByteFallbackFusesUnk) {
  json doc = metaspace_document();
  doc["model"]["byte_fallback"] = false;
  auto tok = make_hf_tokenizer(doc, "test");
  EXPECT_EQ(tok->encode("h€€"), Ids({262, 0}));  // "▁h", then one fused <unk>
}

TEST(HfTokenizer, RejectsMalformedFilesWithTheirName) {
  const std::string dir = test::temp_dir("bad");
  struct Case {
    std::string content, problem;
  };
  std::vector<Case> cases = {
      {"{\"model\": ", "invalid JSON"},
      {"[]", "not a tokenizer.json"},
      {R"({"model": {"type": "WordPiece", "vocab": {}}})", "not supported"},
      {R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}})", "missing from model.vocab"},
      {R"({"model": {"type": "BPE", "vocab": {"a": "x"}, "merges": []}})", "non-negative integer"},
      {R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(("}}})",
       "does not compile"},
      {R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "normalizer": {"type": "Magic"}})", "'Magic' is not supported"},
      {R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "added_tokens": [{"id": 1}]})", "needs an integer 'id'"},
  };
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const std::string path = dir + "/tokenizer" + std::to_string(i) + ".json";
    test::write_file(path, cases[i].content);
    try {
      load_hf_tokenizer(path);
      ADD_FAILURE() << "accepted: " << cases[i].content;
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(cases[i].problem), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(load_hf_tokenizer(dir + "/missing.json"), InputError);
}

TEST(HfTokenizer, InvalidUtf8InputIsAnInputError) {
  auto tok = make_hf_tokenizer(byte_level_document(), "test");
  EXPECT_THROW(tok->encode("ab\xC3"), InputError);
  EXPECT_THROW(tok->encode("\xED\xA0\x80"), InputError);  // a UTF-16 surrogate
}

// The pattern classes follow Oniguruma in HF tokenizers: \s is Unicode White_Space (U+0085 yes, U+180E
// and U+FEFF no, per Unicode's PropList.txt), and general categories know Unicode 16.0 (U+105C0 TODHRI
// LETTER A is Lo, U+1E4F0 NAG MUNDARI DIGIT ZERO is Nd, both newer than PCRE2 10.42's Unicode 14.0).
TEST(Regex, ClassesFollowOniguruma) {
  auto matches = [](const std::string& pattern, const std::string& text) { return !Regex(pattern, "test").find_all(text).empty(); };
  EXPECT_TRUE(matches(R"(\s)", "\xC2\x85"));
  EXPECT_FALSE(matches(R"(\s)", "\xE1\xA0\x8E"));
  EXPECT_TRUE(matches(R"(\S)", "\xE1\xA0\x8E"));
  EXPECT_FALSE(matches(R"(\s)", "\xEF\xBB\xBF"));
  EXPECT_TRUE(matches(R"([^\s\p{L}])", "\xE1\xA0\x8E"));
  EXPECT_TRUE(matches(R"(\p{L})", "\xF0\x90\x97\x80"));
  EXPECT_TRUE(matches(R"(\p{Lo})", "\xF0\x90\x97\x80"));
  EXPECT_FALSE(matches(R"(\p{Lu})", "\xF0\x90\x97\x80"));
  EXPECT_FALSE(matches(R"([^\r\n\p{L}\p{N}])", "\xF0\x90\x97\x80"));
  EXPECT_FALSE(matches(R"(\P{L})", "\xF0\x90\x97\x80"));
  EXPECT_TRUE(matches(R"(\p{N})", "\xF0\x9E\x93\xB0"));
  EXPECT_TRUE(matches(R"(\pN)", "\xF0\x9E\x93\xB0"));
  // Literal text (Split's pattern.String) is not rewritten.
  EXPECT_TRUE(matches(regex_escape(R"(a\s[\p{L}])"), R"(a\s[\p{L}])"));
  EXPECT_FALSE(matches(regex_escape(R"(\s)"), " "));
}

TEST(Utf8, RepairFollowsTheMaximalSubpartRule) {
  // Examples from the Unicode standard's table 3-8 discussion: each maximal subpart -> one U+FFFD.
  const std::string r = "\xEF\xBF\xBD";
  EXPECT_EQ(utf8::repair("a\x80" "b"), "a" + r + "b");
  EXPECT_EQ(utf8::repair("\xE2\x82"), r);                   // truncated 3-byte sequence: one
  EXPECT_EQ(utf8::repair("\xF0\x80\x80"), r + r + r);       // F0 80 is never valid: three
  EXPECT_EQ(utf8::repair("\xED\xA0\x80"), r + r + r);       // surrogate
  EXPECT_EQ(utf8::repair("\xC0\xAF"), r + r);               // overlong
  EXPECT_EQ(utf8::repair("\xF4\x90\x80\x80"), r + r + r + r);
  EXPECT_EQ(utf8::repair("ok \xF0\x9F\x91\x8D"), "ok \xF0\x9F\x91\x8D");
}

// ---- parity with HF tokenizers on the real files of nine model families ----

using test::TokenizerReference;

// Byte-level vocabulary without a normalizer: every token covers exactly the input bytes it stands for.
bool offsets_are_exact_bytes(const json& document) {
  const json& normalizer = document.value("normalizer", json());
  const bool no_normalizer =
      normalizer.is_null() || (normalizer.value("type", "") == "Sequence" && normalizer.value("normalizers", json::array()).empty());
  return no_normalizer && document.value("decoder", json::object()).value("type", "") == "ByteLevel";
}

// The raw bytes a byte-level vocabulary entry stands for (a token may hold part of a character).
std::string byte_level_bytes(const std::string& token) {
  std::string bytes;
  for (std::size_t pos = 0; pos < token.size();) {
    std::size_t length = utf8::valid_sequence_length(token, pos);
    int b = utf8::char_to_byte(utf8::decode_at(token, pos, length));
    bytes += b >= 0 ? std::string(1, static_cast<char>(b)) : token.substr(pos, length);
    pos += length;
  }
  return bytes;
}

// Where two id lists first differ, and both around it, for a failure message.
std::string describe_difference(const Ids& got, const Ids& want) {
  std::size_t k = 0;
  while (k < got.size() && k < want.size() && got[k] == want[k]) ++k;
  const std::size_t from = k >= 3 ? k - 3 : 0;
  auto window = [&](const Ids& ids) { return json(Ids(ids.begin() + std::min(from, ids.size()), ids.begin() + std::min(k + 4, ids.size()))).dump(); };
  return fmt::format("first difference at token {} of {} (qtune) / {} (HF); from token {}: qtune {} HF {}", k, got.size(), want.size(), from,
                     window(got), window(want));
}

// Counts failures of one kind and reports the first few in full.
struct Mismatches {
  std::string what;
  int count = 0;
  void add(const std::string& message) {
    if (++count <= 5) ADD_FAILURE() << what << ": " << message;
  }
};

class TokenizerParity : public ::testing::TestWithParam<std::string> {};

TEST_P(TokenizerParity, IdsAndDecodeMatchHfTokenizers) {
  QTUNE_REQUIRE_REFERENCE(ref, test::load_tokenizer_reference, GetParam());
  const auto start = std::chrono::steady_clock::now();
  auto tok = load_hf_tokenizer(ref->tokenizer_json);
  // The reference encodes the committed corpus as it is now.
  const std::vector<std::string> corpus = test::corpus_texts();
  ASSERT_GE(corpus.size(), 5000u);
  ASSERT_EQ(ref->lines.size(), corpus.size()) << "the reference was made from another corpus: rerun Reference.HfTokenizers";
  for (std::size_t k = 0; k < corpus.size(); ++k) ASSERT_EQ(ref->lines[k].at("text").get<std::string>(), corpus[k]) << "line " << k + 1;
  // The files are the ones the fixture was made from (a different revision shows here first).
  EXPECT_EQ(tok->vocab_size(), ref->meta.at("vocab_size").get<TokenId>()) << "compare the sha256 in the .meta.json";
  const bool exact_offsets = offsets_are_exact_bytes(ref->document);
  const bool cleans_up = ref->meta.value("clean_up_tokenization_spaces", false);
  Mismatches ids_differ{"ids"}, special_differ{"ids_with_special"}, decode_differs{"decode"}, skip_differs{"decode(skip_special)"},
      offsets_wrong{"offsets"}, roundtrip_fails{"decode(encode(text, parse_special=false))"};
  for (const auto& line : ref->lines) {
    const std::string text = line.at("text");
    const Ids ids = tok->encode(text), want = line.at("ids").get<Ids>();
    if (ids != want) ids_differ.add(json(text).dump() + "\n " + describe_difference(ids, want));
    const Ids with_special = tok->encode_with_special_tokens(text), want_special = line.at("ids_with_special").get<Ids>();
    if (with_special != want_special) special_differ.add(json(text).dump() + "\n " + describe_difference(with_special, want_special));

    // The library's decoder output. transformers' `decoded` would also clean up spaces before punctuation
    // where tokenizer_config.json asks for it (llama3, llama3_1); transformers 5 skips that for BPE
    // vocabularies and qtune never does it, so `decoded` is compared only where no clean-up is asked for.
    const std::string decoded = tok->decode(want);
    if (decoded != line.at("decoded_no_cleanup").get<std::string>())
      decode_differs.add(json(text).dump() + " qtune " + json(decoded).dump() + " HF " + line.at("decoded_no_cleanup").dump());
    if (!cleans_up) EXPECT_EQ(decoded, line.at("decoded").get<std::string>()) << json(text).dump();
    const std::string skipped = tok->decode(want, true);
    if (skipped != line.at("decoded_skip_special").get<std::string>())
      skip_differs.add(json(text).dump() + " qtune " + json(skipped).dump() + " HF " + line.at("decoded_skip_special").dump());

    // Offsets: same ids, non-decreasing, inside the text; for byte-level vocabularies without a normalizer
    // each token's span of the input is exactly the bytes it stands for.
    Encoding with_offsets = tok->encode_with_offsets(text);
    EXPECT_EQ(with_offsets.ids, ids) << json(text).dump();
    ASSERT_EQ(with_offsets.offsets.size(), ids.size());
    for (std::size_t k = 0; k < ids.size(); ++k) {
      EXPECT_LE(with_offsets.offsets[k], text.size());
      if (k > 0) EXPECT_LE(with_offsets.offsets[k - 1], with_offsets.offsets[k]);
      if (!exact_offsets || tok->is_special(ids[k])) continue;
      std::size_t end = k + 1 < ids.size() ? with_offsets.offsets[k + 1] : text.size();
      std::string piece = text.substr(with_offsets.offsets[k], end - with_offsets.offsets[k]);
      const std::string token = tok->id_to_token(ids[k]);
      if (piece != byte_level_bytes(token) && piece != token) offsets_wrong.add("token " + std::to_string(k) + " of " + json(text).dump());
    }
    // Special tokens treated as text come back unchanged wherever the reference's own decode gives the
    // text back (it does not where a normalizer rewrites text, e.g. NFC, or "▁" stands for a space).
    if (line.at("decoded_no_cleanup").get<std::string>() == text && tok->decode(tok->encode(text, false)) != text)
      roundtrip_fails.add(json(text).dump() + " -> " + json(tok->decode(tok->encode(text, false))).dump());
  }
  for (const Mismatches* m : {&ids_differ, &special_differ, &decode_differs, &skip_differs, &offsets_wrong, &roundtrip_fails})
    EXPECT_EQ(m->count, 0) << GetParam() << ": " << m->what << " differ on " << m->count << " of " << ref->lines.size() << " lines";
  std::printf("[tokenizer parity] %s: %zu strings; mismatches: ids %d, ids_with_special %d, decode %d, decode(skip_special) %d, "
              "offsets %d, round trip %d; %.2f s\n",
              GetParam().c_str(), ref->lines.size(), ids_differ.count, special_differ.count, decode_differs.count, skip_differs.count,
              offsets_wrong.count, roundtrip_fails.count, test::seconds_since(start));
}

INSTANTIATE_TEST_SUITE_P(RealFiles, TokenizerParity, ::testing::ValuesIn(test::tokenizer_families()));

// True when the tokenizer.json rewrites text with a Unicode normalization form (Qwen: NFC).
bool normalizes_unicode(const json& document) { return document.value("normalizer", json()).dump().find("\"NF") != std::string::npos; }

// True when spaces become "▁" (U+2581) before BPE, so a literal "▁" in the text decodes to a space.
bool spaces_become_metaspace(const json& document) {
  return document.value("normalizer", json()).dump().find("\xE2\x96\x81") != std::string::npos;
}

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (std::size_t pos = text.find(from); pos != std::string::npos; pos = text.find(from, pos + to.size())) text.replace(pos, from.size(), to);
  return text;
}

// decode(encode(x)) == x for random UTF-8: code points from every plane, combining marks, whitespace
// and control characters, and fragments of special tokens. Families with a Unicode normalizer (Qwen's
// NFC) are left out: composed output is their documented behaviour, checked line by line by the parity
// test; for the "▁" families a literal "▁" is expected back as a space, as HF decodes it.
TEST(TokenizerRoundTrip, RandomUtf8ComesBackUnchanged) {
  int families = 0;
  for (const std::string& name : test::tokenizer_families()) {
    const std::string dir = test::tokenizer_dir(name);
    if (dir.empty()) {
      if (test::reference_required()) ADD_FAILURE() << "tokenizer files of " << name << " missing under " << test::tokenizers_root();
      continue;
    }
    std::ifstream in(dir + "/tokenizer.json");
    const json document = json::parse(in);
    if (normalizes_unicode(document)) continue;
    ++families;
    const bool metaspace = spaces_become_metaspace(document);
    auto tok = load_hf_tokenizer(dir + "/tokenizer.json");
    uint64_t state = 12345;
    auto next = [&] {  // xorshift64: a fixed, portable sequence
      state ^= state << 13, state ^= state >> 7, state ^= state << 17;
      return state;
    };
    const char* fragments[] = {"<|", "|>", "<s>", "</s", "<|eot_id|>", "  ", "\n\n", "\t", "\r\n", "\xC2\x85", "\xEF\xBB\xBF", "<start_of_turn>"};
    int failures = 0;
    for (int i = 0; i < 2000; ++i) {
      std::string text;
      const int length = static_cast<int>(next() % 40);
      for (int k = 0; k < length; ++k) {
        const uint64_t kind = next() % 10;
        char32_t cp;
        if (kind < 3) cp = 0x20 + next() % 0x5F;            // ASCII
        else if (kind < 5) cp = 0x80 + next() % 0x780;      // Latin, Greek, Cyrillic, combining marks
        else if (kind < 7) cp = 0x800 + next() % 0xD000;    // BMP incl. CJK (below the surrogates)
        else if (kind < 8) cp = 0x10000 + next() % 0x10000; // emoji plane
        else if (kind < 9) cp = next() % 0x20;              // control characters
        else {
          text += fragments[next() % (sizeof fragments / sizeof *fragments)];
          continue;
        }
        utf8::append(text, cp);
      }
      const std::string expected = metaspace ? replace_all(text, "\xE2\x96\x81", " ") : text;
      const std::string got = tok->decode(tok->encode(text, false));
      if (got != expected && ++failures <= 5) ADD_FAILURE() << name << " " << json(text).dump() << " -> " << json(got).dump();
    }
    EXPECT_EQ(failures, 0) << name << ": of 2000 random strings";
  }
  if (families == 0 && !test::reference_required()) GTEST_SKIP() << "no tokenizer files under " << test::tokenizers_root();
}

}  // namespace
}  // namespace qtune
