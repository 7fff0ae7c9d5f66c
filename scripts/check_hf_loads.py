#!/usr/bin/env python3
# Checks that model folders written by `qtune init-model` load in HF transformers with no missing or
# unexpected weights and give finite logits. Depends on: torch, transformers (run where they exist).
"""Usage: python3 scripts/check_hf_loads.py [--qtune build/trainer/qtune] [--work /tmp/qtune-hf-check]

Writes one small model per architecture with qtune, loads each with AutoModelForCausalLM, and exits
non-zero with a message for the first one that does not load cleanly."""
import argparse
import os
import subprocess
import sys

import torch
from transformers import AutoConfig, AutoModelForCausalLM

ARCHS = {"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM", "qwen2": "Qwen2ForCausalLM",
         "qwen3": "Qwen3ForCausalLM"}


def check(qtune, work, arch, extra):
    """Writes one model with qtune and loads it with transformers; returns a list of problems."""
    out = os.path.join(work, arch + ("-sharded" if "--max-shard-gb" in extra else ""))
    subprocess.run([qtune, "init-model", "--arch", arch, "--out", out, "--force", "--hidden", "64", "--layers", "2",
                    "--heads", "4", "--vocab", "300"] + extra, check=True)
    config = AutoConfig.from_pretrained(out)
    problems = []
    if type(config).__name__.replace("Config", "ForCausalLM") != ARCHS[arch]:
        problems.append(f"{out}: config class {type(config).__name__}")
    model, info = AutoModelForCausalLM.from_pretrained(out, output_loading_info=True, dtype=torch.float32)
    for key in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs"):
        if info.get(key):
            problems.append(f"{out}: {key} = {info[key]}")
    if type(model).__name__ != ARCHS[arch]:
        problems.append(f"{out}: loaded as {type(model).__name__}")
    with torch.no_grad():
        logits = model(torch.arange(3, 13).unsqueeze(0)).logits
    if not torch.isfinite(logits).all():
        problems.append(f"{out}: non-finite logits")
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--qtune", default="build/trainer/qtune")
    parser.add_argument("--work", default="/tmp/qtune-hf-check")
    args = parser.parse_args()
    problems = []
    for arch in ARCHS:
        problems += check(args.qtune, args.work, arch, [])
    problems += check(args.qtune, args.work, "llama", ["--max-shard-gb", "0.0001"])
    for p in problems:
        print("FAIL", p)
    print("all init-model outputs load in transformers" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
