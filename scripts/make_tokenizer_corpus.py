#!/usr/bin/env python3
"""Writes the deterministic tokenizer test corpus tests/fixtures/tokenizers/corpus.jsonl ({"text": ...} per line).

The reference encodings of every tokenizer family are made from it (scripts/make_tokenizer_fixtures.py).
A fixed-seed PRNG (mulberry32) and a fixed JSON style make every run write the same bytes. Sections 1-8
are the corpus as it was first written (for a JavaScript reference); sections 9-12 came with the HF
tokenizers reference, sections 13-18 (scripts/tokenizer_corpus_datasets.py: text in the shapes of real
fine-tuning datasets) with the parity matrix; each only draws random numbers after the earlier sections,
so the earlier lines stay byte for byte what they were.

Usage: python3 scripts/make_tokenizer_corpus.py [OUT_PATH]
  (default OUT_PATH: tests/fixtures/tokenizers/corpus.jsonl relative to the repository root)
"""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture_json  # noqa: E402
import tokenizer_corpus_datasets  # noqa: E402
import tokenizer_corpus_text as T  # noqa: E402

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MASK32 = 0xFFFFFFFF


def imul(a, b):
    """32-bit integer multiply, low 32 bits (as unsigned)."""
    return (a * b) & MASK32


class Mulberry32:
    """The mulberry32 generator: floats in [0, 1) from a 32-bit state, identical on every platform."""

    def __init__(self, seed):
        self.state = seed & MASK32

    def next(self):
        self.state = (self.state + 0x6D2B79F5) & MASK32
        t = self.state
        t = imul(t ^ (t >> 15), t | 1)
        t ^= (t + imul(t ^ (t >> 7), t | 61)) & MASK32
        return ((t ^ (t >> 14)) & MASK32) / 4294967296

    def int(self, lo, hi):
        """An integer in [lo, hi], both included."""
        return lo + int(self.next() * (hi - lo + 1))

    def pick(self, items):
        return items[int(self.next() * len(items))]


# The whitespace of JavaScript's \s (ECMAScript WhiteSpace + LineTerminator), which the first corpus used
# to cut sentences into words: it has U+FEFF and lacks U+0085.
JS_SPACE = re.compile("[\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]+")

class Corpus:
    """The lines in order, each text once."""

    def __init__(self):
        self.lines = []
        self.seen = set()

    def add(self, text):
        if any(0xD800 <= ord(c) <= 0xDFFF for c in text):
            raise ValueError("ill-formed string: " + repr(text))
        if text not in self.seen:
            self.seen.add(text)
            self.lines.append(text)

    def add_all(self, texts):
        for text in texts:
            self.add(text)


def all_scripts():
    return [t for group in T.SCRIPTS.values() for t in group]


def sentences_all():
    return T.ASCII + T.EUROPEAN + all_scripts()


def words_of(sentences):
    return [w for s in sentences for w in JS_SPACE.split(s) if w]


def hand_written(corpus):
    """Section 1: the pools, verbatim."""
    for group in (T.WHITESPACE_ONLY, T.ASCII, T.CONTRACTIONS, T.LATIN_PRECOMPOSED, T.LATIN_DECOMPOSED, T.EUROPEAN,
                  T.EMOJI, T.CODE, T.URLS, T.PUNCTUATION, T.RARE, T.NOT_SPECIAL, T.LONG_WORDS):
        corpus.add_all(group)
    corpus.add_all(all_scripts())


WS_PIECES = [" ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", "\r\n\r\n", " \n", "\n  ", "\t\t", "    "]


def whitespace_variants(corpus, rng):
    """Section 2: leading/trailing/multiple spaces, tabs and newline runs around sentences."""
    for s in T.ASCII[:20]:
        corpus.add_all([" " + s, s + " ", "  " + s + "  ", "  ".join(s.split(" ")), "\t".join(s.split(" ")),
                        "\n".join(s.split(" ")), s + "\n", s + "\r\n"])
    pool = sentences_all()
    for _ in range(60):
        a, b = rng.pick(pool), rng.pick(pool)
        text = rng.pick(WS_PIECES) + a + rng.pick(WS_PIECES) + b
        corpus.add(text + (rng.pick(WS_PIECES) if rng.next() < 0.5 else ""))


def numbers(corpus, rng):
    """Section 3: digit runs of every length, number formats, random numbers."""
    digits = ""
    for n in range(1, 25):
        digits += str((n * 7 + 3) % 10)
        corpus.add(digits)
    corpus.add_all(T.NUMBERS)
    for _ in range(25):
        s = "".join(str(rng.int(0, 9)) for _ in range(rng.int(1, 16)))
        fmt = rng.int(0, 3)
        if fmt == 0:
            corpus.add(s)
        elif fmt == 1:
            corpus.add(s + "." + str(rng.int(0, 99999)))
        elif fmt == 2:
            corpus.add("Total: " + re.sub(r"\B(?=(\d{3})+$)", ",", s) + " items")
        else:
            corpus.add("id" + s + "x")


def contractions_in_sentences(corpus, rng):
    """Section 4: contractions in frames, some upper-cased."""
    frames = ["I think %s right.", "%s", "\"%s\"", "(%s)", "%s!", "well %s"]
    for _ in range(20):
        c = rng.pick(T.CONTRACTIONS[:26])
        s = rng.pick(frames).replace("%s", c, 1)
        corpus.add(s.upper() if rng.next() < 0.3 else s)


def add_in_positions(corpus, token):
    """A token alone, glued to words, between spaces, doubled, before and after newlines."""
    corpus.add_all([token, "a" + token + "b", "Hello " + token + " world", token + token, token + "\n", "\n" + token + "  spaced"])


def special_tokens(corpus, rng):
    """Section 5: the first four families' special tokens inside text."""
    specials = [t for group in T.SPECIAL_LIKE.values() for t in group]
    corpus.add_all(T.CHAT_SNIPPETS)
    for token in specials:
        add_in_positions(corpus, token)
    pool = sentences_all()
    for _ in range(30):
        parts = [rng.pick(specials) if rng.next() < 0.5 else rng.pick(pool) for _ in range(rng.int(2, 5))]
        corpus.add(rng.pick(["", " ", "\n", "  "]).join(parts))
    corpus.add_all("before " + t + " after" for t in T.NOT_SPECIAL)


MIX_SEPARATORS = ["", "  ", "\n", "\t", "\r\n", ", ", "-"]


def mixture(rng, words, extras, length):
    """Words and extras joined mostly by single spaces."""
    s = ""
    for k in range(length):
        piece = rng.pick(words) if rng.next() < 0.75 else rng.pick(extras)
        sep = " " if rng.next() < 0.8 else rng.pick(MIX_SEPARATORS)
        s += ("" if k == 0 else sep) + piece
    return s


def random_mixtures(corpus, rng):
    """Section 6: words of every script with emoji, punctuation, rare characters and contractions.
    U+0085 stays out here, as in the first corpus (its JavaScript reference split it differently);
    section 9 has it."""
    rare = [r for r in T.RARE[:25] if "\u0085" not in r]
    extras = T.EMOJI + T.PUNCTUATION + rare + T.LATIN_DECOMPOSED + T.CONTRACTIONS[:20] + ["123", "4.5", "\u00a0", "\t"]
    words = words_of(sentences_all())
    for _ in range(140):
        corpus.add(mixture(rng, words, extras, rng.int(1, 14)))


def documents(corpus, rng):
    """Section 7: multi-line documents with LF and CRLF."""
    pool = sentences_all()
    for _ in range(20):
        lines = [rng.pick(pool) for _ in range(rng.int(2, 6))]
        corpus.add(rng.pick(["\n", "\r\n", "\n\n", "\r\n\r\n", "\n\n\n"]).join(lines))


def paragraphs(corpus, rng):
    """Section 8: five paragraphs of 2-4 KB."""
    pools = [T.ASCII, T.EUROPEAN, T.ASCII + all_scripts(), T.CODE + T.ASCII, sentences_all() + T.EMOJI + T.URLS]
    for p, pool in enumerate(pools):
        target = 2000 + p * 450
        s = ""
        while len(s.encode("utf-8")) < target:
            s += (rng.pick([" ", " ", " ", "\n", "\n\n"]) if s else "") + rng.pick(pool)
        corpus.add(s)


def nel_and_bom(corpus, rng):
    """Section 9: U+0085 and U+FEFF (and U+180E), alone, in words, next to every kind of whitespace and in
    mixtures."""
    corpus.add_all(T.NEL_BOM)
    corpus.add_all(T.MONGOLIAN_VOWEL_SEPARATOR)
    words = words_of(sentences_all())
    extras = ["\u0085", "\ufeff", " \u0085", "\u0085 ", "\ufeff ", " \ufeff", "\u0085\n", "\u00a0", "\t", "123"]
    for _ in range(60):
        corpus.add(mixture(rng, words, extras, rng.int(2, 12)))


def more_special_tokens(corpus, rng):
    """Section 10: the added tokens of llama3_1, gemma3, deepseek_v3 and gptoss inside text, and mixtures
    of every family's tokens with sentences."""
    corpus.add_all(T.MORE_CHAT_SNIPPETS)
    newer = [t for group in T.MORE_SPECIAL.values() for t in group]
    for token in newer:
        add_in_positions(corpus, token)
    every = [t for group in T.SPECIAL_LIKE.values() for t in group] + newer
    pool = sentences_all()
    for _ in range(60):
        parts = [rng.pick(every) if rng.next() < 0.5 else rng.pick(pool) for _ in range(rng.int(2, 6))]
        corpus.add(rng.pick(["", " ", "\n", "  ", "\t", "\n\n"]).join(parts))


def random_code_point(rng):
    """A code point from one of several ranges (never a surrogate)."""
    kind = rng.int(0, 9)
    if kind < 3:
        return chr(0x20 + rng.int(0, 0x5E))  # printable ASCII
    if kind < 5:
        return chr(0x80 + rng.int(0, 0x77F))  # Latin, Greek, Cyrillic, combining marks, ...
    if kind < 7:
        return chr(0x800 + rng.int(0, 0xCFFF))  # the BMP below the surrogates, CJK included
    if kind < 8:
        return chr(0x10000 + rng.int(0, 0xFFFF))  # emoji and other astral planes
    if kind < 9:
        return rng.pick(T.FUZZ_SPECIAL_CHARS)
    return chr(0xE000 + rng.int(0, 0x1FFF))  # private use, CJK compatibility, presentation forms, specials


def random_text(corpus, rng):
    """Section 11: random code points from every plane, with whitespace runs and fragments of special
    tokens, for the cases nobody thought of."""
    fragments = ["<|", "|>", "<s>", "</s", "<|eot_id|>", "  ", "\n\n", "\t", "\r\n", "<\uff5c", "\uff5c>", "\u2581", "<start_of_"]
    for _ in range(150):
        pieces = []
        for _ in range(rng.int(1, 40)):
            pieces.append(rng.pick(fragments) if rng.next() < 0.1 else random_code_point(rng))
        corpus.add("".join(pieces))


def newer_unicode(corpus):
    """Section 12: characters assigned in Unicode 15.0-16.0, whose classes HF's regex engine knows."""
    corpus.add_all(T.NEWER_UNICODE)


def build():
    rng = Mulberry32(0x9E3779B1)
    corpus = Corpus()
    hand_written(corpus)
    whitespace_variants(corpus, rng)
    numbers(corpus, rng)
    contractions_in_sentences(corpus, rng)
    special_tokens(corpus, rng)
    random_mixtures(corpus, rng)
    documents(corpus, rng)
    paragraphs(corpus, rng)
    nel_and_bom(corpus, rng)
    more_special_tokens(corpus, rng)
    random_text(corpus, rng)
    newer_unicode(corpus)
    tokenizer_corpus_datasets.dataset_sections(corpus, rng)
    return corpus.lines


def main():
    out_path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO_ROOT, "tests/fixtures/tokenizers/corpus.jsonl")
    lines = build()
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    fixture_json.write_jsonl(out_path, ({"text": text} for text in lines))
    print(f"wrote {len(lines)} lines, {os.path.getsize(out_path)} bytes to {out_path}", file=sys.stderr)


if __name__ == "__main__":
    main()
