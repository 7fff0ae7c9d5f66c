#!/usr/bin/env python3
"""Writes reference chat-template renderings and assistant-token masks by transformers -> OUT/TEMPLATE.json,
for qtune's built-in chat templates (data/chat_template.cpp) and its SFT masking (data/sample_encoder.cpp)
to be compared against in C++. ctest runs it at test time (Reference.HfChatTemplates, into
build/tests/reference/chat_templates).

Each template is rendered by transformers' own apply_chat_template (Jinja2, tokenize=False) on a
PreTrainedTokenizerFast of a real tokenizer family, so bos_token/eos_token and every other variable are
what a user of that model gets. Templates come from two places:
 * shipped: the chat_template of a family's tokenizer_config.json (llama3, llama3_1, qwen3, qwen2_5,
   gemma3, deepseek_v3);
 * written here: Jinja sources for widely used prompt formats (llama2, mistral, chatml, gemma, alpaca, phi3,
   phi3_5, phi4, phi4_mini), composed for qtune from the formats' public descriptions; each fixture stores its
   source. The Phi ones also store the model's published template (published_jinja), which must render every
   conversation the written source accepts identically (the written ones refuse roles the published ones drop).
Masks: the same template with {% generation %} marks around each assistant turn's output
(chat_template_cases.marked), rendered by apply_chat_template(messages, tokenize=True, return_dict=True,
return_assistant_tokens_mask=True) on the family's tokenizer; the ids of the unmarked template are stored
beside them, so the test also sees that marking changed nothing.

Usage: HF_HUB_OFFLINE=1 python3 scripts/make_chat_template_fixtures.py --out DIR
  The tokenizer files are read from QTUNE_TOKENIZERS or ../shared/fixtures/tokenizers (scripts/tokenizer_files.py).
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chat_template_cases  # noqa: E402
import fixture_json  # noqa: E402
import tokenizer_files  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import jinja2  # noqa: E402
import tokenizers  # noqa: E402
import transformers  # noqa: E402
from make_tokenizer_fixtures import special_token_text, transformers_tokenizer  # noqa: E402

RENDERER = (f"transformers {transformers.__version__} (jinja2 {jinja2.__version__}) "
            "PreTrainedTokenizerFast.apply_chat_template(messages, tokenize=False, add_generation_prompt)")

# template -> the family whose tokenizer renders it, and for written templates the Jinja source and format.
SHIPPED = {name: name for name in ("llama3", "llama3_1", "qwen3", "qwen2_5", "gemma3", "deepseek_v3")}
WRITTEN = {
    "llama2": ("llama2", chat_template_cases.LLAMA2, "Llama-2-chat"),
    "mistral": ("llama2", chat_template_cases.MISTRAL, "Mistral-7B-Instruct v0.1/v0.2"),
    "chatml": ("qwen3", chat_template_cases.CHATML, "ChatML"),
    "gemma": ("gemma", chat_template_cases.GEMMA, "Gemma instruct"),
    "alpaca": ("llama2", chat_template_cases.ALPACA, "Alpaca (instruction/response)"),
    "phi3": ("qwen3", chat_template_cases.PHI3, "Phi-3 mini instruct"),
    "phi3_5": ("qwen3", chat_template_cases.PHI3_5, "Phi-3.5 mini instruct"),
    "phi4": ("qwen3", chat_template_cases.PHI4, "Phi-4"),
    "phi4_mini": ("gptoss", chat_template_cases.PHI4_MINI, "Phi-4-mini instruct"),
}
# The real models' bos/eos strings where the rendering family's differ (from their tokenizer_config.json). Each
# rendering family has them as tokens already, so tokenizing adds no id that qtune's copy of the tokenizer lacks:
# Phi-3's own tokenizer is Llama 2's plus added tokens, but Llama 2's vocabulary has no <|endoftext|>.
TOKENS = {
    "phi3": {"eos_token": "<|endoftext|>"},
    "phi3_5": {"eos_token": "<|endoftext|>"},
    "phi4": {"bos_token": "<|endoftext|>", "eos_token": "<|im_end|>"},
    "phi4_mini": {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>"},
}


def load_family(family):
    folder = tokenizer_files.family_dir(family)
    with open(os.path.join(folder, "tokenizer_config.json"), encoding="utf-8") as f:
        config = json.load(f)
    return folder, config


def render_all(tokenizer):
    """Every conversation with each of its add_generation_prompt values: (cases, rejected)."""
    cases, rejected = [], []
    for conversation in chat_template_cases.CONVERSATIONS:
        for add_generation_prompt in conversation["agp"]:
            entry = {"name": conversation["name"], "messages": conversation["messages"], "add_generation_prompt": add_generation_prompt}
            try:
                entry["rendered"] = tokenizer.apply_chat_template(conversation["messages"], tokenize=False,
                                                                  add_generation_prompt=add_generation_prompt)
                cases.append(entry)
            except jinja2.TemplateError as error:
                entry["error"] = str(error)
                rejected.append(entry)
    return cases, rejected


def masks_all(tokenizer, marked_jinja, cases):
    """ids and assistant_masks of every rendered conversation without a generation prompt (a training
    sample), by the marked template; `unmarked_ids`: the original template's ids."""
    masks = []
    for case in cases:
        if case["add_generation_prompt"]:
            continue
        out = tokenizer.apply_chat_template(case["messages"], chat_template=marked_jinja, tokenize=True, return_dict=True,
                                            return_assistant_tokens_mask=True)
        unmarked = tokenizer.apply_chat_template(case["messages"], tokenize=True, return_dict=True)
        masks.append({"name": case["name"], "messages": case["messages"], "input_ids": list(out["input_ids"]),
                      "assistant_masks": list(out["assistant_masks"]), "unmarked_ids": list(unmarked["input_ids"])})
    return masks


def check_published(name, tokenizer, cases):
    """The published template renders every accepted conversation as the written source does."""
    published = chat_template_cases.PUBLISHED[name]
    for case in cases:
        text = tokenizer.apply_chat_template(case["messages"], chat_template=published, tokenize=False,
                                             add_generation_prompt=case["add_generation_prompt"])
        if text != case["rendered"]:
            raise SystemExit(f"{name}: the written template and the published one differ on {case['name']}:\n{text!r}\n{case['rendered']!r}")
    return {"published_jinja": published}


def build(name, family, jinja, source, out_dir):
    folder, config = load_family(family)
    config = dict(config, chat_template=jinja, **TOKENS.get(name, {}))
    tokenizer = transformers_tokenizer(folder, config)
    original = tokenizers.Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
    if len(tokenizer) != original.get_vocab_size(with_added_tokens=True):
        raise SystemExit(f"{name}: the bos/eos strings {TOKENS.get(name)} are not all tokens of {family}")
    cases, rejected = render_all(tokenizer)
    if name in chat_template_cases.PUBLISHED:
        source = dict(source, **check_published(name, tokenizer, cases))
    marked_jinja = chat_template_cases.marked(name, jinja)
    masks = masks_all(tokenizer, marked_jinja, cases)
    bos = special_token_text(config.get("bos_token"))
    fixture = dict(template=name, **source, renderer=RENDERER, jinja=jinja, bos_token=bos,
                   bos_id=tokenizer.convert_tokens_to_ids(bos) if bos else None, eos_token=special_token_text(config.get("eos_token")),
                   cases=cases, rejected=rejected, marked_jinja=marked_jinja,
                   masks_by="apply_chat_template(messages, chat_template=marked_jinja, tokenize=True, return_dict=True, "
                            "return_assistant_tokens_mask=True)", masks=masks)
    fixture_json.write_json(os.path.join(out_dir, f"{name}.json"), fixture)
    refused = sorted({r["name"] for r in rejected})
    trained = sum(sum(m["assistant_masks"]) for m in masks)
    print(f"{name}: {len(cases)} cases, {len(rejected)} rejected{' (' + ', '.join(refused) + ')' if refused else ''}; "
          f"{len(masks)} masks ({trained} assistant tokens)", file=sys.stderr)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for TEMPLATE.json")
    out_dir = parser.parse_args().out
    os.makedirs(out_dir, exist_ok=True)
    for name, family in SHIPPED.items():
        folder, config = load_family(family)
        source = {"source": "tokenizer_config.json", "tokenizer_config": f"{family}/tokenizer_config.json",
                  "tokenizer_config_sha256": tokenizer_files.sha256(os.path.join(folder, "tokenizer_config.json")),
                  "hf_repository": tokenizer_files.FAMILIES[family]}
        build(name, family, config["chat_template"], source, out_dir)
    for name, (family, jinja, fmt) in WRITTEN.items():
        build(name, family, jinja, {"source": "written for qtune", "format": fmt, "tokens_from": f"{family}/tokenizer_config.json"},
              out_dir)


if __name__ == "__main__":
    main()
