#!/usr/bin/env python3
# Writes the preference task: "parity of N" answered in one of two styles, UPPER ("EVEN"/"ODD", the
# chosen style) or lower ("even"/"odd", the rejected one). Deterministic (fixed seed). Files in OUT_DIR:
#   sft_mixed.jsonl   800 SFT conversations, each style half of the time (what a model learns before DPO)
#   pairs.jsonl       800 preference pairs: prompt, chosen = the UPPER answer, rejected = the lower answer
#                     (half of them) or the wrong UPPER answer (the other half: style must not cost correctness)
#   test_chosen.jsonl, test_rejected.jsonl   100 held-out prompts with the answer in each style
#                     (`qtune generate --prompts` reports the exact-match rate per style)
# Usage: scripts/make_preference_data.py OUT_DIR
import json
import os
import random
import sys

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rng = random.Random(1)
numbers = rng.sample(range(100000), 900)
train, test = numbers[:800], numbers[800:]


def answer(n):
    return "even" if n % 2 == 0 else "odd"


def wrong(n):
    return "odd" if n % 2 == 0 else "even"


def write(name, rows):
    with open(os.path.join(out, name), "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


write("sft_mixed.jsonl", [{"messages": [{"role": "user", "content": f"parity of {n}"},
                                        {"role": "assistant", "content": answer(n).upper() if rng.random() < 0.5 else answer(n)}]}
                          for n in train])
write("pairs.jsonl", [{"prompt": f"parity of {n}", "chosen": answer(n).upper(), "rejected": answer(n) if i % 2 == 0 else wrong(n).upper()}
                      for i, n in enumerate(train)])
write("test_chosen.jsonl", [{"prompt": f"parity of {n}", "expected": answer(n).upper()} for n in test])
write("test_rejected.jsonl", [{"prompt": f"parity of {n}", "expected": answer(n)} for n in test])
