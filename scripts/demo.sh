#!/usr/bin/env bash
# The demo: installs the dependencies, builds qtune, makes the tiny built-in base model and a task it cannot
# do ("parity of N" -> even/odd), fine-tunes it with QLoRA (configs/tiny-qlora-sft.yaml), merges the
# adapter, and prints held-out exact-match accuracy before and after.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/build_qtune.sh

qtune=build/trainer/qtune
demo=runs/demo
rm -rf "$demo"
echo "== the base model: a random tiny Qwen2 with qtune's byte-level tokenizer"
$qtune init-model --arch qwen2 --out "$demo/base" --hidden 64 --layers 2 --heads 4 --kv-heads 2 --intermediate 128 \
  --dtype f32 --init-std 0.2 --seed 0 --byte-tokenizer
echo "== the task: 800 training conversations, 100 held-out prompts"
python3 scripts/make_demo_data.py "$demo/parity"
head -2 "$demo/parity/train.jsonl"

score() {  # score NAME ARGS...: held-out generations into $demo/NAME.jsonl; prints the exact-match line
  $qtune generate --prompts "$demo/parity/test.jsonl" --chat --max-new-tokens 6 "${@:2}" > "$demo/$1.jsonl"
  tail -n 1 "$demo/$1.jsonl"
}

echo "== before: the base model on the held-out prompts"
before=$(score before --model "$demo/base" --load-in-4bit)
echo "$before"
head -n 2 "$demo/before.jsonl"

echo "== qtune train configs/tiny-qlora-sft.yaml"
$qtune train configs/tiny-qlora-sft.yaml

echo "== after: base + adapter (no merge)"
after=$(score after --model "$demo/base" --adapter "$demo/adapter")
echo "$after"
head -n 2 "$demo/after.jsonl"

echo "== qtune merge, and the merged model"
$qtune merge --base "$demo/base" --adapter "$demo/adapter" --out "$demo/merged" --dtype f32
merged=$(score merged --model "$demo/merged")
echo "$merged"

echo "== qtune export: base + adapter as one GGUF file (llama.cpp / Ollama), read back by qtune generate"
$qtune export --model "$demo/base" --adapter "$demo/adapter" --out "$demo/model.q8_0.gguf" --type q8_0
gguf=$(score gguf --model "$demo/model.q8_0.gguf")
echo "$gguf"

echo
echo "held-out exact match, before fine-tuning: ${before#exact match: }"
echo "held-out exact match, after  (adapter):   ${after#exact match: }"
echo "held-out exact match, after  (merged):    ${merged#exact match: }"
echo "held-out exact match, after  (q8_0 GGUF): ${gguf#exact match: }"
echo "the run's report (curves, data, memory plan, config): $demo/adapter/report.html"
