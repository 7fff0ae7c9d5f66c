// qtune generate --model DIR|FILE.gguf [--adapter DIR] (--prompt TEXT | --prompts FILE.jsonl) [--chat] ...: text from
// a base model, a base + adapter (no merge needed) or a merged model. With --prompts, every line's
// completion is printed as JSON and, where the line has "expected", exact-match accuracy is reported.
#include <fstream>
#include <iostream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/chat_template.h"
#include "data/tokenizer.h"
#include "data/tokenizer_config.h"
#include "trainer/commands.h"
#include "trainer/generation.h"
#include "trainer/inference_model.h"

namespace qtune {
namespace {

struct GenerateArgs {
  InferenceOptions load;
  std::string prompt, prompts, chat_template = "tokenizer_default";
  bool chat = false;
  GenerationOptions generation;
};

std::string trim(const std::string& s) {
  const auto begin = s.find_first_not_of(" \t\r\n");
  return begin == std::string::npos ? "" : s.substr(begin, s.find_last_not_of(" \t\r\n") - begin + 1);
}

// Turns prompts into completions: the loaded tokenizer (load_inference_model picks the adapter's or the
// model's), the chat template with --chat, and the stop tokens (the model's EOS, the tokenizer's, and the
// template's end of turn such as <|eot_id|>).
class Completer {
 public:
  Completer(const GenerateArgs& a, InferenceModel& loaded)
      : model_(loaded.model), generation_(a.generation), tokenizer_(*loaded.tokenizer) {
    const TokenizerConfig& config = loaded.tokenizer_config;
    for (int64_t id : model_->config().eos_token_ids) generation_.stop_ids.push_back(static_cast<TokenId>(id));
    if (auto eos = tokenizer_.token_to_id(config.eos_token); eos && !config.eos_token.empty()) generation_.stop_ids.push_back(*eos);
    if (a.chat) use_chat_template(a.chat_template, config);
  }

  std::string complete(const std::string& prompt) {
    std::vector<TokenId> ids = chat_ ? tokenizer_.encode(join_segments(chat_->render({{"user", prompt, {}, {}}}, true)))
                                     : tokenizer_.encode_with_special_tokens(prompt);
    return tokenizer_.decode(generate(model_, ids, generation_), true);
  }

 private:
  void use_chat_template(const std::string& name, const TokenizerConfig& config) {
    chat_ = make_chat_template(name == "tokenizer_default" ? recognize_chat_template(config.chat_template, config.source) : name,
                               {config.bos_token, config.eos_token});
    for (const auto& s : chat_->render({{"user", "x", {}, {}}, {"assistant", "y", {}, {}}}, false))
      if (s.kind == SegmentKind::EndOfTurn)
        if (auto ids = tokenizer_.encode(trim(s.text)); ids.size() == 1) generation_.stop_ids.push_back(ids[0]);
  }

  CausalLM& model_;
  GenerationOptions generation_;
  const Tokenizer& tokenizer_;
  std::unique_ptr<ChatTemplate> chat_;
};

// --prompts: one JSON line per prompt with its completion, and exact-match accuracy where lines have "expected".
void complete_prompts_file(Completer& completer, const std::string& path) {
  std::ifstream in(path);
  if (!in) input_error("{}: cannot read the prompts file", path);
  int64_t line_number = 0, scored = 0, matched = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_number;
    if (trim(line).empty()) continue;
    nlohmann::json entry;
    try {
      entry = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception&) {
      input_error("{}:{}: malformed JSON", path, line_number);
    }
    if (!entry.is_object() || !entry.contains("prompt") || !entry["prompt"].is_string())
      input_error("{}:{}: each line needs a string \"prompt\"", path, line_number);
    nlohmann::json out = {{"prompt", entry["prompt"]}, {"completion", completer.complete(entry["prompt"].get<std::string>())}};
    if (entry.contains("expected") && entry["expected"].is_string()) {
      const bool match = trim(out["completion"].get<std::string>()) == trim(entry["expected"].get<std::string>());
      out["expected"] = entry["expected"];
      out["match"] = match;
      ++scored;
      matched += match;
    }
    std::cout << out.dump() << "\n";
  }
  if (scored > 0) std::cout << fmt::format("exact match: {}/{} ({:.1f}%)\n", matched, scored, 100.0 * matched / scored);
}

}  // namespace

void add_inference_options(CLI::App* cmd, InferenceOptions& options) {
  cmd->add_option("--model", options.model, "the (base or merged) model folder, or a GGUF file")->required();
  cmd->add_option("--adapter", options.adapter, "a LoRA adapter folder to apply (qtune train's output_dir)");
  cmd->add_option("--dtype", options.dtype, "compute dtype: f32, bf16, f16 (default: the adapter's training dtype, else f32)");
  cmd->add_flag("--load-in-4bit", options.load_in_4bit, "quantize the base to NF4 (with double quantization) while loading, as training did");
}

Command add_generate_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("generate", "Generate text with a model (and optionally a LoRA adapter)");
  auto a = std::make_shared<GenerateArgs>();
  add_inference_options(cmd, a->load);
  cmd->add_option("--prompt", a->prompt, "the prompt text");
  cmd->add_option("--prompts", a->prompts, "a JSONL file of {\"prompt\": ..., \"expected\": ...} lines");
  cmd->add_flag("--chat", a->chat, "wrap each prompt in the chat template as a user message");
  cmd->add_option("--chat-template", a->chat_template, "template name for --chat (default: the tokenizer's own)");
  cmd->add_option("--max-new-tokens", a->generation.max_new_tokens, "default 64");
  cmd->add_option("--temperature", a->generation.temperature, "0 (default) is greedy");
  cmd->add_option("--top-p", a->generation.top_p, "nucleus sampling mass (default 1)");
  cmd->add_option("--seed", a->generation.seed, "sampling seed (default 0)");
  return [a]() {
    if (a->prompt.empty() == a->prompts.empty()) input_error("give exactly one of --prompt TEXT and --prompts FILE");
    InferenceModel loaded = load_inference_model(a->load);
    Completer completer(*a, loaded);
    if (!a->prompt.empty()) std::cout << completer.complete(a->prompt) << std::endl;
    else complete_prompts_file(completer, a->prompts);
    return 0;
  };
}

}  // namespace qtune
