#!/usr/bin/env python3
# Writes N OpenAI-messages JSONL samples (system/user/assistant, 1-3 turns) cut from a text file, for the
# dataset-preparation benchmark.
# Usage: bench/make_chat_dataset.py TEXT_FILE N OUT.jsonl
import json
import random
import sys

text_file, count, out_path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
lines = [l for l in open(text_file, encoding="utf-8").read().split("\n") if l.strip()]
rng = random.Random(1234)
with open(out_path, "w", encoding="utf-8") as out:
    for _ in range(count):
        messages = [{"role": "system", "content": "You are a helpful assistant."}] if rng.random() < 0.5 else []
        for _ in range(rng.randint(1, 3)):
            messages.append({"role": "user", "content": rng.choice(lines)[:400]})
            messages.append({"role": "assistant", "content": " ".join(rng.choice(lines) for _ in range(rng.randint(1, 4)))[:1500]})
        out.write(json.dumps({"messages": messages}, ensure_ascii=False) + "\n")
