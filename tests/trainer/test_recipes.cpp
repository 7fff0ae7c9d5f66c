// The recipes in configs/ (every *.yaml but the tiny-* demos) hold what their headers promise. The memory a header
// states is qtune's memory plan for the model's real shape (its config.json in tests/fixtures/model_configs) on the
// stated GPU budget, to the printed rounding, and the plan fits; those shapes are the published models'. And each
// recipe passes `qtune validate` unchanged but for its paths, against a tiny random model of the same architecture
// that carries the real tokenizer files of its family (../shared/fixtures/tokenizers), on tiny data in its datasets'
// formats: its keys, template, tokenizer and dataset types stay valid as qtune changes.
//
// Header lines (one each, in the comment block before the first key):
//   # model:    meta-llama/Llama-3.1-8B-Instruct
//   # hardware: one 24 GB GPU (RTX 3090 / 4090, L4, A10G)
//   # memory:   11.33 GiB on the GPU[, 32.89 GiB in host memory][; the plan turns on offload_base]   ("each GPU" with --nproc)
//   # plan:     tests/fixtures/model_configs/llama3_1_8b_instruct.json, budget 22 GiB (free text)    ("(gpu_memory_limit)" when it sets one)
//   # command:  qtune train configs/NAME.yaml [--nproc N]
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <regex>
#include <stdexcept>

#include "data/dataset_spec.h"
#include "models/architecture.h"
#include "models/transformer.h"
#include "tests/support/test_support.h"
#include "trainer/memory_plan.h"
#include "trainer/train_config.h"
#include "trainer/training_base.h"
#include "trainer/yaml_document.h"

namespace qtune {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const fs::path kSource = QTUNE_SOURCE_DIR;

std::vector<fs::path> recipe_paths() {
  std::vector<fs::path> recipes;
  for (const auto& entry : fs::directory_iterator(kSource / "configs"))
    if (entry.path().extension() == ".yaml" && entry.path().filename().string().rfind("tiny-", 0) != 0) recipes.push_back(entry.path());
  std::sort(recipes.begin(), recipes.end());
  return recipes;
}

// The "# key: value" lines of the comment block that opens a recipe, for the keys of the header.
struct Header {
  std::map<std::string, std::string> fields;
  const std::string& operator[](const std::string& key) const {
    const auto found = fields.find(key);
    if (found == fields.end()) throw std::runtime_error("the header has no '# " + key + ":' line");
    return found->second;
  }
};

Header read_header(const fs::path& recipe) {
  static const std::regex line(R"(# (model|hardware|memory|plan|command):\s+(.*\S)\s*)");
  Header header;
  std::ifstream in(recipe);
  std::smatch m;
  for (std::string text; std::getline(in, text) && text.rfind('#', 0) == 0;)
    if (std::regex_match(text, m, line) && !header.fields.emplace(m[1].str(), m[2].str()).second)
      throw std::runtime_error("two '# " + m[1].str() + ":' lines");
  return header;
}

// Runs `check` on each recipe under its own trace: an exception (a malformed header line, a key qtune refuses) fails
// that recipe, and the others are still checked.
void for_each_recipe(const std::function<void(const fs::path&, const Header&)>& check) {
  for (const fs::path& recipe : recipe_paths()) {
    SCOPED_TRACE(recipe.string());
    try {
      check(recipe, read_header(recipe));
    } catch (const std::exception& e) {
      ADD_FAILURE() << e.what();
    }
  }
}

struct PlanLine {
  fs::path model_config;   // the released config.json, tests/fixtures/model_configs/...
  int64_t budget = 0;      // bytes the plan may use on the GPU
  bool from_gpu_memory_limit = false;
};

PlanLine parse_plan(const std::string& text) {
  static const std::regex form(R"((\S+\.json), budget ([0-9.]+ ?[KMGT]i?B)(?: \((.*)\))?)");
  std::smatch m;
  if (!std::regex_match(text, m, form)) throw std::runtime_error("plan: '" + text + "' is not 'FILE.json, budget SIZE (...)'");
  const std::optional<int64_t> budget = parse_byte_size(m[2]);
  if (!budget) throw std::runtime_error("plan: budget '" + m[2].str() + "' is not a size");
  return {kSource / m[1].str(), *budget, m[3].str() == "gpu_memory_limit"};
}

// Whether a memory line is per GPU of a data-parallel run ("on each GPU"); throws unless it has the header's form.
bool memory_is_per_gpu(const std::string& text) {
  static const std::regex form(R"([0-9.]+ [KMGT]?i?B on (the|each) GPU(?:, [0-9.]+ [KMGT]?i?B in host memory)?(?:; the plan turns on .+)?)");
  std::smatch m;
  if (!std::regex_match(text, m, form))
    throw std::runtime_error("memory: '" + text + "' is not 'SIZE on the GPU[, SIZE in host memory][; the plan turns on A, B]'");
  return m[1] == "each";
}

// What the run's device tells the plan on a GPU (trainer.cpp's plan_training_memory), without measuring rates.
DeviceFacts gpu_facts(const TrainConfig& config, int64_t budget) {
  const torch::Device cuda(torch::kCUDA);
  DeviceFacts facts;
  facts.name = "cuda:0";
  facts.cuda = true;
  facts.budget_bytes = budget;
  facts.budget_source = config.gpu_memory_limit > 0 ? "gpu_memory_limit" : "the GPU's memory";
  facts.compute_bytes = static_cast<int>(c10::elementSize(config.compute_dtype(cuda)));
  facts.fused_attention = fused_attention_available(cuda);
  return facts;
}

std::string memory_line_of(const MemoryPlan& plan, bool each_gpu) {
  std::string line = format_byte_size(static_cast<double>(plan.device_bytes())) + (each_gpu ? " on each GPU" : " on the GPU");
  if (!plan.host.empty()) line += ", " + format_byte_size(static_cast<double>(plan.host_bytes())) + " in host memory";
  if (!plan.turned_on.empty()) line += fmt::format("; the plan turns on {}", fmt::join(plan.turned_on, ", "));
  return line;
}

TEST(Recipes, EveryRecipeHasAHeaderWithModelHardwareMemoryPlanAndCommand) {
  ASSERT_GE(recipe_paths().size(), 8u) << "configs/ should hold the recipes of issue 24";
  for_each_recipe([](const fs::path& recipe, const Header& header) {
    EXPECT_FALSE(header["hardware"].empty());
    EXPECT_TRUE(std::regex_match(header["model"], std::regex(R"([\w.-]+/[\w.-]+)"))) << "model: a Hugging Face id, not " << header["model"];
    std::smatch m;
    ASSERT_TRUE(std::regex_match(header["command"], m, std::regex(R"(qtune train (\S+)(?: --nproc ([0-9]+))?)"))) << header["command"];
    EXPECT_EQ(m[1].str(), "configs/" + recipe.filename().string()) << "the command should train this file";
    const bool data_parallel = m[2].matched && std::stoi(m[2]) > 1;
    EXPECT_EQ(memory_is_per_gpu(header["memory"]), data_parallel) << "memory is 'on each GPU' exactly when the command has --nproc N > 1";
    EXPECT_TRUE(fs::is_regular_file(parse_plan(header["plan"]).model_config)) << header["plan"];
  });
}

// The figure is the plan's, printed as the run prints it, for the real shape on the stated budget; the plan fits; the
// settings it turns on are named; a gpu_memory_limit in the recipe is the budget.
TEST(Recipes, ExpectedMemoryIsTheMemoryPlanOfTheRealModelOnTheStatedBudget) {
  for_each_recipe([](const fs::path& recipe, const Header& header) {
    const PlanLine where = parse_plan(header["plan"]);
    const bool per_gpu = memory_is_per_gpu(header["memory"]);
    const TrainConfig config = TrainConfig::load(recipe.string());
    EXPECT_EQ(where.from_gpu_memory_limit, config.gpu_memory_limit > 0) << "the budget is '(gpu_memory_limit)' exactly when the recipe sets one";
    if (config.gpu_memory_limit > 0) EXPECT_EQ(config.gpu_memory_limit, where.budget) << "gpu_memory_limit and the header's budget differ";

    const ModelConfig model = ModelConfig::load(where.model_config.string());
    const BaseModelInfo base{"", model, std::nullopt};  // a 16-bit download, quantized at load as the recipe says
    const MemoryPlan plan = plan_memory(model, base_quantization(config, base), config, gpu_facts(config, where.budget));
    EXPECT_TRUE(plan.fits) << plan.describe();
    EXPECT_EQ(header["memory"], memory_line_of(plan, per_gpu))
        << "the header should say\n# memory:   " << memory_line_of(plan, per_gpu) << "\n" << plan.describe();
  });
}

// Parameter counts of the shapes the headers are planned for, as their publishers state them (model cards and the
// safetensors metadata of the Hugging Face repositories; Meta's to the parameter, the others rounded as published).
TEST(Recipes, PlannedShapesAreThePublishedModels) {
  struct Published {
    double parameters, rounding;
  };
  const std::map<std::string, Published> published = {
      {"llama3_1_8b_instruct.json", {8030261248.0, 0}},  {"llama3_1_70b_instruct.json", {70553706496.0, 0}},
      {"qwen2_5_7b_instruct.json", {7.62e9, 0.005e9}},   // 7.62B (Qwen's model card truncates it: "7.61B")
      {"qwen3_8b.json", {8.2e9, 0.05e9}},                // "Number of Parameters: 8.2B"
      {"mistral_7b_v0_3.json", {7.25e9, 0.005e9}}};      // 7.25B
  for_each_recipe([&](const fs::path&, const Header& header) {
    const fs::path config = parse_plan(header["plan"]).model_config;
    const auto known = published.find(config.filename().string());
    ASSERT_NE(known, published.end()) << "add the published parameter count of " << config.filename() << " to this test";
    const double total = static_cast<double>(count_parameters(ModelConfig::load(config.string())).total());
    EXPECT_NEAR(total, known->second.parameters, known->second.rounding) << config;
  });
}

// --- qtune validate against a tiny model of each recipe's architecture ---

// The real tokenizer family of each planned model (../shared/fixtures/tokenizers/NAME) and the template qtune should
// recognize in its tokenizer_config.json. No Mistral tokenizer is among the fixtures: Llama 2's is the same kind
// (sentencepiece BPE with byte fallback, <s> and </s>), and the Mistral recipes name their template.
struct Family {
  std::string tokenizer, recognized_template;
};
const std::map<std::string, Family>& families() {
  static const std::map<std::string, Family> table = {{"llama3_1_8b_instruct.json", {"llama3_1", "llama3"}},
                                                      {"llama3_1_70b_instruct.json", {"llama3_1", "llama3"}},
                                                      {"qwen2_5_7b_instruct.json", {"qwen2_5", "qwen2_5"}},
                                                      {"qwen3_8b.json", {"qwen3", "qwen3"}},
                                                      {"mistral_7b_v0_3.json", {"llama2", ""}}};
  return table;
}

std::string quoted(const std::string& text) {
  std::string out = "'";
  for (char c : text) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// The real model's architecture and vocabulary at hidden 64 and 2 layers, with the family's tokenizer files.
std::string tiny_model_like(const fs::path& model_config, const std::string& tokenizer, const std::string& dir) {
  const json real = json::parse(std::ifstream(model_config));
  const test::CommandResult made =
      test::run_qtune(fmt::format("init-model --arch {} --out {} --hidden 64 --layers 2 --heads 4 --kv-heads 2 --intermediate 128 --vocab {} "
                                  "--dtype bf16 --seed 1 --force",
                                  real.at("model_type").get<std::string>(), quoted(dir), real.at("vocab_size").get<int64_t>()));
  EXPECT_EQ(made.exit_code, 0) << made.out;
  for (const auto& file : fs::directory_iterator(tokenizer)) fs::copy_file(file.path(), fs::path(dir) / file.path().filename());
  return dir;
}

json message(const std::string& role, const std::string& content, const DatasetSpec& spec) {
  return {{spec.message_field("role"), role}, {spec.message_field("content"), content}};
}

// `count` records in the dataset's format and field names: multi-turn conversations with a system prompt, alpaca
// instructions, plain texts, or preference pairs (prompt as text and as a message list).
std::string tiny_records(const DatasetSpec& spec, int count) {
  const bool sharegpt = spec.type == DatasetType::sharegpt;
  std::string lines;
  for (int i = 0; i < count; ++i) {
    const std::string question = fmt::format("What is {} plus {}?", i, 2 * i), answer = fmt::format("{} plus {} is {}.", i, 2 * i, 3 * i);
    json record;
    switch (spec.type) {
      case DatasetType::chat_template:
      case DatasetType::sharegpt:
        record[spec.messages_field()] = {message("system", "You add numbers.", spec), message(sharegpt ? "human" : "user", question, spec),
                                         message(sharegpt ? "gpt" : "assistant", answer, spec),
                                         message(sharegpt ? "human" : "user", "And twice that?", spec),
                                         message(sharegpt ? "gpt" : "assistant", fmt::format("{}.", 6 * i), spec)};
        break;
      case DatasetType::alpaca:
        record = {{spec.field_instruction, "Add the numbers."}, {spec.field_input, question}, {spec.field_output, answer}};
        break;
      case DatasetType::completion:
        record = {{spec.field, question + " " + answer}};
        break;
      case DatasetType::preference:
        record[spec.field_prompt] = i % 2 ? json(question) : json::array({{{"role", "user"}, {"content", question}}});
        record[spec.field_chosen] = answer;
        record[spec.field_rejected] = fmt::format("{} plus {} is {}.", i, 2 * i, 3 * i + 1);
        break;
    }
    lines += record.dump() + "\n";
  }
  return lines;
}

// `qtune validate` of the recipe with base_model, datasets and output_dir pointed into `work`: each dataset entry keeps
// its type and options and reads a tiny file in its format.
test::CommandResult validate_with_tiny_files(const fs::path& recipe, const std::string& model, const fs::path& work) {
  fs::create_directories(work);
  const json document = yaml_to_json(test::read_file(recipe.string()), recipe.string());
  for (const char* key : {"tokenizer", "lora_model_dir", "dataset_prepared_path"})
    if (document.contains(key)) throw std::runtime_error(fmt::format("point '{}' at a test file too before validating this recipe", key));
  json datasets = document.at("datasets");
  for (std::size_t i = 0; i < datasets.size(); ++i) {
    const std::string data = (work / fmt::format("data{}.jsonl", i)).string();
    test::write_file(data, tiny_records(DatasetSpec::from_json(datasets[i], recipe.string()), 40));
    datasets[i]["path"] = data;
  }
  return test::run_qtune(fmt::format("validate {} {} {} {}", quoted(recipe.string()), quoted("base_model=" + model), quoted("datasets=" + datasets.dump()),
                                     quoted("output_dir=" + (work / "out").string())));
}

TEST(Recipes, EveryRecipeValidatesOnATinyModelOfItsArchitectureWithItsFamilysTokenizer) {
  const fs::path tmp = test::temp_dir("validate");
  std::map<std::string, std::string> models;  // model config -> its tiny model folder, made once
  int validated = 0;
  for_each_recipe([&](const fs::path& recipe, const Header& header) {
    const fs::path model_config = parse_plan(header["plan"]).model_config;
    const auto family = families().find(model_config.filename().string());
    ASSERT_NE(family, families().end()) << "add the tokenizer family of " << model_config.filename() << " to this test";
    const std::string tokenizer = test::tokenizer_dir(family->second.tokenizer);
    if (tokenizer.empty()) {
      if (test::reference_required()) ADD_FAILURE() << family->second.tokenizer << " tokenizer missing under " << test::tokenizers_root();
      return;
    }
    std::string& model = models[model_config.string()];
    if (model.empty()) model = tiny_model_like(model_config, tokenizer, (tmp / model_config.stem()).string());

    const test::CommandResult run = validate_with_tiny_files(recipe, model, tmp / recipe.stem());
    ASSERT_EQ(run.exit_code, 0) << run.out;
    EXPECT_NE(run.out.find("\nok\n"), std::string::npos) << run.out;
    const TrainConfig config = TrainConfig::load(recipe.string());
    // The template the recipe asks for: its name, or the one recognized in the family's own tokenizer_config.json.
    const bool recognized = config.chat_template == "tokenizer_default";
    const std::string expected = recognized ? family->second.recognized_template : config.chat_template;
    EXPECT_NE(run.out.find("template    " + expected + (recognized ? " (recognized" : "\n")), std::string::npos)
        << "expected template " << expected << "\n" << run.out;
    EXPECT_EQ(run.out.find("skipped   "), std::string::npos) << "every tiny sample should be used\n" << run.out;
    if (config.gpu_memory_limit > 0)  // validate plans within the cap, on a CPU too
      EXPECT_NE(run.out.find("budget " + format_byte_size(static_cast<double>(config.gpu_memory_limit)) + " from gpu_memory_limit"),
                std::string::npos)
          << run.out;
    ++validated;
  });
  if (!HasFailure()) fs::remove_all(tmp);  // 165 MB of tiny models, kept only to look into a failure
  if (validated == 0) GTEST_SKIP() << "no tokenizer files under " << test::tokenizers_root();
}

}  // namespace
}  // namespace qtune
