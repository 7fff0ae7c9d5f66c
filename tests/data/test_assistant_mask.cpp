// SFT masking against transformers: for every built-in chat template, the ids and trained-token mask
// qtune's SampleEncoder makes of a conversation (train_on_inputs false, assistant turns and their
// end-of-turn token trained) equal apply_chat_template(..., tokenize=True, return_assistant_tokens_mask=True)
// with the template's {% generation %}-marked twin, on the real tokenizer of its family (references made
// at test time by scripts/make_chat_template_fixtures.py, ctest Reference.HfChatTemplates).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "data/hf_tokenizer.h"
#include "data/sample_encoder.h"
#include "tests/data/hf_reference.h"
#include "tests/support/files.h"

namespace qtune {
namespace {

using json = nlohmann::json;
using Ids = std::vector<TokenId>;

struct MaskCase {
  std::string reference;  // QTUNE_REFERENCE_DIR/chat_templates/<reference>.json
  std::string builtin;    // qtune's template
  std::string family;     // whose tokenizer renders it
  bool always_generation_prompt;  // the first Llama 3 template appends the assistant header to every conversation
};

// gtest prints the reference's name instead of the struct's bytes.
void PrintTo(const MaskCase& c, std::ostream* os) { *os << c.reference; }

std::string text_of(const json& value) { return value.is_string() ? value.get<std::string>() : std::string(); }

class SampleEncoderParity : public ::testing::TestWithParam<MaskCase> {};

TEST_P(SampleEncoderParity, IdsAndMaskMatchTransformersAssistantMask) {
  const MaskCase& param = GetParam();
  QTUNE_REQUIRE_REFERENCE(reference, test::load_chat_reference, param.reference);
  const std::string dir = test::tokenizer_dir(param.family);
  ASSERT_FALSE(dir.empty()) << param.family << " tokenizer missing under " << test::tokenizers_root();
  const auto start = std::chrono::steady_clock::now();
  auto tok = load_hf_tokenizer(dir + "/tokenizer.json");
  auto chat = make_chat_template(param.builtin, {text_of((*reference)["bos_token"]), text_of((*reference)["eos_token"])});
  const TokenId bos_id = (*reference)["bos_id"].is_number() ? (*reference)["bos_id"].get<TokenId>() : -1;
  SampleEncoder encoder(*tok, *chat, MaskingOptions{}, bos_id, -1, /*add_bos=*/true);
  // The header the first Llama 3 template writes after the last turn (see always_generation_prompt).
  const Ids trailing_header = param.always_generation_prompt ? tok->encode("<|start_header_id|>assistant<|end_header_id|>\n\n") : Ids();

  const json& cases = reference->at("masks");
  ASSERT_GE(cases.size(), 10u);
  int id_mismatches = 0, mask_mismatches = 0, bos_prepended = 0, trained = 0;
  std::size_t tokens = 0;
  for (const auto& c : cases) {
    const std::string name = c.at("name");
    Ids want_ids = c.at("input_ids").get<Ids>();
    std::vector<int> want_mask = c.at("assistant_masks").get<std::vector<int>>();
    // The generation marks changed nothing: the marked template gives the original template's ids.
    EXPECT_EQ(want_ids, c.at("unmarked_ids").get<Ids>()) << name;
    // Principled difference 1: a training sample ends with its last turn; the first Llama 3 template
    // appends an untrained assistant header even without add_generation_prompt, qtune does not.
    if (!trailing_header.empty()) {
      ASSERT_GE(want_ids.size(), trailing_header.size()) << name;
      ASSERT_TRUE(std::equal(trailing_header.begin(), trailing_header.end(), want_ids.end() - trailing_header.size())) << name;
      for (std::size_t k = want_ids.size() - trailing_header.size(); k < want_ids.size(); ++k) EXPECT_EQ(want_mask[k], 0) << name;
      want_ids.resize(want_ids.size() - trailing_header.size());
      want_mask.resize(want_ids.size());
    }
    TokenizedSample sample = encoder.encode(Conversation{test::to_messages(c.at("messages"))});
    Ids ids = sample.input_ids;
    std::vector<int> mask;
    for (TokenId label : sample.labels) mask.push_back(label != kIgnoreLabel);
    // Principled difference 2: a template that writes no BOS (alpaca on llama2's vocabulary) gets the BOS the
    // model's tokenizer adds from qtune, untrained; apply_chat_template tokenizes the text alone.
    if (!chat->writes_bos() && bos_id >= 0 && !ids.empty() && ids[0] == bos_id && (want_ids.empty() || want_ids[0] != bos_id)) {
      EXPECT_EQ(mask[0], 0) << name;
      ids.erase(ids.begin());
      mask.erase(mask.begin());
      ++bos_prepended;
    }
    tokens += want_ids.size();
    trained += static_cast<int>(std::count(want_mask.begin(), want_mask.end(), 1));
    if (ids != want_ids) {
      if (++id_mismatches <= 5) ADD_FAILURE() << param.reference << " " << name << ": ids\n qtune " << json(ids).dump() << "\n HF    " << json(want_ids).dump();
      continue;
    }
    for (std::size_t k = 0; k < ids.size(); ++k) {
      if (mask[k] == want_mask[k]) continue;
      if (++mask_mismatches <= 5)
        ADD_FAILURE() << param.reference << " " << name << ": token " << k << " (" << json(tok->decode({ids[k]})).dump() << ") qtune trains "
                      << mask[k] << ", transformers' mask " << want_mask[k];
    }
  }
  EXPECT_EQ(id_mismatches, 0);
  EXPECT_EQ(mask_mismatches, 0);
  std::printf("[assistant mask] %s (%s tokenizer): %zu conversations, %zu tokens, %d trained; mismatches: ids %d, mask %d; "
              "BOS prepended by qtune %d; %.2f s\n",
              param.reference.c_str(), param.family.c_str(), cases.size(), tokens, trained, id_mismatches, mask_mismatches, bos_prepended,
              test::seconds_since(start));
}

INSTANTIATE_TEST_SUITE_P(Builtin, SampleEncoderParity,
                         ::testing::Values(MaskCase{"llama3", "llama3", "llama3", true}, MaskCase{"llama3_1", "llama3", "llama3_1", false},
                                           MaskCase{"qwen3", "qwen3", "qwen3", false}, MaskCase{"qwen2_5", "qwen2_5", "qwen2_5", false},
                                           MaskCase{"chatml", "chatml", "qwen3", false}, MaskCase{"llama2", "llama2", "llama2", false},
                                           MaskCase{"mistral", "mistral", "llama2", false}, MaskCase{"gemma", "gemma", "gemma", false},
                                           MaskCase{"gemma3", "gemma3", "gemma3", false},
                                           MaskCase{"deepseek_v3", "deepseek_v3", "deepseek_v3", false},
                                           MaskCase{"alpaca", "alpaca", "llama2", false}, MaskCase{"phi3", "phi3", "qwen3", false},
                                           MaskCase{"phi3_5", "phi3_5", "qwen3", false}, MaskCase{"phi4", "phi4", "qwen3", false},
                                           MaskCase{"phi4_mini", "phi4_mini", "gptoss", false}),
                         [](const auto& info) { return info.param.reference; });

}  // namespace
}  // namespace qtune
