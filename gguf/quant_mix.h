// The export types of `qtune export --type` and which ggml type each tensor gets under them: the choices of
// llama.cpp's converter (f32/f16/bf16/q8_0: 1-D tensors and MoE routers stay F32) and of its quantizer's mixes (q4_0,
// q4_k_m, q5_k_m, q6_k: the output matrix and, in *_K_M, attn_v / ffn_down of some layers and every fused attn_qkv get
// more bits, as do attn_v / attn_k / attn_output of an 8-expert model; a row length that is not a multiple of the block
// falls back as llama.cpp falls back). A stacked expert tensor (ne [in, out, E]) is typed like a 2-D one of its rows.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "gguf/ggml_quants.h"

namespace qtune {

enum class ExportType { kF32, kF16, kBF16, kQ8_0, kQ4_0, kQ4_K_M, kQ5_K_M, kQ6_K };

ExportType parse_export_type(const std::string& name, const std::string& where);  // InputError listing the types
std::string export_type_name(ExportType type);                                     // "q4_k_m"
uint32_t llama_file_type(ExportType type);  // general.file_type (llama_ftype: 0 F32, 1 F16, 2 Q4_0, 7 Q8_0, 15 Q4_K_M, ...)

// What the mix needs to know about the whole model.
struct MixContext {
  int64_t num_layers = 0;
  bool has_output = true;       // false for tied embeddings: token_embd then counts as the output matrix
  bool llama_type_70b = false;  // llama.cpp's model type is 70B (llama_cpp_type_is_70b): Q4_K attn_v becomes Q5_K
  int64_t num_experts = 0;      // E (0: dense); llama.cpp's mixes treat E = 8 (Mixtral 8x7B / 8x22B) specially
};

// Whether llama.cpp classifies the model as LLM_TYPE_70B, which its quantizer treats specially: arch "llama" (and
// Mistral, which it converts as llama) with 80 layers and grouped-query attention, or "qwen2" with 80 layers; never
// a "llama" with 8 experts (its types are 8x7B / 8x22B).
bool llama_cpp_type_is_70b(const std::string& arch, int64_t num_layers, int64_t num_heads, int64_t num_kv_heads, int64_t num_experts = 0);

// The ggml type of the tensor `gguf_name` ("blk.3.attn_v.weight") with ne (ggml order) under `type`.
// f32/f16/bf16/q8_0 as llama.cpp's converter: 1-D tensors, *_norm.weight, ffn_gate_inp (MoE routers) and names not
// ending in .weight are F32, every other tensor the type (q8_0: F16 when ne[0] is not a multiple of 32). q4_0/q4_k_m/q5_k_m/q6_k as its
// quantizer run on the converter's f16 file: what it leaves alone keeps the f16 file's type; the output matrix
// (token_embd when tied) is Q6_K (Q8_0 when ne[0] is not a multiple of the mix's block); in *_k_m, attn_v and
// ffn_down of the layers use_more_bits picks are Q6_K; then a row length that is not a multiple of the block falls
// back (Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, then F16). attn_qkv (Phi-3) is Q5_K in q4_k_m, Q6_K in q5_k_m.
// With 8 experts: attn_v and attn_k are Q8_0 in every mix, attn_output Q5_K in q4_k_m. The stacked experts follow the
// dense rules by name (ffn_down_exps is an ffn_down of its layer); the quantizer leaves routers in the converter's F32.
GgmlType tensor_type_for(ExportType type, const std::string& gguf_name, const std::vector<int64_t>& ne, const MixContext& context);

}  // namespace qtune
