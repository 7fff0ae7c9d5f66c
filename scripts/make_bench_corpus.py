#!/usr/bin/env python3
"""Writes a deterministic ~20 MB mixed-language text file for tokenizer benchmarks (not committed).

The material is the committed tokenizer test corpus (tests/fixtures/tokenizers/corpus.jsonl), its first
1,626 lines (the corpus bench/RESULTS.md's figures were measured on; later sections are left out so the
file stays the same): its lines cut at newlines, and the words in them. Lines holding a special token of any test family are left out,
so that the benchmark measures plain text whether or not an implementation parses special tokens. A
fixed-seed mulberry32 generator makes the same arguments write the same bytes.

Usage: python3 scripts/make_bench_corpus.py OUT_PATH [SIZE_MB=20]   (SIZE_MB counts 10^6 bytes of UTF-8)
"""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture_json  # noqa: E402
from make_tokenizer_corpus import JS_SPACE, Mulberry32  # noqa: E402

CORPUS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "fixtures", "tokenizers", "corpus.jsonl")
SPECIAL = re.compile(r"<\|[A-Za-z_0-9]+\|>|</?s>|<(bos|eos|pad|unk|mask|start_of_turn|end_of_turn|start_of_image|end_of_image|"
                     r"image_soft_token|unused\d+)>|</?(think|tool_call|tool_response)>|<\uff5c[^\uff5c]*\uff5c>|\[multimodal\]")
ASCII_PRINTABLE = re.compile(r"^[\x20-\x7e]*$")
BENCH_LINES = 1626


def utf16_length(text):
    return len(text.encode("utf-16-le")) // 2


def material():
    """(sentences, words, plain-ASCII sentences) from the test corpus."""
    texts = [r["text"] for r in fixture_json.read_jsonl(CORPUS)][:BENCH_LINES]
    sentences = [line for text in texts for line in re.split(r"\r?\n", text)
                 if JS_SPACE.sub("", line) and utf16_length(line) < 400 and not SPECIAL.search(line)]
    words = [w for s in sentences for w in JS_SPACE.split(s) if w and utf16_length(w) < 40]
    latin = [s for s in sentences if ASCII_PRINTABLE.match(s)]
    return sentences, words, latin


def make_line(rng, sentences, words, latin):
    """Mostly whole ASCII sentences (like typical SFT data), else sentences of every script, else a
    shuffle of words that mixes languages, code, numbers and emoji."""
    r = rng.next()
    if r < 0.6:
        parts = [rng.pick(latin) for _ in range(1 + int(rng.next() * 6))]
    elif r < 0.85:
        parts = [rng.pick(sentences) for _ in range(1 + int(rng.next() * 4))]
    else:
        parts = [rng.pick(words) for _ in range(5 + int(rng.next() * 40))]
    return " ".join(parts)


def main():
    if len(sys.argv) not in (2, 3):
        raise SystemExit("usage: python3 scripts/make_bench_corpus.py OUT_PATH [SIZE_MB=20]")
    target = round(float(sys.argv[2] if len(sys.argv) == 3 else 20) * 1e6)
    if target <= 0:
        raise SystemExit(f"bad SIZE_MB: {sys.argv[2]}")
    sentences, words, latin = material()
    rng = Mulberry32(0x2545F491)
    written = 0
    with open(sys.argv[1], "w", encoding="utf-8", newline="") as out:
        while written < target:
            line = make_line(rng, sentences, words, latin) + "\n"
            out.write(line)
            written += len(line.encode("utf-8"))
    print(f"wrote {written} bytes to {sys.argv[1]}", file=sys.stderr)


if __name__ == "__main__":
    main()
