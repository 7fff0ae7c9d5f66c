#!/usr/bin/env bash
# Peak memory of a DPO step (policy + reference pass) against an SFT step on the same sequences: a
# 4-bit Llama-shaped model (hidden 1024, 8 layers, vocab 32000: the logits dominate, as in real models),
# 16 pairs with answers of equal length, B pairs per micro-batch for DPO/ORPO and the same 2·B sequences
# per micro-batch for SFT. Each recipe runs in its own process (build/bench/qtune_bench_step_memory), with
# glibc told to map every block above 64 KiB on its own (MALLOC_MMAP_THRESHOLD_) so that freed memory
# leaves the RSS at once and the peak is of live memory. SFT and DPO are compared at equal LoRA dropout
# (TRL's disable_dropout, on by default for preference runs, drops the dropout masks and copies).
# Usage: bench/preference_memory.sh [PAIRS_PER_BATCH (2)] [SEQUENCE_BYTES (384)].
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
pairs=${1:-2}
length=${2:-384}
dir=runs/bench_preference
rm -rf "$dir" && mkdir -p "$dir"
build/trainer/qtune init-model --arch llama --out "$dir/model" --hidden 1024 --layers 8 --heads 16 --kv-heads 4 --intermediate 2816 \
  --vocab 32000 --dtype bf16 --byte-tokenizer > /dev/null
python3 - "$dir" "$length" <<'PY'
import json, random, sys
out, length = sys.argv[1], int(sys.argv[2])
rng = random.Random(0)
text = lambda n: "".join(rng.choice("abcdefghij klmnop") for _ in range(n))
with open(f"{out}/pairs.jsonl", "w") as p, open(f"{out}/sft.jsonl", "w") as s:
    for _ in range(16):
        prompt, chosen, rejected = text(length // 4), text(length // 2), text(length // 2)
        p.write(json.dumps({"prompt": prompt, "chosen": chosen, "rejected": rejected}) + "\n")
        for answer in (chosen, rejected):
            s.write(json.dumps({"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]}) + "\n")
PY
common="base_model: model
chat_template: chatml
sequence_len: $((length + 64))
learning_rate: 0.0001
lora_r: 16
lora_dropout: 0.05
lora_target_linear: true
output_dir: out
device: auto
seed: 0"
printf '%s\ndatasets:\n  - path: sft.jsonl\n    type: chat_template\nmicro_batch_size: %d\n' "$common" $((2 * pairs)) > "$dir/sft.yaml"
printf '%s\ndatasets:\n  - path: pairs.jsonl\n    type: preference\nmicro_batch_size: %d\nrl: dpo\n' "$common" "$pairs" > "$dir/dpo.yaml"
run() {  # run LABEL CONFIG [key=value ...]: one step, one line "LABEL step_s step_increase_MB"
  MALLOC_MMAP_THRESHOLD_=65536 build/bench/qtune_bench_step_memory "${@:2}" | tail -n 1 |
    python3 -c 'import json,sys; r=json.load(sys.stdin); print("%-34s %7.2f s %8.0f MiB" % (sys.argv[1], r["step_s"], r["rss_step_increase"] / 2**20))' "$1"
}
echo "recipe                             step time  peak RSS above the loaded model"
run "sft (lora_dropout 0.05)" "$dir/sft.yaml"
run "dpo (lora_dropout 0.05)" "$dir/dpo.yaml" disable_dropout=false
run "sft (lora_dropout 0)" "$dir/sft.yaml" lora_dropout=0
run "dpo (dropout off: the default)" "$dir/dpo.yaml"
run "dpo, precompute_ref_log_probs" "$dir/dpo.yaml" precompute_ref_log_probs=true
run "orpo" "$dir/dpo.yaml" rl=orpo
run "sft, checkpointing, dropout 0" "$dir/sft.yaml" lora_dropout=0 gradient_checkpointing=true
run "dpo, checkpointing" "$dir/dpo.yaml" gradient_checkpointing=true
