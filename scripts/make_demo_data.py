#!/usr/bin/env python3
# Writes the demo task: "parity of N" -> "even"/"odd" for random N < 100000, 800 training conversations
# (OpenAI messages JSONL) and 100 held-out prompts with their answers. Deterministic (fixed seed).
# Usage: scripts/make_demo_data.py OUT_DIR
import json
import os
import random
import sys

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rng = random.Random(0)
seen, train, test = set(), [], []
while len(train) + len(test) < 900:
    n = rng.randint(0, 99999)
    if n in seen:
        continue
    seen.add(n)
    (train if len(train) < 800 else test).append((f"parity of {n}", "even" if n % 2 == 0 else "odd"))
with open(os.path.join(out, "train.jsonl"), "w") as f:
    for prompt, answer in train:
        f.write(json.dumps({"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]}) + "\n")
with open(os.path.join(out, "test.jsonl"), "w") as f:
    for prompt, answer in test:
        f.write(json.dumps({"prompt": prompt, "expected": answer}) + "\n")
