// qtune generate --model DIR [--adapter DIR] (--prompt TEXT | --prompts FILE.jsonl) [--chat] ...: text from
// a base model, a base + adapter (no merge needed) or a merged model. With --prompts, every line's
// completion is printed as JSON and, where the line has "expected", exact-match accuracy is reported.
#include <filesystem>
#include <fstream>
#include <iostream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "adapters/peft_format.h"
#include "core/error.h"
#include "data/chat_template.h"
#include "data/tokenizer_config.h"
#include "models/model_loader.h"
#include "trainer/commands.h"
#include "trainer/generation.h"
#include "trainer/train_config.h"

namespace qtune {
namespace {

namespace fs = std::filesystem;

struct GenerateArgs {
  std::string model, adapter, prompt, prompts, chat_template = "tokenizer_default", dtype;
  bool chat = false, load_in_4bit = false;
  GenerationOptions generation;
};

std::string trim(const std::string& s) {
  const auto begin = s.find_first_not_of(" \t\r\n");
  return begin == std::string::npos ? "" : s.substr(begin, s.find_last_not_of(" \t\r\n") - begin + 1);
}

}  // namespace

Command add_generate_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("generate", "Generate text with a model (and optionally a LoRA adapter)");
  auto a = std::make_shared<GenerateArgs>();
  cmd->add_option("--model", a->model, "the (base or merged) model folder")->required();
  cmd->add_option("--adapter", a->adapter, "a LoRA adapter folder to apply (qtune train's output_dir)");
  cmd->add_option("--prompt", a->prompt, "the prompt text");
  cmd->add_option("--prompts", a->prompts, "a JSONL file of {\"prompt\": ..., \"expected\": ...} lines");
  cmd->add_flag("--chat", a->chat, "wrap each prompt in the chat template as a user message");
  cmd->add_option("--chat-template", a->chat_template, "template name for --chat (default: the tokenizer's own)");
  cmd->add_option("--max-new-tokens", a->generation.max_new_tokens, "default 64");
  cmd->add_option("--temperature", a->generation.temperature, "0 (default) is greedy");
  cmd->add_option("--top-p", a->generation.top_p, "nucleus sampling mass (default 1)");
  cmd->add_option("--seed", a->generation.seed, "sampling seed (default 0)");
  cmd->add_option("--dtype", a->dtype, "compute dtype: f32, bf16, f16 (default: the adapter's training dtype, else f32)");
  cmd->add_flag("--load-in-4bit", a->load_in_4bit, "quantize the base to NF4 (with double quantization) while loading, as training did");
  return [a]() {
    if (a->prompt.empty() == a->prompts.empty()) input_error("give exactly one of --prompt TEXT and --prompts FILE");
    // An adapter runs on the base as it trained: the same load-time 4-bit weights and compute dtype.
    const TrainingBase trained = a->adapter.empty() ? TrainingBase{} : training_base(a->adapter);
    LoadOptions load;
    load.dtype = !a->dtype.empty() ? parse_dtype(a->dtype, "--dtype") : trained.compute_dtype.value_or(at::kFloat);
    load.quantize = a->load_in_4bit ? std::optional<QuantizeOptions>(QuantizeOptions{}) : trained.quantize;
    CausalLM model = load_causal_lm(a->model, load);
    if (!a->adapter.empty()) load_peft_adapter(model, a->adapter);
    // The tokenizer travels with the adapter (qtune train copies it) or sits with the model.
    const std::string tokenizer_dir = !a->adapter.empty() && fs::exists(fs::path(a->adapter) / "tokenizer_config.json") ? a->adapter : a->model;
    auto tokenizer = load_tokenizer(tokenizer_dir);
    const TokenizerConfig tokenizer_config = TokenizerConfig::load(tokenizer_dir);
    GenerationOptions generation = a->generation;
    for (int64_t id : model->config().eos_token_ids) generation.stop_ids.push_back(static_cast<TokenId>(id));
    if (auto eos = tokenizer->token_to_id(tokenizer_config.eos_token); eos && !tokenizer_config.eos_token.empty()) generation.stop_ids.push_back(*eos);
    std::unique_ptr<ChatTemplate> chat;
    if (a->chat) {
      const std::string name = a->chat_template == "tokenizer_default" ? recognize_chat_template(tokenizer_config.chat_template, tokenizer_config.source)
                                                                       : a->chat_template;
      chat = make_chat_template(name, {tokenizer_config.bos_token, tokenizer_config.eos_token});
      // The template's end-of-turn token (e.g. <|eot_id|>) ends a reply too.
      for (const auto& s : chat->render({{"user", "x", {}, {}}, {"assistant", "y", {}, {}}}, false))
        if (s.kind == SegmentKind::EndOfTurn)
          if (auto ids = tokenizer->encode(trim(s.text)); ids.size() == 1) generation.stop_ids.push_back(ids[0]);
    }
    auto complete = [&](const std::string& prompt) {
      std::vector<TokenId> ids = chat ? tokenizer->encode(join_segments(chat->render({{"user", prompt, {}, {}}}, true)))
                                      : tokenizer->encode_with_special_tokens(prompt);
      return tokenizer->decode(generate(model, ids, generation), true);
    };
    if (!a->prompt.empty()) {
      std::cout << complete(a->prompt) << std::endl;
      return 0;
    }
    std::ifstream in(a->prompts);
    if (!in) input_error("{}: cannot read the prompts file", a->prompts);
    int64_t line_number = 0, scored = 0, matched = 0;
    for (std::string line; std::getline(in, line);) {
      ++line_number;
      if (trim(line).empty()) continue;
      nlohmann::json entry;
      try {
        entry = nlohmann::json::parse(line);
      } catch (const nlohmann::json::exception&) {
        input_error("{}:{}: malformed JSON", a->prompts, line_number);
      }
      if (!entry.is_object() || !entry.contains("prompt") || !entry["prompt"].is_string())
        input_error("{}:{}: each line needs a string \"prompt\"", a->prompts, line_number);
      const std::string completion = complete(entry["prompt"].get<std::string>());
      nlohmann::json out = {{"prompt", entry["prompt"]}, {"completion", completion}};
      if (entry.contains("expected") && entry["expected"].is_string()) {
        const bool match = trim(completion) == trim(entry["expected"].get<std::string>());
        out["expected"] = entry["expected"];
        out["match"] = match;
        ++scored;
        matched += match;
      }
      std::cout << out.dump() << "\n";
    }
    if (scored > 0) std::cout << fmt::format("exact match: {}/{} ({:.1f}%)\n", matched, scored, 100.0 * matched / scored);
    return 0;
  };
}

}  // namespace qtune
