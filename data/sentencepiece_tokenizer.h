// load_sentencepiece_tokenizer(): a qtune::Tokenizer over a sentencepiece .model file (Llama 1/2, Mistral,
// Gemma, ...).
#pragma once

#include <memory>
#include <string>

#include "data/tokenizer.h"

namespace qtune {

// Loads the sentencepiece model at `model_path`. Debian's libsentencepiece clashes with LibTorch's protobuf,
// so it is reached only through libqtune_spm.so, opened once per process with dlopen(RTLD_LOCAL |
// RTLD_DEEPBIND). The shim is looked for at: $QTUNE_SPM_SHIM, <exe dir>/../lib, <exe dir>,
// <exe dir>/../../lib, then the build folder it was built in.
//
// Behaviour (HF's slow LlamaTokenizer with legacy=False, add_bos_token=True, add_eos_token=False):
//   encode(text, parse_special=false)  exactly what spm_encode gives;
//   encode(text, parse_special=true)   control pieces written literally ("<s>", "</s>", "[INST]") become
//                                      their ids, the text around them is encoded as one normalized text
//                                      (dummy prefix "▁" only at the start, not after each special token);
//   encode_with_offsets                encode() plus where each piece begins in `text` (sentencepiece's
//                                      alignment; the dummy prefix and a token's later byte pieces start
//                                      where the character they belong to starts);
//   encode_with_special_tokens         BOS (when the model has one) + encode(text, true); no EOS;
//   decode(ids, skip_special=false)    control pieces written as their text, <unk> as "<unk>";
//   decode(ids, skip_special=true)     control and unknown ids dropped, as spm_decode renders the rest;
//   is_special                         control pieces and <unk>.
// Ids out of range are skipped by decode. Throws InputError naming the file when it is missing, is not a
// sentencepiece model, or when libqtune_spm.so cannot be found or opened.
std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::string& model_path);

}  // namespace qtune
