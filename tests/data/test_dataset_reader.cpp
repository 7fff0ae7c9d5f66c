// Tests of the dataset readers (alpaca, ShareGPT, OpenAI messages, completion, TRL preference files shaped
// like the public datasets), their error messages, DatasetSpec validation, typo hints.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "core/did_you_mean.h"
#include "core/error.h"
#include "data/dataset_reader.h"
#include "data/dataset_spec.h"
#include "tests/support/files.h"

namespace qtune {
namespace {

using json = nlohmann::json;

// Messages as JSON, so that a mismatch prints readably.
json show(const std::vector<Message>& messages) {
  json out = json::array();
  for (const auto& m : messages) {
    json item = {{"role", m.role}, {"content", m.content}};
    if (m.reasoning) item["reasoning"] = *m.reasoning;
    if (m.train) item["train"] = *m.train;
    out.push_back(item);
  }
  return out;
}

json conversation(const Sample& sample) { return show(std::get<Conversation>(sample.content).messages); }

json pair(const Sample& sample) {
  const auto& p = std::get<PreferencePair>(sample.content);
  return {{"prompt", show(p.prompt)}, {"chosen", show(p.chosen)}, {"rejected", show(p.rejected)}};
}

DatasetSpec spec_for(const std::string& path, const std::string& type, json extra = json::object()) {
  extra["path"] = path;
  extra["type"] = type;
  return DatasetSpec::from_json(extra, "test.yaml: datasets[0]");
}

std::vector<Sample> read(const DatasetSpec& spec) {
  ReadReport report;
  return read_dataset(spec, report);
}

// The InputError message read_dataset throws, or "" when it does not throw.
std::string read_error(const DatasetSpec& spec) {
  try {
    read(spec);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

// ---- formats --------------------------------------------------------------------------------------

TEST(DatasetReader, AlpacaJsonArrayLikeTatsuLabAlpaca) {
  const auto dir = test::temp_dir("alpaca");
  const auto path = dir + "/alpaca_data.json";
  test::write_file(path, R"([
  {
    "instruction": "Give three tips for staying healthy.",
    "input": "",
    "output": "1. Eat a balanced diet.\n2. Exercise regularly.\n3. Get enough sleep."
  },
  {
    "instruction": "Identify the odd one out.",
    "input": "Twitter, Instagram, Telegram",
    "output": "Telegram"
  },
  {"instruction": "Translate to English.", "input": "Bonjour", "output": "Hello", "system": "You are a translator."}
]
)");
  const auto samples = read(spec_for(path, "alpaca"));
  ASSERT_EQ(samples.size(), 3u);
  EXPECT_EQ(conversation(samples[0]),
            json::parse(R"([{"role":"user","content":"Give three tips for staying healthy."},
              {"role":"assistant","content":"1. Eat a balanced diet.\n2. Exercise regularly.\n3. Get enough sleep."}])"));
  EXPECT_EQ(conversation(samples[1]),
            json::parse(R"([{"role":"user","content":"Identify the odd one out.\nTwitter, Instagram, Telegram"},
                           {"role":"assistant","content":"Telegram"}])"));
  EXPECT_EQ(conversation(samples[2]), json::parse(R"([{"role":"system","content":"You are a translator."},
                                                    {"role":"user","content":"Translate to English.\nBonjour"},
                                                    {"role":"assistant","content":"Hello"}])"));
  EXPECT_EQ(samples[0].origin.describe(), path + ":1");
  EXPECT_EQ(samples[2].origin.describe(), path + ":3");  // element index + 1 in arrays
}

TEST(DatasetReader, AlpacaRenamedFieldsInJsonLines) {
  const auto dir = test::temp_dir("alpaca_fields");
  const auto path = dir + "/code.jsonl";
  test::write_file(path, R"({"prompt": "Reverse a list in Python.", "completion": "xs[::-1]"})" "\n");
  const auto samples =
      read(spec_for(path, "alpaca", {{"field_instruction", "prompt"}, {"field_output", "completion"}}));
  ASSERT_EQ(samples.size(), 1u);
  EXPECT_EQ(conversation(samples[0]), json::parse(R"([{"role":"user","content":"Reverse a list in Python."},
                                                    {"role":"assistant","content":"xs[::-1]"}])"));
}

TEST(DatasetReader, ShareGptJsonLinesWithCrlfBlankLinesAndSystemColumn) {
  const auto dir = test::temp_dir("sharegpt");
  const auto path = dir + "/sharegpt.jsonl";
  test::write_file(path,
                   R"({"id": "a1", "conversations": [{"from": "system", "value": "You are helpful."}, {"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello! How can I help?"}]})"
                   "\r\n\r\n   \n"
                   R"({"id": "a2", "system": "Be brief.", "conversations": [{"from": "human", "value": "2+2?"}, {"from": "gpt", "value": "4"}, {"from": "human", "value": "Times 3?"}, {"from": "gpt", "value": "12"}]})"
                   "\r\n");
  const auto samples = read(spec_for(path, "sharegpt"));
  ASSERT_EQ(samples.size(), 2u);
  EXPECT_EQ(conversation(samples[0]), json::parse(R"([{"role":"system","content":"You are helpful."},
                                                    {"role":"user","content":"Hi"},
                                                    {"role":"assistant","content":"Hello! How can I help?"}])"));
  EXPECT_EQ(conversation(samples[1]), json::parse(R"([{"role":"system","content":"Be brief."},
                                                    {"role":"user","content":"2+2?"},{"role":"assistant","content":"4"},
                                                    {"role":"user","content":"Times 3?"},{"role":"assistant","content":"12"}])"));
  EXPECT_EQ(samples[1].origin.describe(), path + ":4");  // blank lines still count
}

TEST(DatasetReader, ShareGptWithMappedRolesAndFields) {
  const auto dir = test::temp_dir("sharegpt_roles");
  const auto path = dir + "/chat.jsonl";
  test::write_file(path, R"({"dialog": [{"speaker": "customer", "text": "Is it open?"}, {"speaker": "agent", "text": "Yes."}]})" "\n");
  const auto samples = read(spec_for(path, "sharegpt",
                                     {{"field_messages", "dialog"},
                                      {"message_property_mappings", {{"role", "speaker"}, {"content", "text"}}},
                                      {"roles", {{"user", {"customer"}}, {"agent", "assistant"}}}}));
  ASSERT_EQ(samples.size(), 1u);
  EXPECT_EQ(conversation(samples[0]),
            json::parse(R"([{"role":"user","content":"Is it open?"},{"role":"assistant","content":"Yes."}])"));
}

TEST(DatasetReader, OpenAiMessagesWithPartsReasoningAndTrainFlags) {
  const auto dir = test::temp_dir("openai");
  const auto path = dir + "/messages.jsonl";
  test::write_file(path,
                   R"({"messages": [{"role": "system", "content": "You are a math tutor."}, {"role": "user", "content": [{"type": "text", "text": "What is "}, {"type": "text", "text": "7*6?"}]}, {"role": "assistant", "content": "42", "reasoning_content": "7*6 = 42.", "train": false}, {"role": "user", "content": "And 6*6?"}, {"role": "assistant", "content": "36", "weight": 1}]})"
                   "\n"
                   R"({"messages": [{"role": "user", "content": "NaN"}, {"role": "assistant", "content": "Not a number.", "weight": 0.0, "reasoning_content": null}]})"
                   "\n");
  const auto samples = read(spec_for(path, "chat_template"));
  ASSERT_EQ(samples.size(), 2u);
  EXPECT_EQ(conversation(samples[0]), json::parse(R"([{"role":"system","content":"You are a math tutor."},
                                                    {"role":"user","content":"What is 7*6?"},
                                                    {"role":"assistant","content":"42","reasoning":"7*6 = 42.","train":false},
                                                    {"role":"user","content":"And 6*6?"},
                                                    {"role":"assistant","content":"36","train":true}])"));
  EXPECT_EQ(conversation(samples[1]), json::parse(R"([{"role":"user","content":"NaN"},
                                                    {"role":"assistant","content":"Not a number.","train":false}])"));
}

TEST(DatasetReader, CompletionText) {
  const auto dir = test::temp_dir("completion");
  const auto path = dir + "/corpus.jsonl";
  test::write_file(path, "{\"text\": \"Once upon a time\\nthere was a \\u00e9l\u00e8ve.\"}\n{\"text\": \"NaN\", \"meta\": 1}\n");
  const auto samples = read(spec_for(path, "completion"));
  ASSERT_EQ(samples.size(), 2u);
  EXPECT_EQ(std::get<CompletionText>(samples[0].content).text, "Once upon a time\nthere was a \u00e9l\u00e8ve.");
  EXPECT_EQ(std::get<CompletionText>(samples[1].content).text, "NaN");

  const auto renamed = dir + "/renamed.jsonl";
  test::write_file(renamed, R"({"content": "def f(): pass"})" "\n");
  EXPECT_EQ(std::get<CompletionText>(read(spec_for(renamed, "completion", {{"field", "content"}}))[0].content).text,
            "def f(): pass");
}

TEST(DatasetReader, PreferenceStandardAndConversationalFormats) {
  const auto dir = test::temp_dir("preference");
  const auto path = dir + "/pairs.jsonl";
  test::write_file(path,
                   // TRL standard format with a system column.
                   R"({"prompt": "The sky is", "chosen": " blue.", "rejected": " green.", "system": "Answer in one word."})" "\n"
                   // TRL conversational, explicit prompt.
                   R"({"prompt": [{"role": "user", "content": "What color is the sky?"}], "chosen": [{"role": "assistant", "content": "It is blue."}], "rejected": [{"role": "assistant", "content": "It is green."}]})" "\n"
                   // TRL conversational, implicit prompt (hh-rlhf style, multi-turn shared prefix).
                   R"({"chosen": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Tell me a joke"}, {"role": "assistant", "content": "Why did the chicken cross the road?"}], "rejected": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Tell me a joke"}, {"role": "assistant", "content": "No."}]})" "\n"
                   // UltraFeedback binarized: prompt string and whole conversations.
                   R"({"prompt": "Name a prime.", "prompt_id": "x", "chosen": [{"role": "user", "content": "Name a prime."}, {"role": "assistant", "content": "7"}], "rejected": [{"role": "user", "content": "Name a prime."}, {"role": "assistant", "content": "8"}], "score_chosen": 9.0})" "\n");
  const auto samples = read(spec_for(path, "preference"));
  ASSERT_EQ(samples.size(), 4u);
  EXPECT_EQ(pair(samples[0]), json::parse(R"({"prompt":[{"role":"system","content":"Answer in one word."},{"role":"user","content":"The sky is"}],
                                            "chosen":[{"role":"assistant","content":" blue."}],
                                            "rejected":[{"role":"assistant","content":" green."}]})"));
  EXPECT_EQ(pair(samples[1]), json::parse(R"({"prompt":[{"role":"user","content":"What color is the sky?"}],
                                            "chosen":[{"role":"assistant","content":"It is blue."}],
                                            "rejected":[{"role":"assistant","content":"It is green."}]})"));
  EXPECT_EQ(pair(samples[2]), json::parse(R"({"prompt":[{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello"},
                                                       {"role":"user","content":"Tell me a joke"}],
                                            "chosen":[{"role":"assistant","content":"Why did the chicken cross the road?"}],
                                            "rejected":[{"role":"assistant","content":"No."}]})"));
  EXPECT_EQ(pair(samples[3]), json::parse(R"({"prompt":[{"role":"user","content":"Name a prime."}],
                                            "chosen":[{"role":"assistant","content":"7"}],
                                            "rejected":[{"role":"assistant","content":"8"}]})"));
}

TEST(DatasetReader, FolderReadsJsonAndJsonlFilesInSortedOrder) {
  const auto dir = test::temp_dir("folder");
  test::write_file(dir + "/b.json", R"([{"text": "from b"}])");
  test::write_file(dir + "/a.jsonl", "{\"text\": \"from a 1\"}\n{\"text\": \"from a 2\"}\n");
  test::write_file(dir + "/notes.txt", "not data");
  test::write_file(dir + "/.hidden.jsonl", "garbage");
  const auto samples = read(spec_for(dir, "completion"));
  ASSERT_EQ(samples.size(), 3u);
  EXPECT_EQ(std::get<CompletionText>(samples[0].content).text, "from a 1");
  EXPECT_EQ(std::get<CompletionText>(samples[2].content).text, "from b");
  EXPECT_EQ(samples[2].origin.describe(), dir + "/b.json:1");
}

// ---- bad input ------------------------------------------------------------------------------------

struct BadCase {
  const char* name;
  const char* type;
  std::string line;               // written as line 2, after a good line
  std::vector<std::string> want;  // substrings of the message
};

std::string good_line(const std::string& type) {
  if (type == "alpaca") return R"({"instruction": "a", "output": "b"})";
  if (type == "completion") return R"({"text": "a"})";
  if (type == "preference") return R"({"prompt": "a", "chosen": "b", "rejected": "c"})";
  if (type == "sharegpt") return R"({"conversations": [{"from": "human", "value": "a"}, {"from": "gpt", "value": "b"}]})";
  return R"({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]})";
}

// `c.line` written after a good line: read_dataset names file:2 and every wanted part, or skips and counts it.
void expect_bad_line(const BadCase& c, const json& extra = json::object()) {
  SCOPED_TRACE(c.name);
  const auto dir = test::temp_dir(c.name);
  const auto path = dir + "/bad.jsonl";
  test::write_file(path, good_line(c.type) + "\n" + c.line + "\n");

  const std::string message = read_error(spec_for(path, c.type, extra));
  EXPECT_NE(message.find(path + ":2: "), std::string::npos) << message;
  for (const auto& want : c.want) EXPECT_NE(message.find(want), std::string::npos) << "want '" << want << "' in: " << message;
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  EXPECT_NE(message.find("skip_bad_lines"), std::string::npos) << message;

  json skipping = extra;
  skipping["skip_bad_lines"] = true;
  ReadReport report;
  const auto samples = read_dataset(spec_for(path, c.type, skipping), report);
  EXPECT_EQ(samples.size(), 1u);
  EXPECT_EQ(report.read, 1u);
  EXPECT_EQ(report.skipped, 1u);
  ASSERT_EQ(report.skip_reasons.size(), 1u);
  EXPECT_NE(report.skip_reasons[0].find(path + ":2: "), std::string::npos) << report.skip_reasons[0];
  EXPECT_NE(report.skip_reasons[0].find(c.want[0]), std::string::npos) << report.skip_reasons[0];
}

TEST(DatasetReader, BadLinesNameFileLineAndTheProblemOrAreSkippedAndCounted) {
  const std::vector<BadCase> cases = {
      {"malformed", "completion", R"({"text": tru})", {"malformed JSON: syntax error while parsing value - invalid literal at column 13;"}},
      {"bare_nan", "completion", R"({"text": NaN})", {"malformed JSON", "column 10"}},
      {"number_overflow", "completion", R"({"text": "a", "score": 1e999})", {"malformed JSON: number overflow"}},
      {"truncated", "completion", R"({"text": "a")", {"malformed JSON", "unexpected end of input"}},
      {"bad_utf8", "completion", "{\"text\": \"caf\xC3\"}", {"invalid UTF-8", "column 14"}},
      {"overlong_utf8", "completion", "{\"text\": \"\xC0\xAF\"}", {"invalid UTF-8", "column 11"}},
      {"not_object", "completion", R"(["a", "b"])", {"expected a JSON object, found array"}},
      {"missing_field", "alpaca", R"({"instruction": "a", "response": "b"})",
       {"missing field 'output'", "instruction, response", "field_output"}},
      {"wrong_type", "alpaca", R"({"instruction": 5, "output": "b"})", {"field 'instruction' must be a string, not number"}},
      {"empty_prompt", "alpaca", R"({"instruction": "", "input": "", "output": "b"})", {"both empty"}},
      {"empty_text", "completion", R"({"text": ""})", {"field 'text' is empty"}},
      {"missing_messages", "chat_template", R"({"conversations": []})", {"missing field 'messages'", "field_messages"}},
      {"messages_not_list", "chat_template", R"({"messages": "hi"})", {"field 'messages' must be a list of messages, not string"}},
      {"empty_conversation", "chat_template", R"({"messages": []})", {"empty conversation"}},
      {"message_not_object", "chat_template", R"({"messages": ["hi"]})", {"messages[0]", "must be a message object"}},
      {"unknown_role", "chat_template",
       R"({"messages": [{"role": "user", "content": "a"}, {"role": "narrator", "content": "b"}]})",
       {"messages[1]", "unknown role 'narrator'", "assistant, bot", "roles:"}},
      {"sharegpt_role_field", "sharegpt", R"({"conversations": [{"role": "user", "content": "a"}]})",
       {"conversations[0]", "no 'from'", "content, role", "message_property_mappings"}},
      {"no_assistant", "chat_template", R"({"messages": [{"role": "user", "content": "a"}]})", {"no assistant message"}},
      {"starts_with_assistant", "sharegpt",
       R"({"conversations": [{"from": "gpt", "value": "a"}, {"from": "human", "value": "b"}]})",
       {"must start with a system or user message", "conversations[0] is assistant"}},
      {"content_null", "chat_template",
       R"({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": null}]})",
       {"field 'messages[1].content' is null"}},
      {"content_number", "chat_template",
       R"({"messages": [{"role": "user", "content": 3}, {"role": "assistant", "content": "b"}]})",
       {"messages[0].content", "not number"}},
      {"image_part", "chat_template",
       R"({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}, {"role": "assistant", "content": "b"}]})",
       {"messages[0].content[0]", "not a text part"}},
      {"tool_calls", "chat_template",
       R"({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": null, "tool_calls": [{"type": "function"}]}]})",
       {"messages[1]", "tool_calls"}},
      {"bad_train", "chat_template",
       R"({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b", "train": "yes"}]})",
       {"messages[1].train", "true or false"}},
      {"bad_weight", "chat_template",
       R"({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b", "weight": 0.5}]})",
       {"messages[1].weight", "0 or 1"}},
      {"missing_rejected", "preference", R"({"prompt": "a", "chosen": "b"})", {"missing field 'rejected'"}},
      {"missing_prompt", "preference", R"({"chosen": "b", "rejected": "c"})", {"missing field 'prompt'"}},
      {"prompt_ends_with_assistant", "preference",
       R"({"prompt": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], "chosen": "c", "rejected": "d"})",
       {"must end with a user message"}},
      {"identical_pair", "preference",
       R"({"chosen": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], "rejected": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]})",
       {"identical"}},
      {"chosen_not_assistant", "preference",
       R"({"prompt": "a", "chosen": [{"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}], "rejected": "d"})",
       {"field 'chosen' must hold only assistant messages"}},
      {"prompt_mismatch", "preference",
       R"({"prompt": "a", "chosen": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "b"}], "rejected": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "c"}]})",
       {"differs"}},
  };
  for (const auto& c : cases) expect_bad_line(c);
}

// A pair only teaches something when both answers exist and differ, whichever way the prompt is given.
TEST(DatasetReader, PreferencePairsWithAnEmptyOrIdenticalAnswerAreBadLines) {
  const std::vector<BadCase> cases = {
      {"empty_chosen_string", "preference", R"({"prompt": "a", "chosen": "", "rejected": "c"})",
       {"field 'chosen' has an empty answer; remove the pair or fill it"}},
      {"empty_rejected_message", "preference",
       R"({"prompt": [{"role": "user", "content": "a"}], "chosen": [{"role": "assistant", "content": "b"}], "rejected": [{"role": "assistant", "content": ""}]})",
       {"field 'rejected' has an empty answer"}},
      {"empty_second_answer_message", "preference",
       R"({"prompt": "a", "chosen": [{"role": "assistant", "content": "b"}, {"role": "assistant", "content": ""}], "rejected": "c"})",
       {"field 'chosen' has an empty answer"}},
      {"empty_after_implicit_prompt", "preference",
       R"({"chosen": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], "rejected": [{"role": "user", "content": "a"}, {"role": "assistant", "content": ""}]})",
       {"field 'rejected' has an empty answer"}},
      {"identical_with_prompt_string", "preference", R"({"prompt": "a", "chosen": "b", "rejected": "b"})",
       {"fields 'chosen' and 'rejected' are identical, so there is no preference to learn"}},
      {"identical_with_prompt_messages", "preference",
       R"({"prompt": [{"role": "user", "content": "a"}], "chosen": [{"role": "assistant", "content": "b", "reasoning_content": "r"}], "rejected": [{"role": "assistant", "content": "b", "reasoning_content": "r"}]})",
       {"fields 'chosen' and 'rejected' are identical"}},
      {"identical_with_prompt_and_whole_conversations", "preference",
       R"({"prompt": "a", "chosen": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], "rejected": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]})",
       {"fields 'chosen' and 'rejected' are identical"}},
  };
  for (const auto& c : cases) expect_bad_line(c);

  // The messages name the configured fields.
  const auto dir = test::temp_dir("renamed_pair_fields");
  const auto path = dir + "/pairs.jsonl";
  const json renamed = {{"field_chosen", "better"}, {"field_rejected", "worse"}};
  test::write_file(path, R"({"prompt": "a", "better": "b", "worse": "b"})" "\n");
  std::string message = read_error(spec_for(path, "preference", renamed));
  EXPECT_NE(message.find(path + ":1: fields 'better' and 'worse' are identical"), std::string::npos) << message;
  test::write_file(path, R"({"prompt": "a", "better": "b", "worse": ""})" "\n");
  message = read_error(spec_for(path, "preference", renamed));
  EXPECT_NE(message.find(path + ":1: field 'worse' has an empty answer"), std::string::npos) << message;
}

TEST(DatasetReader, PreferenceAnswersDifferingOnlyInReasoningAreAPreference) {
  const auto dir = test::temp_dir("reasoning_pair");
  const auto path = dir + "/pairs.jsonl";
  test::write_file(path,
                   R"({"prompt": "a", "chosen": [{"role": "assistant", "content": "b", "reasoning_content": "x"}], "rejected": [{"role": "assistant", "content": "b", "reasoning_content": "y"}]})" "\n");
  EXPECT_EQ(read(spec_for(path, "preference")).size(), 1u);
}

TEST(DatasetReader, BadArrayElementsNameTheElementAndItsLine) {
  const auto dir = test::temp_dir("bad_array");
  const auto path = dir + "/data.json";
  test::write_file(path, "[\n  {\"text\": \"ok\"},\n  {\"text\":\n     nope},\n  {\"no_text\": 1},\n  {\"text\": \"ok, [still] \\\"fine\\\"\"}\n]\n");
  std::string message = read_error(spec_for(path, "completion"));
  EXPECT_NE(message.find(path + ":2 (array element 2, line 3): malformed JSON"), std::string::npos) << message;
  EXPECT_NE(message.find("at line 4, column 7"), std::string::npos) << message;

  ReadReport report;
  const auto samples = read_dataset(spec_for(path, "completion", {{"skip_bad_lines", true}}), report);
  ASSERT_EQ(samples.size(), 2u);
  EXPECT_EQ(std::get<CompletionText>(samples[1].content).text, "ok, [still] \"fine\"");
  EXPECT_EQ(samples[1].origin.line, 4u);
  EXPECT_EQ(report.skipped, 2u);
  EXPECT_NE(report.skip_reasons[1].find(":3 (array element 3, line 5): missing field 'text'"), std::string::npos)
      << report.skip_reasons[1];

  test::write_file(path, "[{\"text\": \"a\"},\n {\"text\": \"b\"");
  message = read_error(spec_for(path, "completion", {{"skip_bad_lines", true}}));
  EXPECT_NE(message.find("not closed"), std::string::npos) << message;
}

TEST(DatasetReader, WholeFileProblems) {
  const auto dir = test::temp_dir("files");
  std::string message = read_error(spec_for(dir + "/missing.jsonl", "completion"));
  EXPECT_NE(message.find(dir + "/missing.jsonl: no such file or folder"), std::string::npos) << message;

  test::write_file(dir + "/data.parquet", "PAR1");
  message = read_error(spec_for(dir + "/data.parquet", "completion"));
  EXPECT_NE(message.find("unsupported file type '.parquet'"), std::string::npos) << message;

  test::write_file(dir + "/empty.jsonl", "\n  \n");
  message = read_error(spec_for(dir + "/empty.jsonl", "completion"));
  EXPECT_NE(message.find(dir + "/empty.jsonl: no samples"), std::string::npos) << message;

  test::write_file(dir + "/empty.json", " [ ] ");
  message = read_error(spec_for(dir + "/empty.json", "completion"));
  EXPECT_NE(message.find("no samples"), std::string::npos) << message;

  test::write_file(dir + "/all_bad.jsonl", "{\"txt\": \"a\"}\n{\"txt\": \"b\"}\n");
  message = read_error(spec_for(dir + "/all_bad.jsonl", "completion", {{"skip_bad_lines", true}}));
  EXPECT_NE(message.find("no samples: all 2 were bad"), std::string::npos) << message;
  EXPECT_NE(message.find("all_bad.jsonl:1: missing field 'text'"), std::string::npos) << message;

  test::write_file(dir + "/pretty.jsonl", "{\n  \"text\": \"a\"\n}\n");
  message = read_error(spec_for(dir + "/pretty.jsonl", "completion"));
  EXPECT_NE(message.find("one JSON value over several lines"), std::string::npos) << message;

  const auto empty_dir = test::temp_dir("empty_dir");
  message = read_error(spec_for(empty_dir, "completion"));
  EXPECT_NE(message.find("holds no .jsonl or .json files"), std::string::npos) << message;

  // A byte order mark is not an error.
  test::write_file(dir + "/bom.jsonl", "\xEF\xBB\xBF{\"text\": \"a\"}\n");
  EXPECT_EQ(read(spec_for(dir + "/bom.jsonl", "completion")).size(), 1u);
}

TEST(DatasetReader, ReportKeepsOnlyTheFirstSkipReasons) {
  const auto dir = test::temp_dir("many_bad");
  const auto path = dir + "/d.jsonl";
  std::string text = "{\"text\": \"good\"}\n";
  for (int i = 0; i < 25; ++i) text += "{\"text\": 1}\n";
  test::write_file(path, text);
  ReadReport report;
  read_dataset(spec_for(path, "completion", {{"skip_bad_lines", true}}), report);
  EXPECT_EQ(report.read, 1u);
  EXPECT_EQ(report.skipped, 25u);
  EXPECT_EQ(report.skip_reasons.size(), ReadReport::kMaxSkipReasons);
  EXPECT_NE(report.skip_reasons[0].find(path + ":2:"), std::string::npos);
}

TEST(DatasetReader, ReadsAHundredThousandLinesQuickly) {
  const auto dir = test::temp_dir("big");
  const auto path = dir + "/big.jsonl";
  std::string text;
  const std::string answer(400, 'x');
  for (int i = 0; i < 100000; ++i)
    text += R"({"messages": [{"role": "system", "content": "You are helpful."}, {"role": "user", "content": "Question )" +
            std::to_string(i) + R"("}, {"role": "assistant", "content": ")" + answer + "\"}]}\n";
  test::write_file(path, text);
  const auto start = std::chrono::steady_clock::now();
  const auto samples = read(spec_for(path, "chat_template"));
  std::filesystem::remove(path);  // 55 MB
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_EQ(samples.size(), 100000u);
  EXPECT_EQ(std::get<Conversation>(samples[99999].content).messages[1].content, "Question 99999");
  std::printf("read 100k lines (%.1f MB) in %.2f s\n", text.size() / 1e6, seconds);
#if defined(NDEBUG) && !defined(__SANITIZE_ADDRESS__)
  EXPECT_LT(seconds, 5.0);  // optimized builds take well under a second
#else
  EXPECT_LT(seconds, 60.0);  // sanitizer or unoptimized builds: only catch pathological slowness
#endif
}

// ---- DatasetSpec ----------------------------------------------------------------------------------

std::string spec_error(const json& entry) {
  try {
    DatasetSpec::from_json(entry, "config.yaml: datasets[1]");
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST(DatasetSpec, DefaultsFollowAxolotl) {
  const auto chat = DatasetSpec::from_json({{"path", "d.jsonl"}, {"type", "chat_template"}}, "w");
  EXPECT_EQ(chat.messages_field(), "messages");
  EXPECT_EQ(chat.message_field("role"), "role");
  EXPECT_EQ(chat.message_field("content"), "content");
  EXPECT_FALSE(chat.skip_bad_lines);
  const auto sharegpt = DatasetSpec::from_json({{"path", "d.jsonl"}, {"type", "sharegpt"}}, "w");
  EXPECT_EQ(sharegpt.messages_field(), "conversations");
  EXPECT_EQ(sharegpt.message_field("role"), "from");
  EXPECT_EQ(sharegpt.message_field("content"), "value");
  for (const char* name : {"human", "user"}) EXPECT_EQ(sharegpt.normalize_role(name), "user");
  for (const char* name : {"gpt", "assistant", "model", "bot"}) EXPECT_EQ(sharegpt.normalize_role(name), "assistant");
  for (const char* name : {"tool", "function", "ipython"}) EXPECT_EQ(sharegpt.normalize_role(name), "tool");
  EXPECT_EQ(sharegpt.normalize_role("system"), "system");
  EXPECT_EQ(sharegpt.normalize_role("narrator"), std::nullopt);
  const auto alpaca = DatasetSpec::from_json({{"path", "d.json"}, {"type", "alpaca"}}, "w");
  EXPECT_EQ(alpaca.field_instruction, "instruction");
  EXPECT_EQ(alpaca.field_input, "input");
  EXPECT_EQ(alpaca.field_output, "output");
  EXPECT_EQ(alpaca.field_system, "system");
  const auto pref = DatasetSpec::from_json({{"path", "d.json"}, {"type", "preference"}}, "w");
  EXPECT_EQ(pref.field_prompt, "prompt");
  EXPECT_EQ(pref.field_chosen, "chosen");
  EXPECT_EQ(pref.field_rejected, "rejected");
  EXPECT_EQ(DatasetSpec::from_json({{"path", "d"}, {"type", "completion"}}, "w").field, "text");
}

TEST(DatasetSpec, ReadsAxolotlKeys) {
  const auto spec = DatasetSpec::from_json(json::parse(R"({
      "path": "data/", "type": "chat_template", "field_messages": "conversations",
      "message_property_mappings": {"role": "from", "content": "value"},
      "roles": {"user": ["human", "customer"], "assistant": "agent", "narrator": "system"},
      "skip_bad_lines": true, "ds_type": "json", "split": "train"})"),
                                           "w");
  EXPECT_EQ(spec.path, "data/");
  EXPECT_EQ(spec.type, DatasetType::chat_template);
  EXPECT_EQ(spec.messages_field(), "conversations");
  EXPECT_EQ(spec.message_field("role"), "from");
  EXPECT_EQ(spec.message_field("content"), "value");
  EXPECT_EQ(spec.normalize_role("customer"), "user");
  EXPECT_EQ(spec.normalize_role("agent"), "assistant");
  EXPECT_EQ(spec.normalize_role("narrator"), "system");
  EXPECT_EQ(spec.normalize_role("gpt"), "assistant");  // built-ins still apply
  EXPECT_TRUE(spec.skip_bad_lines);

  const auto legacy = DatasetSpec::from_json(
      {{"path", "d"}, {"type", "chat_template"}, {"message_field_role", "from"}, {"message_field_content", "value"}}, "w");
  EXPECT_EQ(legacy.message_field("role"), "from");
  EXPECT_EQ(legacy.message_field("content"), "value");
}

TEST(DatasetSpec, RejectsBadEntriesWithHints) {
  std::string message = spec_error({{"path", "d"}, {"type", "chat_template"}, {"feild_messages", "x"}});
  EXPECT_EQ(message, "config.yaml: datasets[1]: unknown key 'feild_messages' (did you mean 'field_messages'?)");
  message = spec_error({{"path", "d"}, {"type", "chat_template"}, {"colour", "x"}});
  EXPECT_NE(message.find("unknown key 'colour'; dataset keys are: path, type"), std::string::npos) << message;
  message = spec_error({{"path", "d"}, {"type", "sharegtp"}});
  EXPECT_NE(message.find("unknown dataset type 'sharegtp' (did you mean 'sharegpt'?)"), std::string::npos) << message;
  message = spec_error({{"type", "alpaca"}});
  EXPECT_NE(message.find("config.yaml: datasets[1]: missing key 'path'"), std::string::npos) << message;
  message = spec_error({{"path", "d"}});
  EXPECT_NE(message.find("missing key 'type' (one of alpaca, sharegpt, chat_template, completion, preference)"),
            std::string::npos)
      << message;
  message = spec_error({{"path", "d"}, {"type", "alpaca"}, {"skip_bad_lines", "yes"}});
  EXPECT_NE(message.find("'skip_bad_lines' must be true or false"), std::string::npos) << message;
  message = spec_error({{"path", "d"}, {"type", "alpaca"}, {"field_output", 3}});
  EXPECT_NE(message.find("key 'field_output' must be a string, not number"), std::string::npos) << message;
  message = spec_error({{"path", "d"}, {"type", "chat_template"}, {"message_property_mappings", {{"rol", "from"}}}});
  EXPECT_NE(message.find("unknown property 'rol' (did you mean 'role'?)"), std::string::npos) << message;
  message = spec_error({{"path", "d"}, {"type", "chat_template"}, {"roles", {{"assistent", {"gpt"}}}}});
  EXPECT_NE(message.find("(did you mean 'assistant'?)"), std::string::npos) << message;
  message = spec_error({{"path", "d"}, {"type", "chat_template"}, {"roles", {{"gpt", "robot"}}}});
  EXPECT_NE(message.find("maps to no known role"), std::string::npos) << message;
  message = spec_error({{"path", "d"}, {"type", "chat_template"}, {"ds_type", "parquet"}});
  EXPECT_NE(message.find("ds_type 'parquet' is not supported"), std::string::npos) << message;
  message = spec_error(json::array());
  EXPECT_NE(message.find("must be a mapping"), std::string::npos) << message;
}

TEST(DatasetDidYouMean, SuggestsCloseNamesOnly) {
  const std::vector<std::string> keys = {"learning_rate", "lora_r", "lora_alpha", "lora_dropout", "sequence_len", "rl"};
  EXPECT_EQ(closest_name("learnign_rate", keys), "learning_rate");
  EXPECT_EQ(closest_name("lora_rr", keys), "lora_r");
  EXPECT_EQ(closest_name("Lora_Alpha", keys), "lora_alpha");
  EXPECT_EQ(closest_name("sequence_length", keys), "sequence_len");
  EXPECT_EQ(closest_name("lr", keys), "rl");
  EXPECT_EQ(closest_name("batch_size", keys), "");
  EXPECT_EQ(closest_name("x", keys), "");
  EXPECT_EQ(closest_name("anything", {}), "");
  EXPECT_EQ(did_you_mean("lora_dropuot", keys), " (did you mean 'lora_dropout'?)");
  EXPECT_EQ(did_you_mean("zzz", keys), "");
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
  EXPECT_EQ(edit_distance("ab", "ba"), 1u);
  EXPECT_EQ(edit_distance("", "abc"), 3u);
}

}  // namespace
}  // namespace qtune
