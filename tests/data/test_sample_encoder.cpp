// Masking: which tokens of a templated conversation are trained, checked on the real Llama 3 and
// Mistral tokenizers: the ids equal a plain tokenization of the rendered text, and the trained tokens
// decode to exactly the assistant contents and their end-of-turn markers.
#include <gtest/gtest.h>

#include "data/hf_tokenizer.h"
#include "data/sample_encoder.h"
#include "tests/support/files.h"

namespace qtune {
namespace {

// The real tokenizer of a family (test::tokenizer_dir), or nullptr when its files are not there.
std::unique_ptr<Tokenizer> reference_tokenizer(const std::string& family) {
  std::string dir = test::tokenizer_dir(family);
  if (dir.empty()) return nullptr;
  return load_hf_tokenizer(dir + "/tokenizer.json");
}

#define REQUIRE_TOKENIZER(tok, family)                                                                                   \
  auto tok = reference_tokenizer(family);                                                                                \
  if (!tok) {                                                                                                            \
    if (test::reference_required()) FAIL() << family << " tokenizer missing under " << test::tokenizers_root() << " (set QTUNE_TOKENIZERS)"; \
    GTEST_SKIP() << family << " tokenizer not found under " << test::tokenizers_root();                                  \
  }

// The decoded runs of consecutive trained tokens.
std::vector<std::string> trained_spans(const Tokenizer& tok, const TokenizedSample& s) {
  std::vector<std::string> spans;
  std::vector<TokenId> run;
  for (std::size_t i = 0; i <= s.labels.size(); ++i) {
    if (i < s.labels.size() && s.labels[i] != kIgnoreLabel) {
      EXPECT_EQ(s.labels[i], s.input_ids[i]);
      run.push_back(s.labels[i]);
    } else if (!run.empty()) {
      spans.push_back(tok.decode(run));
      run.clear();
    }
  }
  return spans;
}

std::vector<Message> conversation() {
  return {{"system", "You are terse.", {}, {}},
          {"user", "Capital of France?", {}, {}},
          {"assistant", " Paris. ", {}, {}},
          {"user", "And of Japan?", {}, {}},
          {"assistant", "Tokyo.", {}, {}}};
}

using Spans = std::vector<std::string>;

TEST(SampleEncoder, Llama3TrainsAssistantTurnsAndTheirEot) {
  REQUIRE_TOKENIZER(tok, "llama3");
  auto chat = make_chat_template("llama3", {"<|begin_of_text|>", "<|eot_id|>"});
  SampleEncoder encoder(*tok, *chat, MaskingOptions{}, 128000, 128009, true);
  TokenizedSample s = encoder.encode(Conversation{conversation()});
  // Same ids as tokenizing the whole rendered conversation.
  EXPECT_EQ(s.input_ids, tok->encode(join_segments(chat->render(conversation(), false))));
  EXPECT_EQ(s.input_ids.front(), 128000);  // the template writes BOS; no second one
  EXPECT_NE(s.input_ids[1], 128000);
  EXPECT_EQ(trained_spans(*tok, s), Spans({"Paris.<|eot_id|>", "Tokyo.<|eot_id|>"}));
}

TEST(SampleEncoder, MaskingOptions) {
  REQUIRE_TOKENIZER(tok, "llama3");
  auto chat = make_chat_template("llama3", {"<|begin_of_text|>", "<|eot_id|>"});
  auto encode = [&](MaskingOptions options) { return SampleEncoder(*tok, *chat, options, 128000, 128009, true).encode(Conversation{conversation()}); };

  TokenizedSample all = encode({true, {"assistant"}, TrainOnEos::Turn});
  EXPECT_EQ(all.labels, all.input_ids);
  EXPECT_EQ(trained_spans(*tok, encode({false, {"assistant"}, TrainOnEos::None})), Spans({"Paris.", "Tokyo."}));
  EXPECT_EQ(trained_spans(*tok, encode({false, {"assistant"}, TrainOnEos::Last})), Spans({"Paris.", "Tokyo.<|eot_id|>"}));
  EXPECT_EQ(trained_spans(*tok, encode({false, {"user", "assistant"}, TrainOnEos::Turn})),
            Spans({"Capital of France?<|eot_id|>", "Paris.<|eot_id|>", "And of Japan?<|eot_id|>", "Tokyo.<|eot_id|>"}));
  // A per-message override beats roles_to_train.
  auto messages = conversation();
  messages[2].train = false;
  auto s = SampleEncoder(*tok, *chat, MaskingOptions{}, 128000, 128009, true).encode(Conversation{messages});
  EXPECT_EQ(trained_spans(*tok, s), Spans({"Tokyo.<|eot_id|>"}));
}

TEST(SampleEncoder, ChatmlTrainsImEndButNotTheNewlineAfterIt) {
  REQUIRE_TOKENIZER(tok, "qwen3");
  auto chat = make_chat_template("chatml", {"", "<|im_end|>"});
  SampleEncoder encoder(*tok, *chat, MaskingOptions{}, -1, 151645, false);
  // Content that starts with newlines merges with the template's own "\n" in whole-text tokenization.
  std::vector<Message> messages = {{"user", "hi", {}, {}}, {"assistant", "\n\nanswer", {}, {}}};
  TokenizedSample s = encoder.encode(Conversation{messages});
  EXPECT_EQ(s.input_ids, tok->encode(join_segments(chat->render(messages, false))));
  // The token that merges the template's "\n" with the content's "\n\n" is trained (it overlaps the answer).
  EXPECT_EQ(trained_spans(*tok, s), Spans({"\n\n\nanswer<|im_end|>"}));
}

TEST(SampleEncoder, MistralSentencePieceStyleAnswerTokensAreTrained) {
  REQUIRE_TOKENIZER(tok, "llama2");  // Mistral's vocabulary (see fixtures README)
  for (const std::string name : {"mistral", "llama2"}) {
    auto chat = make_chat_template(name, {"<s>", "</s>"});
    SampleEncoder encoder(*tok, *chat, MaskingOptions{}, 1, 2, true);
    std::vector<Message> messages = {{"user", "Hi", {}, {}}, {"assistant", "Hello there", {}, {}}};
    TokenizedSample s = encoder.encode(Conversation{messages});
    EXPECT_EQ(s.input_ids, tok->encode(join_segments(chat->render(messages, false)))) << name;
    auto spans = trained_spans(*tok, s);
    ASSERT_EQ(spans.size(), 1u) << name;
    // The first answer token carries the space before it ("▁Hello"): it is trained, and so is </s>.
    EXPECT_NE(spans[0].find("Hello there"), std::string::npos) << name << ": " << spans[0];
    EXPECT_EQ(spans[0].substr(spans[0].size() - 4), "</s>") << name;
    EXPECT_EQ(s.input_ids.front(), 1) << name;
    EXPECT_NE(s.input_ids[1], 1) << name;
  }
}

TEST(SampleEncoder, PreferencePairsTrainOnlyTheAnswers) {
  REQUIRE_TOKENIZER(tok, "qwen3");
  auto chat = make_chat_template("chatml", {"", "<|im_end|>"});
  SampleEncoder encoder(*tok, *chat, MaskingOptions{true, {"assistant"}, TrainOnEos::Turn}, -1, 151645, false);
  PreferencePair pair{{{"user", "2+2?", {}, {}}}, {{"assistant", "4", {}, {}}}, {{"assistant", "5", {}, {}}}};
  TokenizedPair p = encoder.encode(pair);
  EXPECT_EQ(trained_spans(*tok, p.chosen), Spans({"4<|im_end|>"}));  // train_on_inputs does not apply to the prompt
  EXPECT_EQ(trained_spans(*tok, p.rejected), Spans({"5<|im_end|>"}));
}

TEST(SampleEncoder, CompletionTextIsTrainedWholeAndEndsWithEos) {
  REQUIRE_TOKENIZER(tok, "llama2");
  auto chat = make_chat_template("mistral", {"<s>", "</s>"});
  SampleEncoder encoder(*tok, *chat, MaskingOptions{}, 1, 2, true);
  TokenizedSample s = encoder.encode(CompletionText{"Once upon a time <s> there"});
  EXPECT_EQ(s.input_ids.front(), 1);
  EXPECT_EQ(s.input_ids.back(), 2);
  EXPECT_EQ(s.labels.front(), kIgnoreLabel);
  EXPECT_EQ(std::count(s.input_ids.begin(), s.input_ids.end(), 1), 1);  // "<s>" inside raw text stays text
  EXPECT_EQ(tok->decode(std::vector<TokenId>(s.input_ids.begin() + 1, s.input_ids.end() - 1)), "Once upon a time <s> there");
}

}  // namespace
}  // namespace qtune
