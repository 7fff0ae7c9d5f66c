#!/usr/bin/env python3
"""Writes reference encodings of the tokenizer test corpus (tests/fixtures/tokenizers/corpus.jsonl) by Hugging
Face's tokenizers library -> OUT/NAME.jsonl + OUT/NAME.meta.json, for qtune's C++ tokenizer tests to compare
against. ctest runs it at test time (Reference.HfTokenizers, into build/tests/reference/tokenizers).

Ids come from tokenizers.Tokenizer.from_file (the Rust library every HF model is trained and served with);
`decoded` comes from transformers' PreTrainedTokenizerFast built from the same tokenizer.json and the
family's tokenizer_config.json, with the tokenizer's own clean_up_tokenization_spaces.

Usage: HF_HUB_OFFLINE=1 python3 scripts/make_tokenizer_fixtures.py --out DIR [--corpus PATH] [NAME ...]
  (default: every family). The tokenizer files are read from QTUNE_TOKENIZERS or ../shared/fixtures/tokenizers
  (scripts/tokenizer_files.py).
"""
import argparse
import collections
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture_json  # noqa: E402
import tokenizer_files  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import tokenizers  # noqa: E402
import transformers  # noqa: E402

CORPUS = os.path.join(tokenizer_files.REPO_ROOT, "tests", "fixtures", "tokenizers", "corpus.jsonl")


def special_token_text(value):
    """tokenizer_config.json writes special tokens as "<s>" or as {"__type": "AddedToken", "content": "<s>", ...}."""
    return value.get("content") if isinstance(value, dict) else value


def transformers_tokenizer(folder, config):
    """PreTrainedTokenizerFast over the folder's tokenizer.json with the config's special tokens and options."""
    options = {key: value for key, value in config.items() if key not in ("tokenizer_class", "auto_map", "added_tokens_decoder")}
    for key in ("bos_token", "eos_token", "pad_token", "unk_token", "sep_token", "cls_token", "mask_token"):
        if key in options:
            options[key] = special_token_text(options[key])
    return transformers.PreTrainedTokenizerFast(tokenizer_file=os.path.join(folder, "tokenizer.json"), **options)


def added_ids(ids, ids_with_special):
    """What add_special_tokens=True put before and after `ids`, as JSON keys ("ambiguous" when `ids`
    occurs more than once inside, e.g. a text that starts with the BOS token itself)."""
    n = len(ids)
    starts = [p for p in range(len(ids_with_special) - n + 1) if ids_with_special[p:p + n] == ids]
    if not starts:
        raise SystemExit(f"ids {ids} are not contained in ids_with_special {ids_with_special}")
    if len(starts) > 1:
        return "ambiguous", "ambiguous"
    p = starts[0]
    return json.dumps(ids_with_special[:p]), json.dumps(ids_with_special[p + n:])


def token_info(tok, name, config):
    text = special_token_text(config.get(f"{name}_token"))
    return {"token": text, "id": tok.token_to_id(text) if text is not None else None}


def added_tokens_in_text(tok, document):
    """How many added tokens (special and not) become one id when written inside text."""
    counts = {True: [0, 0], False: [0, 0]}
    not_parsed = []
    entries = document["added_tokens"]
    encodings = tok.encode_batch([f"x{entry['content']}y" for entry in entries], add_special_tokens=False)
    for entry, encoding in zip(entries, encodings):
        counts[entry["special"]][1] += 1
        if entry["id"] in encoding.ids:
            counts[entry["special"]][0] += 1
        else:
            not_parsed.append(entry["content"])
    summary = (f"{counts[True][0]} of {counts[True][1]} special and {counts[False][0]} of {counts[False][1]} non-special added "
               "tokens become one id when written inside text (encode without add_special_tokens)")
    return summary, not_parsed


def encode_corpus(tok, fast, texts):
    """One fixture record per text, plus the statistics the meta file reports."""
    plain = tok.encode_batch(texts, add_special_tokens=False)
    with_special = tok.encode_batch(texts, add_special_tokens=True)
    all_ids = [a.ids for a in plain]
    decoded = fast.batch_decode(all_ids, skip_special_tokens=False)
    decoded_no_cleanup = tok.decode_batch(all_ids, skip_special_tokens=False)
    decoded_skip = tok.decode_batch(all_ids, skip_special_tokens=True)
    fast_plain = fast(texts, add_special_tokens=False)["input_ids"]
    fast_special = fast(texts, add_special_tokens=True)["input_ids"]
    stats = collections.Counter()
    prefixes, suffixes = collections.Counter(), collections.Counter()
    records = []
    for k, text in enumerate(texts):
        ids, ids_special = all_ids[k], with_special[k].ids
        record = {"text": text, "ids": ids, "ids_with_special": ids_special, "decoded": decoded[k],
                  "decoded_no_cleanup": decoded_no_cleanup[k], "decoded_skip_special": decoded_skip[k]}
        prefix, suffix = added_ids(ids, ids_special)
        prefixes[prefix] += 1
        suffixes[suffix] += 1
        stats["roundtrip_exact"] += record["decoded"] == text
        stats["roundtrip_exact_no_cleanup"] += record["decoded_no_cleanup"] == text
        stats["transformers_ids_agree"] += fast_plain[k] == ids
        stats["transformers_ids_with_special_agree"] += fast_special[k] == ids_special
        records.append(record)
    return records, stats, prefixes, suffixes


def build(name, texts, corpus_path, out_dir):
    start = time.perf_counter()
    folder = tokenizer_files.family_dir(name)
    json_path = os.path.join(folder, "tokenizer.json")
    config_path = os.path.join(folder, "tokenizer_config.json")
    with open(json_path, encoding="utf-8") as f:
        document = json.load(f)
    with open(config_path, encoding="utf-8") as f:
        config = json.load(f)
    tok = tokenizers.Tokenizer.from_file(json_path)
    fast = transformers_tokenizer(folder, config)
    records, stats, prefixes, suffixes = encode_corpus(tok, fast, texts)
    parsed_summary, not_parsed = added_tokens_in_text(tok, document)
    root = tokenizer_files.tokenizers_root()
    meta = {
        "name": name,
        "hf_repository": tokenizer_files.FAMILIES[name],
        "reference": f"tokenizers {tokenizers.__version__} Tokenizer.from_file: encode(text, add_special_tokens=False/True), "
                     "decode(ids, skip_special_tokens=False/True)",
        "decoded_by": f"transformers {transformers.__version__} PreTrainedTokenizerFast(tokenizer_file, **tokenizer_config)"
                      ".decode(ids, skip_special_tokens=False)",
        "tokenizers_version": tokenizers.__version__,
        "transformers_version": transformers.__version__,
        "tokenizer_json": os.path.relpath(json_path, root),
        "tokenizer_json_sha256": tokenizer_files.sha256(json_path),
        "tokenizer_config_json": os.path.relpath(config_path, root),
        "tokenizer_config_json_sha256": tokenizer_files.sha256(config_path),
        "model_type": document["model"]["type"],
        "vocab_size": tok.get_vocab_size(with_added_tokens=True),
        "added_tokens": len(document["added_tokens"]),
        "bos": token_info(tok, "bos", config),
        "eos": token_info(tok, "eos", config),
        "pad": token_info(tok, "pad", config),
        "unk": token_info(tok, "unk", config),
        "clean_up_tokenization_spaces": config.get("clean_up_tokenization_spaces", False),
        "add_bos_token": config.get("add_bos_token"),
        "add_eos_token": config.get("add_eos_token"),
        "add_special_tokens_prefixes": dict(prefixes),
        "add_special_tokens_suffixes": dict(suffixes),
        "added_tokens_parsed_in_text": parsed_summary,
        "added_tokens_not_parsed": not_parsed,
        "corpus": os.path.relpath(corpus_path, tokenizer_files.REPO_ROOT),
        "corpus_sha256": tokenizer_files.sha256(corpus_path),
        "corpus_lines": len(records),
        "decode_roundtrip_exact": stats["roundtrip_exact"],
        "decode_roundtrip_exact_no_cleanup": stats["roundtrip_exact_no_cleanup"],
        "transformers_ids_agree": stats["transformers_ids_agree"],
        "transformers_ids_with_special_agree": stats["transformers_ids_with_special_agree"],
    }
    fixture_json.write_jsonl(os.path.join(out_dir, f"{name}.jsonl"), records)
    fixture_json.write_json(os.path.join(out_dir, f"{name}.meta.json"), meta)
    print(f"{name}: {len(records)} lines in {time.perf_counter() - start:.1f} s; add_special_tokens prefixes {dict(prefixes)}; round trip {stats['roundtrip_exact']}"
          f"/{len(records)}; transformers agrees on {stats['transformers_ids_agree']} (with special "
          f"{stats['transformers_ids_with_special_agree']}); {parsed_summary}", file=sys.stderr)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--out", required=True, help="folder for NAME.jsonl and NAME.meta.json")
    parser.add_argument("--corpus", default=CORPUS, help="JSONL of {\"text\": ...} lines (default: the committed corpus)")
    parser.add_argument("names", nargs="*", help="families (default: all)")
    args = parser.parse_args()
    for name in args.names:
        if name not in tokenizer_files.FAMILIES:
            raise SystemExit(f"unknown tokenizer {name}; known: {', '.join(tokenizer_files.FAMILIES)}")
    texts = [r["text"] for r in fixture_json.read_jsonl(args.corpus)]
    os.makedirs(args.out, exist_ok=True)
    for name in args.names or list(tokenizer_files.FAMILIES):
        build(name, texts, os.path.abspath(args.corpus), args.out)


if __name__ == "__main__":
    main()
