// Provides: a deterministic ~20 MB mixed-language text file for tokenizer benchmarks (not committed).
// Depends on: Node >= 18, ./json_util.mjs and the committed tests/fixtures/tokenizers/corpus.jsonl (its lines are the material).
//
// Usage: node scripts/reference/make_bench_corpus.mjs OUT_PATH [SIZE_MB=20]
//   SIZE_MB counts 10^6 bytes of UTF-8; the same arguments always write the same bytes.

import { createWriteStream } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { readJsonl } from "./json_util.mjs";

const [, , outPath, sizeArg] = process.argv;
if (!outPath) {
  console.error("usage: node scripts/reference/make_bench_corpus.mjs OUT_PATH [SIZE_MB=20]");
  process.exit(2);
}
const targetBytes = Math.round(Number(sizeArg ?? 20) * 1e6);
if (!(targetBytes > 0)) throw new Error(`bad SIZE_MB: ${sizeArg}`);

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const corpus = readJsonl(resolve(repoRoot, "tests/fixtures/tokenizers/corpus.jsonl")).map((r) => r.text);

// Material: corpus lines split at newlines into non-empty lines, plus the words they contain. Lines
// holding a special token of any reference tokenizer are left out, so that the benchmark measures plain
// text whether or not an implementation parses special tokens.
const SPECIAL = /<\|[a-z_0-9]+\|>|<\/?s>|<(bos|eos|pad|unk|mask|start_of_turn|end_of_turn)>|<\/?(think|tool_call)>/;
const sentences = corpus
  .flatMap((t) => t.split(/\r?\n/))
  .filter((l) => l.trim().length > 0 && l.length < 400 && !SPECIAL.test(l));
const words = sentences.flatMap((s) => s.split(/\s+/)).filter((w) => w.length > 0 && w.length < 40);
const latin = sentences.filter((s) => /^[\x20-\x7e]*$/.test(s));

// mulberry32, fixed seed.
let state = 0x2545f491;
function rand() {
  state = (state + 0x6d2b79f5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (arr) => arr[Math.floor(rand() * arr.length)];

// A line is either a run of whole sentences (mostly plain ASCII prose, like typical SFT data) or a
// shuffle of words from every script, so that the text mixes languages, code, numbers and emoji.
function makeLine() {
  const r = rand();
  const parts = [];
  if (r < 0.6) {
    const n = 1 + Math.floor(rand() * 6);
    for (let i = 0; i < n; i++) parts.push(pick(latin));
  } else if (r < 0.85) {
    const n = 1 + Math.floor(rand() * 4);
    for (let i = 0; i < n; i++) parts.push(pick(sentences));
  } else {
    const n = 5 + Math.floor(rand() * 40);
    for (let i = 0; i < n; i++) parts.push(pick(words));
  }
  return parts.join(" ");
}

const out = createWriteStream(outPath);
let written = 0;
let chunk = [];
let chunkBytes = 0;
while (written + chunkBytes < targetBytes) {
  const line = makeLine() + "\n";
  chunk.push(line);
  chunkBytes += Buffer.byteLength(line, "utf8");
  if (chunkBytes > 1 << 20) {
    out.write(chunk.join(""));
    written += chunkBytes;
    chunk = [];
    chunkBytes = 0;
  }
}
out.write(chunk.join(""));
written += chunkBytes;
out.end(() => console.error(`wrote ${written} bytes to ${outPath}`));
