"""JSON text in the style of qtune's test fixtures, shared by the fixture generators under scripts/.

Invisible or odd BMP characters (control, format, separators other than ' ', private use, unassigned)
are written as \\uXXXX escapes so fixture files stay readable and survive line-oriented tools; every
other character is raw UTF-8. Compact output has no spaces (one object per JSONL line); indented output
uses two spaces.
"""
import json
import unicodedata

ODD_CATEGORIES = {"Cc", "Cf", "Zl", "Zp", "Zs", "Co", "Cn"}


def _escape_odd(ch):
    # Raw ' ' and '\n' can only be structural here: json.dumps already escaped them inside strings.
    if ch in (" ", "\n") or ord(ch) > 0xFFFF or unicodedata.category(ch) not in ODD_CATEGORIES:
        return ch
    return "\\u%04x" % ord(ch)


def dumps(value, indent=None):
    separators = (",", ":") if indent is None else (",", ": ")
    text = json.dumps(value, ensure_ascii=False, indent=indent, separators=separators)
    return "".join(_escape_odd(ch) for ch in text)


def write_jsonl(path, records):
    with open(path, "w", encoding="utf-8", newline="") as f:
        for record in records:
            f.write(dumps(record) + "\n")


def write_json(path, value):
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(dumps(value, indent=2) + "\n")


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
