// qtune inspect DIR: checks a model folder against its config and prints architecture, parameter
// counts, dtypes and the memory of a 4-bit base (or the same as JSON with --json). A config.json given alone
// (`qtune inspect path/config.json`) gives the same from the config: the sizes of a model before downloading it.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <filesystem>
#include <iostream>

#include "models/model_loader.h"
#include "trainer/commands.h"
#include "trainer/train_config.h"

namespace qtune {
namespace {

std::string grouped(int64_t n) {
  std::string s = std::to_string(n), out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (i > 0 && (s.size() - i) % 3 == 0) out += ',';
    out += s[i];
  }
  return out;
}

std::string rope_text(const ModelConfig& c) {
  const RopeScaling& r = c.rope_scaling;
  std::string s = fmt::format("theta {}", c.rope_theta);
  if (r.type == "linear") s += fmt::format(", linear scaling x{}", r.factor);
  if (r.type == "llama3")
    s += fmt::format(", llama3 scaling (factor {}, low {}, high {}, original context {})", r.factor, r.low_freq_factor,
                     r.high_freq_factor, r.original_max_position_embeddings);
  if (r.type == "longrope") s += fmt::format(", longrope (original context {})", r.original_max_position_embeddings);
  if (c.local_rope_theta) s += fmt::format("; sliding layers theta {}", *c.local_rope_theta);
  if (c.partial_rotary_factor != 1.0) s += fmt::format("; on {} of {} head dims", c.rotary_dim(), c.head_dim);
  return s;
}

std::string attention_text(const ModelConfig& c) {
  int64_t windowed = 0;
  for (int64_t i = 0; i < c.num_layers; ++i) windowed += c.sliding_window_for_layer(i).has_value();
  std::string s = windowed == 0 ? "full causal" : fmt::format("sliding window {} on {} of {} layers", *c.sliding_window, windowed, c.num_layers);
  if (c.fused_projections) s += ", fused qkv_proj / gate_up_proj";
  if (c.qkv_bias) s += ", q/k/v bias";
  if (c.o_bias) s += ", o bias";
  if (c.qk_norm) s += ", q/k RMSNorm";
  if (c.attn_logit_softcapping) s += fmt::format(", score soft-capping {}", *c.attn_logit_softcapping);
  if (c.final_logit_softcapping) s += fmt::format(", logit soft-capping {}", *c.final_logit_softcapping);
  return s;
}

int64_t sparse_layers(const ModelConfig& c) {
  int64_t n = 0;
  for (int64_t i = 0; i < c.num_layers; ++i) n += c.is_sparse_layer(i);
  return n;
}

std::string experts_text(const ModelConfig& c) {
  return fmt::format("{} per layer on {} of {} layers, top {} per token, each ffn {}{}", c.num_experts, sparse_layers(c), c.num_layers,
                     c.num_experts_per_tok, c.moe_intermediate_size, c.norm_topk_prob ? ", top-k weights renormalized" : "");
}

// A config.json given as a file: no weights to check (a folder without weights stays an error).
bool config_only(const std::string& path) { return std::filesystem::is_regular_file(path); }

// The sizes both outputs print.
struct Sizes {
  ParameterCounts parameters;
  std::uint64_t file_bytes = 0;
  double bf16 = 0, nf4_double_quant = 0, nf4 = 0;  // bytes of the whole model in each format
};

Sizes sizes_of(const ModelConfig& config, const CheckedCheckpoint* m) {
  Sizes s;
  s.parameters = count_parameters(config);
  if (m != nullptr)
    for (const auto& f : m->checkpoint.files()) s.file_bytes += std::filesystem::file_size(f->path());
  s.nf4_double_quant = four_bit_bytes(s.parameters, 64, true, 2);
  s.nf4 = four_bit_bytes(s.parameters, 64, false, 2);
  s.bf16 = static_cast<double>(s.parameters.total()) * 2;
  return s;
}

// m: the checked weights, or null for a config alone.
void print_json(const ModelConfig& c, const CheckedCheckpoint* m, const Sizes& s) {
  const ParameterCounts& p = s.parameters;
  nlohmann::ordered_json j;
  j["architecture"] = c.hf_class_name();
  j["layers"] = c.num_layers;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["heads"] = c.num_heads;
  j["kv_heads"] = c.num_kv_heads;
  j["head_dim"] = c.head_dim;
  j["vocab_size"] = c.vocab_size;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  if (c.num_experts > 0)
    j["experts"] = {{"experts", c.num_experts}, {"experts_per_token", c.num_experts_per_tok}, {"expert_intermediate_size", c.moe_intermediate_size},
                    {"sparse_layers", sparse_layers(c)}, {"norm_topk_prob", c.norm_topk_prob}};
  j["parameters"] = {{"total", p.total()}, {"active", p.active()}, {"embedding", p.embedding}, {"lm_head", p.lm_head},
                     {"decoder_projections", p.decoder_projections}, {"routers", p.routers}, {"norms_and_biases", p.other}};
  j["config_only"] = m == nullptr;
  if (m != nullptr) {
    j["dtypes"] = m->parameters_by_dtype;
    j["files"] = m->checkpoint.files().size();
    j["file_bytes"] = s.file_bytes;
  }
  j["bytes_bf16"] = s.bf16;
  j["bytes_nf4_double_quant"] = s.nf4_double_quant;
  j["bytes_nf4"] = s.nf4;
  if (m != nullptr) j["unused_tensors"] = m->unused;
  std::cout << j.dump(2) << "\n";
}

void print_text(const std::string& dir, const ModelConfig& c, const CheckedCheckpoint* m, const Sizes& s) {
  const ParameterCounts& p = s.parameters;
  fmt::print("model       {} ({})\n", dir, c.hf_class_name());
  fmt::print("shape       {} layers, hidden {}, ffn {}, heads {} (kv {}, head_dim {}), vocab {}\n", c.num_layers,
             c.hidden_size, c.intermediate_size, c.num_heads, c.num_kv_heads, c.head_dim, c.vocab_size);
  fmt::print("attention   {}; rope {}\n", attention_text(c), rope_text(c));
  fmt::print("lm_head     {}\n", c.tie_word_embeddings ? "tied to the embeddings" : "separate");
  if (c.num_experts > 0) fmt::print("experts     {}\n", experts_text(c));
  fmt::print("parameters  {} total: embeddings {}, lm_head {}, decoder projections {}, norms/biases {}\n",
             grouped(p.total()), grouped(p.embedding), grouped(p.lm_head), grouped(p.decoder_projections), grouped(p.other));
  if (c.num_experts > 0)
    fmt::print("            {} active per token (attention, routers {}, {} of {} experts per sparse layer, embeddings, lm_head, norms)\n",
               grouped(p.active()), grouped(p.routers), c.num_experts_per_tok, c.num_experts);
  if (m == nullptr) {
    fmt::print("files       none: sizes from config.json alone\n");
  } else {
    std::string dtypes;
    for (const auto& [name, n] : m->parameters_by_dtype) dtypes += fmt::format("{}{} {}", dtypes.empty() ? "" : ", ", name, grouped(n));
    fmt::print("dtypes      {}\n", dtypes);
    fmt::print("files       {} safetensors file(s), {}\n", m->checkpoint.files().size(), format_byte_size(static_cast<double>(s.file_bytes)));
  }
  fmt::print("memory      bf16 {}; 4-bit NF4 + double quant {} ({:.3f} bytes/param); NF4 without double quant {}\n",
             format_byte_size(s.bf16), format_byte_size(s.nf4_double_quant), s.nf4_double_quant / static_cast<double>(p.total()), format_byte_size(s.nf4));
  fmt::print("            (4-bit: decoder projections at 4 bits, block 64; embeddings, lm_head{} and norms in bf16)\n", c.num_experts > 0 ? ", routers" : "");
  if (m != nullptr && !m->unused.empty()) fmt::print("unused      {} tensor(s) not used by the model, e.g. {}\n", m->unused.size(), m->unused.front());
}

}  // namespace

Command add_inspect_command(CLI::App& app) {
  auto dir = std::make_shared<std::string>();
  auto as_json = std::make_shared<bool>(false);
  CLI::App* sub = app.add_subcommand("inspect", "Check a model folder and print its architecture, sizes and dtypes");
  sub->add_option("dir", *dir, "model folder (config.json + safetensors), or a config.json alone")->required();
  sub->add_flag("--json", *as_json, "print one JSON object instead of text");
  return [dir, as_json]() {
    std::optional<CheckedCheckpoint> m;
    if (!config_only(*dir)) m = check_checkpoint(*dir);
    const ModelConfig config = m ? m->config : ModelConfig::load(*dir);
    const CheckedCheckpoint* weights = m ? &*m : nullptr;
    const Sizes sizes = sizes_of(config, weights);
    if (*as_json) print_json(config, weights, sizes);
    else print_text(*dir, config, weights, sizes);
    return 0;
  };
}

}  // namespace qtune
