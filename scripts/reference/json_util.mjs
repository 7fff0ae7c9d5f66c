// Provides: stableJson(), a JSON.stringify wrapper that escapes invisible/odd BMP characters as \uXXXX, and readJsonl().
// Depends on: Node >= 18 only; used by the reference fixture generators in this folder.

import { readFileSync } from "node:fs";

// Control, format, separator (except ' '), private-use and unassigned BMP characters are written
// as \uXXXX escapes so that fixture files stay readable and survive line-oriented tools.
// Astral characters are left raw (a plain UTF-8 reader never needs surrogate-pair escapes).
const ODD = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Zs}\p{Co}\p{Cn}]/gu;

export function stableJson(value, indent) {
  const s = JSON.stringify(value, null, indent);
  return s.replace(ODD, (ch) => {
    const cp = ch.codePointAt(0);
    // Raw ' ' and '\n' can only be structural here: JSON.stringify already escapes them inside strings.
    if (ch === " " || ch === "\n" || cp > 0xffff) return ch;
    return "\\u" + cp.toString(16).padStart(4, "0");
  });
}

export function readJsonl(path) {
  return readFileSync(path, "utf8")
    .split("\n")
    .filter((line) => line.length > 0)
    .map((line) => JSON.parse(line));
}
