#!/usr/bin/env python3
"""The tokenizer inside qtune's GGUF files, read by transformers, for tests/reference/test_gguf_tokenizer_reference.cpp
(suite GgufTokenizerReference).

For each family (llama2 = Mistral v1's sentencepiece-style BPE, llama3, llama3_1, qwen2_5, qwen3) a tiny random
model is made with `qtune init-model` (vocabulary the tokenizer's size, embeddings tied), the family's real
tokenizer files (../shared/fixtures/tokenizers/<family>, or $QTUNE_TOKENIZERS) are copied in, and
`qtune export --type f32` writes it as a GGUF file. Then:

<family>/model.gguf   what qtune exported (the C++ test reads its tokenizer back with qtune too)
<family>/ids.json     texts (the committed tokenizer corpus plus the family's special tokens written in text) and,
                      for each, without and with special tokens, plus the decoded texts, the ids of
                      "original": HF tokenizers (the Rust library) on the original tokenizer.json, what qtune's
                                  Tokenizer follows; BOS/EOS/PAD ids from AutoTokenizer on the original folder;
                      "transformers": AutoTokenizer.from_pretrained(<original folder>) (transformers 5 rebuilds
                                  Llama 2's "▁" handling as Metaspace, so " " differs from the file's own rules);
                      "gguf":     AutoTokenizer.from_pretrained(<folder>, gguf_file="model.gguf").
<family>/merges.json  the BPE model transformers built from the GGUF file: its vocabulary size and merges (for
                      llama2 rebuilt from tokenizer.ggml.scores, the others read from tokenizer.ggml.merges).

DeepSeek V3 is left out: transformers' GGUF loader has no deepseek-v3 pre-tokenizer (it falls back to GPT-2's).
"""
import json
import os
import shutil
import sys
import tempfile

import reference_common as common
from tokenizers import Tokenizer
from transformers import AutoTokenizer

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO_ROOT, "scripts"))
import tokenizer_files  # noqa: E402

# family -> the qtune init-model architecture its models have
FAMILIES = {"llama2": "mistral", "llama3": "llama", "llama3_1": "llama", "qwen2_5": "qwen2", "qwen3": "qwen3"}
SPECIALS = ["<s>", "</s>", "<unk>", "<|begin_of_text|>", "<|eot_id|>", "<|im_start|>", "<|im_end|>", "<tool_call>",
            "<think>", "<|fim_prefix|>", "<|reserved_special_token_3|>"]


def corpus_texts(original):
    with open(os.path.join(REPO_ROOT, "tests", "fixtures", "tokenizers", "corpus.jsonl"), encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f if line.strip()]
    vocab = original.get_vocab()
    for special in SPECIALS:
        if special in vocab:
            texts += [special + "hello", f"a {special} b\n{special}{special}"]
    return texts


def export_gguf(qtune, family, arch, original, out):
    """The family's tokenizer in a tiny init-model folder, exported to out/model.gguf."""
    with tempfile.TemporaryDirectory() as model:
        common.run_qtune(qtune, "init-model", "--arch", arch, "--out", model, "--hidden", 32, "--layers", 1, "--heads", 2,
                         "--kv-heads", 1, "--head-dim", 16, "--intermediate", 64, "--vocab", len(original), "--dtype", "f32",
                         "--tie", "--force")
        source = tokenizer_files.family_dir(family)
        for name in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(os.path.join(source, name), model)
        # The model's config.json says which ids are BOS/EOS, as a real checkpoint's does (init-model writes 1 and 2).
        with open(os.path.join(model, "config.json")) as f:
            config = json.load(f)
        for key in ("bos_token_id", "eos_token_id"):
            config.pop(key, None)
            if getattr(original, key) is not None:
                config[key] = getattr(original, key)
        with open(os.path.join(model, "config.json"), "w") as f:
            json.dump(config, f, indent=2)
        common.run_qtune(qtune, "export", "--model", model, "--out", os.path.join(out, "model.gguf"), "--type", "f32")


def encode_all(tokenizer, texts):
    plain = tokenizer(texts, add_special_tokens=False)["input_ids"]
    return {"ids": plain, "ids_with_special": tokenizer(texts)["input_ids"], "decoded": tokenizer.batch_decode(plain),
            "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id}


def encode_with_library(path, texts, auto):
    """HF tokenizers on tokenizer.json itself; the special token ids as transformers reads them."""
    library = Tokenizer.from_file(path)
    plain = [e.ids for e in library.encode_batch(texts, add_special_tokens=False)]
    return {"ids": plain, "ids_with_special": [e.ids for e in library.encode_batch(texts)],
            "decoded": library.decode_batch(plain, skip_special_tokens=False),
            "bos_token_id": auto.bos_token_id, "eos_token_id": auto.eos_token_id, "pad_token_id": auto.pad_token_id}


def main():
    args = common.parse_args("qtune's GGUF tokenizer keys, read by transformers")
    for family, arch in FAMILIES.items():
        out = os.path.join(args.out, family)
        os.makedirs(out)
        original = AutoTokenizer.from_pretrained(tokenizer_files.family_dir(family))
        export_gguf(args.qtune, family, arch, original, out)
        from_gguf = AutoTokenizer.from_pretrained(out, gguf_file="model.gguf")
        texts = corpus_texts(original)
        library = encode_with_library(os.path.join(tokenizer_files.family_dir(family), "tokenizer.json"), texts, original)
        result = {"texts": texts, "original": library, "transformers": encode_all(original, texts), "gguf": encode_all(from_gguf, texts)}
        with open(os.path.join(out, "ids.json"), "w", encoding="utf-8") as f:
            json.dump(result, f, ensure_ascii=False)
        backend = json.loads(from_gguf.backend_tokenizer.to_str())["model"]
        merges = [m if isinstance(m, list) else m.split(" ") for m in backend["merges"]]
        with open(os.path.join(out, "merges.json"), "w", encoding="utf-8") as f:
            json.dump({"vocab_size": len(backend["vocab"]), "merges": merges}, f, ensure_ascii=False)
        same = sum(a == b for a, b in zip(result["transformers"]["ids"], result["gguf"]["ids"]))
        print(f"{family}: transformers reads qtune's GGUF tokenizer; {same}/{len(texts)} texts encode as the original")


if __name__ == "__main__":
    main()
