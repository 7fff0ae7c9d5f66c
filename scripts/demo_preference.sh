#!/usr/bin/env bash
# The preference demo: on the tiny built-in model, "parity of N" answered in UPPER case (chosen) or lower
# case (rejected). (1) SFT on both styles mixed (configs/tiny-sft-mixed-style.yaml), then DPO from that
# adapter (configs/tiny-dpo.yaml); (2) ORPO in one stage from the bare base (configs/tiny-orpo.yaml).
# Prints, for held-out prompts, how often greedy generation gives exactly the chosen (UPPER, correct)
# and the rejected (lower) answer, before and after. About 30 seconds on 2 CPU cores once built.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/build_qtune.sh

qtune=build/trainer/qtune
demo=runs/preference
rm -rf "$demo"
$qtune init-model --arch qwen2 --out "$demo/base" --hidden 64 --layers 2 --heads 4 --kv-heads 2 --intermediate 128 \
  --dtype f32 --init-std 0.2 --seed 0 --byte-tokenizer
python3 scripts/make_preference_data.py "$demo"
head -n 2 "$demo/pairs.jsonl"

rates() {  # rates ARGS...: "chosen N%, rejected M%" of held-out greedy answers that equal each style exactly
  local c r
  c=$($qtune generate --prompts "$demo/test_chosen.jsonl" --chat --max-new-tokens 6 "$@" | tail -n 1)
  r=$($qtune generate --prompts "$demo/test_rejected.jsonl" --chat --max-new-tokens 6 "$@" | tail -n 1)
  echo "chosen style ${c#exact match: }, rejected style ${r#exact match: }"
}

echo "== SFT on both styles mixed: qtune train configs/tiny-sft-mixed-style.yaml"
$qtune train configs/tiny-sft-mixed-style.yaml
after_sft=$(rates --model "$demo/base" --adapter "$demo/sft")
echo "== DPO from the SFT adapter (the reference model): qtune train configs/tiny-dpo.yaml"
$qtune train configs/tiny-dpo.yaml
after_dpo=$(rates --model "$demo/base" --adapter "$demo/dpo")

before_orpo=$(rates --model "$demo/base" --load-in-4bit)
echo "== ORPO from the bare base: qtune train configs/tiny-orpo.yaml"
$qtune train configs/tiny-orpo.yaml
after_orpo=$(rates --model "$demo/base" --adapter "$demo/orpo")

eval_accuracy() {  # the last held-out rewards/accuracies in a run's metrics.jsonl
  python3 -c 'import json,sys; print([json.loads(l) for l in open(sys.argv[1]) if "eval_rewards/accuracies" in l][-1]["eval_rewards/accuracies"])' "$1"
}
echo
echo "held-out greedy answers (exact match with each style):"
echo "  after SFT on mixed styles: $after_sft"
echo "  after DPO:                 $after_dpo   (held-out rewards/accuracies $(eval_accuracy "$demo/dpo/metrics.jsonl"))"
echo "  base model:                $before_orpo"
echo "  after ORPO:                $after_orpo   (held-out rewards/accuracies $(eval_accuracy "$demo/orpo/metrics.jsonl"))"
