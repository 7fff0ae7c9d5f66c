// The per-tensor type choices of llama.cpp, as facts read from its converter (convert_hf_to_gguf.py's
// prepare_tensors) and its quantizer (src/llama-quant.cpp: tensor_allows_quantization, llama_tensor_get_type,
// tensor_type_fallback) in the version llama-cpp-python 0.3.36 vendors, restricted to the llama / qwen2 / qwen3 /
// gemma2 / gemma3 / phi3 / qwen3moe models qtune writes (Mixtral as llama with experts), without an importance matrix
// or type overrides.
#include "gguf/quant_mix.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "core/error.h"

namespace qtune {
namespace {

struct ExportTypeInfo {
  ExportType type;
  const char* name;
  uint32_t file_type;  // llama_ftype
  GgmlType base;       // the type of an ordinary 2-D weight
};

const ExportTypeInfo kExportTypes[] = {
    {ExportType::kF32, "f32", 0, GgmlType::kF32},          {ExportType::kF16, "f16", 1, GgmlType::kF16},
    {ExportType::kBF16, "bf16", 32, GgmlType::kBF16},      {ExportType::kQ8_0, "q8_0", 7, GgmlType::kQ8_0},
    {ExportType::kQ4_0, "q4_0", 2, GgmlType::kQ4_0},       {ExportType::kQ4_K_M, "q4_k_m", 15, GgmlType::kQ4_K},
    {ExportType::kQ5_K_M, "q5_k_m", 17, GgmlType::kQ5_K},  {ExportType::kQ6_K, "q6_k", 18, GgmlType::kQ6_K},
};

const ExportTypeInfo& info(ExportType type) {
  for (const auto& t : kExportTypes)
    if (t.type == type) return t;
  input_error("unknown export type {}", static_cast<int>(type));
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

bool divides(GgmlType type, int64_t row_length) { return row_length % ggml_traits(type).block_size == 0; }

// ggml_n_dims: the dimensions up to the last one that is not 1 (at least 1).
int ggml_n_dims(const std::vector<int64_t>& ne) {
  int dims = static_cast<int>(ne.size());
  while (dims > 1 && ne[dims - 1] == 1) --dims;
  return std::max(dims, 1);
}

// The converter: 1-D tensors, norms, MoE routers (ffn_gate_inp, on its always-F32 list) and anything not named
// *.weight are F32; every other tensor gets the file's type, and a Q8_0 tensor whose rows are not whole blocks falls
// back to F16 (gguf.quants refuses it).
GgmlType converter_type(ExportType type, const std::string& name, const std::vector<int64_t>& ne) {
  if (ne.size() <= 1 || ends_with(name, "_norm.weight") || contains(name, "ffn_gate_inp.") || !ends_with(name, ".weight")) return GgmlType::kF32;
  const GgmlType base = info(type).base;
  return base == GgmlType::kQ8_0 && !divides(base, ne.at(0)) ? GgmlType::kF16 : base;
}

// What llama.cpp's quantizer looks at in a tensor's name.
enum class Category { kTokenEmbd, kOutput, kAttnQkv, kAttnV, kAttnK, kAttnOutput, kFfnDown, kOther };

Category category_of(const std::string& name) {
  if (name == "output.weight") return Category::kOutput;
  if (name == "token_embd.weight") return Category::kTokenEmbd;
  if (contains(name, "attn_qkv.weight")) return Category::kAttnQkv;  // Phi-3's fused projection: its own rule
  // attn_kv_b counts as attn_v (MLA projections; qtune's models have none).
  if (contains(name, "attn_kv_b.weight") || contains(name, "attn_v.weight")) return Category::kAttnV;
  if (contains(name, "attn_k.weight")) return Category::kAttnK;
  if (contains(name, "attn_q.weight")) return Category::kOther;
  if (contains(name, "attn_output.weight")) return Category::kAttnOutput;
  if (contains(name, "ffn_up") || contains(name, "ffn_gate")) return Category::kOther;
  if (contains(name, "ffn_down")) return Category::kFfnDown;
  return Category::kOther;
}

// N of "blk.N.", or -1.
int64_t layer_of(const std::string& name) {
  if (name.rfind("blk.", 0) != 0) return -1;
  char* end = nullptr;
  const long long layer = std::strtoll(name.c_str() + 4, &end, 10);
  return end != name.c_str() + 4 && *end == '.' ? layer : -1;
}

// llama.cpp's use_more_bits: the first and last eighth of the layers and every third layer between.
bool use_more_bits(int64_t layer, int64_t layers) {
  return layer < layers / 8 || layer >= 7 * layers / 8 || (layer - layers / 8) % 3 == 2;
}

// The quantizer's choice before the shape fallback (llama_tensor_get_type_impl for q4_0/q4_k_m/q5_k_m/q6_k).
GgmlType mix_choice(ExportType type, GgmlType base, Category category, const std::string& name, int64_t row_length,
                    const MixContext& context) {
  if (category == Category::kOutput || (!context.has_output && category == Category::kTokenEmbd))
    return !divides(base, row_length) ? GgmlType::kQ8_0 : base == GgmlType::kQ8_0 ? base : GgmlType::kQ6_K;
  const bool k_m = type == ExportType::kQ4_K_M || type == ExportType::kQ5_K_M;
  // A fused qkv gets one step more in every layer: Q4_K_M -> Q5_K, Q5_K_M -> Q6_K.
  if (category == Category::kAttnQkv) return type == ExportType::kQ4_K_M ? GgmlType::kQ5_K : type == ExportType::kQ5_K_M ? GgmlType::kQ6_K : base;
  const bool eight_experts = context.num_experts == 8;  // "bumping this to Q8_0 trades just ~128MB" (8x7B)
  if (category == Category::kAttnV) {
    GgmlType chosen = k_m && use_more_bits(layer_of(name), context.num_layers) ? GgmlType::kQ6_K : base;
    if (context.llama_type_70b && chosen == GgmlType::kQ4_K) chosen = GgmlType::kQ5_K;  // 8 heads share each V
    return eight_experts ? GgmlType::kQ8_0 : chosen;
  }
  if (category == Category::kAttnK && eight_experts) return GgmlType::kQ8_0;
  if (category == Category::kAttnOutput && eight_experts && type == ExportType::kQ4_K_M) return GgmlType::kQ5_K;
  // For an expert tensor llama.cpp takes the layer from the name ("blk.N."), as layer_of does for every tensor here.
  if (category == Category::kFfnDown && k_m && use_more_bits(layer_of(name), context.num_layers)) return GgmlType::kQ6_K;
  return base;
}

// tensor_type_fallback: a row length that is not a multiple of the chosen block takes a 32-weight type
// (Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0; a 32-weight type stays), and F16 when even that does not divide.
GgmlType shape_fallback(GgmlType chosen, int64_t row_length) {
  if (divides(chosen, row_length)) return chosen;
  GgmlType fallback = chosen;
  if (chosen == GgmlType::kQ4_K) fallback = GgmlType::kQ5_0;
  if (chosen == GgmlType::kQ5_K) fallback = GgmlType::kQ5_1;
  if (chosen == GgmlType::kQ6_K) fallback = GgmlType::kQ8_0;
  return divides(fallback, row_length) ? fallback : GgmlType::kF16;
}

// The quantizer reads the f16 file: tensors it does not quantize keep the converter's type there.
GgmlType quantizer_type(ExportType type, const std::string& name, const std::vector<int64_t>& ne, const MixContext& context) {
  const GgmlType from_f16 = converter_type(ExportType::kF16, name, ne);
  if (from_f16 == GgmlType::kF32) return from_f16;
  const bool quantized = ggml_n_dims(ne) >= 2 && ends_with(name, "weight") && !contains(name, "_norm.weight") && !contains(name, "ffn_gate_inp.weight");
  if (!quantized) return from_f16;
  const GgmlType base = info(type).base;
  return shape_fallback(mix_choice(type, base, category_of(name), name, ne.at(0), context), ne.at(0));
}

}  // namespace

ExportType parse_export_type(const std::string& name, const std::string& where) {
  std::string lower = name;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (const auto& t : kExportTypes)
    if (lower == t.name) return t.type;
  input_error("{}: unknown GGUF type '{}' (one of f32, f16, bf16, q8_0, q4_0, q4_k_m, q5_k_m, q6_k)", where, name);
}

std::string export_type_name(ExportType type) { return info(type).name; }

uint32_t llama_file_type(ExportType type) { return info(type).file_type; }

bool llama_cpp_type_is_70b(const std::string& arch, int64_t num_layers, int64_t num_heads, int64_t num_kv_heads, int64_t num_experts) {
  if (num_layers != 80 || num_experts == 8) return false;
  if (arch == "llama") return num_heads != num_kv_heads;  // 80 layers without GQA is LLaMA-1 65B
  return arch == "qwen2";
}

GgmlType tensor_type_for(ExportType type, const std::string& gguf_name, const std::vector<int64_t>& ne, const MixContext& context) {
  switch (type) {
    case ExportType::kF32:
    case ExportType::kF16:
    case ExportType::kBF16:
    case ExportType::kQ8_0: return converter_type(type, gguf_name, ne);
    default: return quantizer_type(type, gguf_name, ne, context);
  }
}

}  // namespace qtune
