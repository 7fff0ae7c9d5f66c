#!/usr/bin/env python3
"""Single-threaded tokenization throughput of HF tokenizers (the Rust library behind transformers) on a
text file, line by line, timed after loading and a warm-up pass: the baseline bench/tokenize_bench.cpp
(qtune_bench_tokenize) is compared against. Prints one JSON line with the same fields.

Usage: python3 bench/tokenize_hf.py TEXT_FILE [--tokenizer NAME_OR_PATH]
  TEXT_FILE is tokenized line by line without special tokens (e.g. one made by scripts/make_bench_corpus.py).
  NAME_OR_PATH: a tokenizer.json, a folder holding one, or a test family name looked up like the tests do
  (QTUNE_TOKENIZERS, else ../shared/fixtures/tokenizers); default llama3.
  Fields: bytes (UTF-8 bytes of the file), lines, tokens, seconds (timed pass only), mb_per_s (10^6 bytes/s).
"""
import argparse
import json
import os
import platform
import sys
import time

# One thread: the Rust library would otherwise use a thread pool for batches (none are used here).
os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts"))
import tokenizers  # noqa: E402
import tokenizer_files  # noqa: E402


def tokenizer_path(name_or_path):
    if os.path.isfile(name_or_path):
        return name_or_path
    if os.path.isdir(name_or_path):
        return os.path.join(name_or_path, "tokenizer.json")
    return os.path.join(tokenizer_files.family_dir(name_or_path), "tokenizer.json")


def encode_all(tok, lines):
    return sum(len(tok.encode(line, add_special_tokens=False).ids) for line in lines if line)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("text_file")
    parser.add_argument("--tokenizer", default="llama3")
    args = parser.parse_args()
    path = tokenizer_path(args.tokenizer)
    tok = tokenizers.Tokenizer.from_file(path)
    with open(args.text_file, "rb") as f:
        data = f.read()
    lines = data.decode("utf-8").split("\n")
    encode_all(tok, lines[:2000])  # warm-up, as the qtune bench (its word cache is kept, as in real use)
    start = time.perf_counter()
    tokens = encode_all(tok, lines)
    seconds = time.perf_counter() - start
    print(json.dumps({"impl": f"HF tokenizers {tokenizers.__version__} (Python {platform.python_version()})", "tokenizer": path,
                      "file": args.text_file, "bytes": len(data), "lines": sum(1 for line in lines if line), "tokens": tokens,
                      "seconds": round(seconds, 3), "mb_per_s": round(len(data) / 1e6 / seconds, 3)}))


if __name__ == "__main__":
    main()
