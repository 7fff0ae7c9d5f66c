// Chat templates against their Jinja originals rendered by transformers' apply_chat_template (Jinja2),
// rendered at test time by scripts/make_chat_template_fixtures.py (ctest Reference.HfChatTemplates).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/chat_template.h"
#include "tests/data/hf_reference.h"
#include "tests/support/files.h"

namespace qtune {
namespace {

using json = nlohmann::json;

struct FixtureCase {
  std::string fixture;   // reference file name under QTUNE_REFERENCE_DIR/chat_templates
  std::string builtin;   // qtune template checked against it
  bool always_generation_prompt;  // the original Llama 3 template appends the assistant header unconditionally
};

void PrintTo(const FixtureCase& c, std::ostream* os) { *os << c.fixture; }

class ChatTemplateParity : public ::testing::TestWithParam<FixtureCase> {};

TEST_P(ChatTemplateParity, RendersExactlyLikeTheJinjaTemplate) {
  const FixtureCase& param = GetParam();
  QTUNE_REQUIRE_REFERENCE(reference, test::load_chat_reference, param.fixture);
  const json& fixture = *reference;
  TemplateTokens tokens{fixture.value("bos_token", json("")).is_string() ? fixture["bos_token"].get<std::string>() : "",
                        fixture.value("eos_token", json("")).is_string() ? fixture["eos_token"].get<std::string>() : ""};
  auto chat = make_chat_template(param.builtin, tokens);
  ASSERT_GE(fixture.at("cases").size(), 6u);
  for (const auto& c : fixture.at("cases")) {
    bool generation_prompt = c.at("add_generation_prompt").get<bool>() || param.always_generation_prompt;
    std::string rendered = join_segments(chat->render(test::to_messages(c.at("messages")), generation_prompt));
    EXPECT_EQ(rendered, c.at("rendered").get<std::string>()) << param.fixture << " case " << c.value("name", "");
  }
  for (const auto& c : fixture.value("rejected", json::array())) {
    EXPECT_THROW(chat->render(test::to_messages(c.at("messages")), c.at("add_generation_prompt").get<bool>()), InputError)
        << param.fixture << " case " << c.value("name", "");
  }
  // The model's own Jinja source is recognized as this template (for a written source with a published twin,
  // the published one: the source a model's tokenizer_config.json holds).
  const std::string model_jinja = fixture.value("published_jinja", fixture.at("jinja").get<std::string>());
  EXPECT_EQ(recognize_chat_template(model_jinja, "tokenizer_config.json"), param.builtin);
}

INSTANTIATE_TEST_SUITE_P(Builtin, ChatTemplateParity,
                         ::testing::Values(FixtureCase{"llama3", "llama3", true}, FixtureCase{"llama3_1", "llama3", false},
                                           FixtureCase{"qwen3", "qwen3", false}, FixtureCase{"qwen2_5", "qwen2_5", false},
                                           FixtureCase{"chatml", "chatml", false}, FixtureCase{"llama2", "llama2", false},
                                           FixtureCase{"mistral", "mistral", false}, FixtureCase{"gemma", "gemma", false},
                                           FixtureCase{"gemma3", "gemma3", false}, FixtureCase{"deepseek_v3", "deepseek_v3", false},
                                           FixtureCase{"alpaca", "alpaca", false}, FixtureCase{"phi3", "phi3", false},
                                           FixtureCase{"phi3_5", "phi3_5", false}, FixtureCase{"phi4", "phi4", false},
                                           FixtureCase{"phi4_mini", "phi4_mini", false}),
                         [](const auto& info) { return info.param.fixture; });

TEST(ChatTemplate, SegmentsMarkAssistantContentAndEndOfTurn) {
  auto chat = make_chat_template("llama3", {"<|begin_of_text|>", "<|eot_id|>"});
  std::vector<Message> messages = {{"system", "Be brief.", {}, {}}, {"user", " Hi ", {}, {}}, {"assistant", "Hello!\n", {}, {}}};
  auto segments = chat->render(messages, false);
  std::string assistant_content, end_of_turn;
  for (const auto& s : segments) {
    if (s.message == 2 && s.kind == SegmentKind::Content) assistant_content += s.text;
    if (s.message == 2 && s.kind == SegmentKind::EndOfTurn) end_of_turn += s.text;
  }
  EXPECT_EQ(assistant_content, "Hello!");  // trimmed, as the template does
  EXPECT_EQ(end_of_turn, "<|eot_id|>");
}

TEST(ChatTemplate, UnknownNamesAndUnrecognizedTemplatesListTheOptions) {
  try {
    make_chat_template("vicuna", {});
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("llama3, llama2, mistral, chatml"), std::string::npos) << e.what();
  }
  EXPECT_THROW(recognize_chat_template("{{ messages }}", "x/tokenizer_config.json"), InputError);
  EXPECT_THROW(recognize_chat_template("", "x/tokenizer_config.json"), InputError);
  // Look-alikes of the Phi formats that render differently: Phi-4 reasoning (a fixed thinking system
  // prompt) and Phi-3 medium (no system role, the assistant tag after every user turn).
  EXPECT_THROW(recognize_chat_template("<|im_start|>system<|im_sep|>Think in <think> </think><|im_end|>{% for m in messages %}", "x"),
               InputError);
  EXPECT_THROW(recognize_chat_template("{{'<|user|>\n' + c + '<|end|>\n<|assistant|>\n'}}{{ c + '<|end|>\n' }}", "x"), InputError);
}

TEST(ChatTemplate, PhiTemplatesRefuseRolesTheyCannotWrite) {
  const std::vector<Message> with_tool = {{"user", "Weather?", {}, {}}, {"assistant", "Looking.", {}, {}}, {"tool", "{}", {}, {}}};
  for (const char* name : {"phi3", "phi3_5", "phi4"}) {
    try {
      make_chat_template(name, {"<s>", "<|endoftext|>"})->render(with_tool, false);
      ADD_FAILURE() << name << " wrote a tool message";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find("message 3 is 'tool'"), std::string::npos) << e.what();
    }
  }
  // Phi-4-mini's template writes any role as <|role|>.
  EXPECT_EQ(join_segments(make_chat_template("phi4_mini", {"", "<|endoftext|>"})->render(with_tool, false)),
            "<|user|>Weather?<|end|><|assistant|>Looking.<|end|><|tool|>{}<|end|><|endoftext|>");
}

}  // namespace
}  // namespace qtune
