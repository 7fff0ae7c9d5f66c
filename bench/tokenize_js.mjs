// Provides: a single-threaded transformers.js tokenizer throughput baseline (llama3, add_special_tokens=false), one JSON line on stdout.
// Depends on: the npm packages pinned in scripts/reference/package.json (npm ci --prefix scripts/reference); Node >= 18.
//
// Usage: node bench/tokenize_js.mjs TEXT_FILE [--tokenizer NAME]
//   TEXT_FILE is tokenized line by line (e.g. one made by scripts/reference/make_bench_corpus.mjs).
//   NAME is a @lenml/tokenizer-NAME package from scripts/reference/package.json (default llama3).
//   Output fields: bytes (UTF-8 bytes of the file), lines, tokens, seconds (timed pass only), mb_per_s (10^6 bytes/s).

import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const args = process.argv.slice(2);
let name = "llama3";
const files = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--tokenizer") name = args[++i];
  else files.push(args[i]);
}
if (files.length !== 1) {
  console.error("usage: node bench/tokenize_js.mjs TEXT_FILE [--tokenizer NAME]");
  process.exit(2);
}

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(resolve(repoRoot, "scripts/reference/package.json"));
const pkg = `@lenml/tokenizer-${name}`;
const tokenizer = require(pkg).fromPreTrained();
const version = JSON.parse(
  readFileSync(resolve(dirname(require.resolve(`${pkg}/models/tokenizer.json`)), "..", "package.json"), "utf8"),
).version;

const buf = readFileSync(files[0]);
const lines = buf.toString("utf8").split("\n");

function run(subset) {
  let tokens = 0;
  for (const line of subset) {
    if (line.length === 0) continue;
    tokens += tokenizer.encode(line, { add_special_tokens: false }).length;
  }
  return tokens;
}

// Warm-up: JIT, regex compilation and the BPE cache see the first ~2000 lines (cache kept, as in real use).
run(lines.slice(0, 2000));

const t0 = process.hrtime.bigint();
const tokens = run(lines);
const seconds = Number(process.hrtime.bigint() - t0) / 1e9;

console.log(
  JSON.stringify({
    impl: `transformers.js (${pkg}@${version})`,
    tokenizer: name,
    node: process.version,
    file: files[0],
    bytes: buf.length,
    lines: lines.filter((l) => l.length > 0).length,
    tokens,
    seconds: Number(seconds.toFixed(3)),
    mb_per_s: Number((buf.length / 1e6 / seconds).toFixed(3)),
  }),
);
