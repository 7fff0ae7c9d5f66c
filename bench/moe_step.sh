#!/usr/bin/env bash
# A mixture-of-experts training step against a dense model with the same active parameters (issue 23), on the
# CPU at a short sequence. Two random models written straight in NF4 + double quantization (bf16 otherwise,
# untied, qtune's byte tokenizer): a Qwen3-30B-A3B-shaped qwen3_moe (hidden 2048, 48 layers, 32 heads, 4 KV
# heads, head_dim 128, 128 experts, top 8, moe_intermediate 768, vocab 151936) and a qwen3 of the same sizes
# whose one MLP is 8 experts wide (intermediate 8 x 768 = 6144): per token both run the same projections.
# Each trains STEPS steps of one row of SEQ random characters (one token each) with `qtune train`: QLoRA r=16
# alpha 32 dropout 0 on q/k/v/o_proj only, micro-batch 1, gradient checkpointing on (as a recipe for a 48-layer
# model has it; --checkpointing off keeps every layer's activations).
# Reports the steady-state step time (the steps after the first WARMUP, step_time_s of metrics.jsonl),
# tokens/s, their ratio (target: MoE step <= 1.5x the dense step) and each run's memory against its 4-bit
# checkpoint's size on disk: peak RSS (/usr/bin/time %M) and peak anonymous RSS + the file's mapped bytes (every
# expert resident; the larger of the two is held to the target: MoE <= size + 20%; see moe_step_report.py).
#
# Usage: bench/moe_step.sh [flags]
#   bench/moe_step.sh --keep                          # the full shape; keep the models for the next run
#   bench/moe_step.sh --layers 8 --keep               # the full per-layer shape with 8 layers
#   bench/moe_step.sh --shape tiny --steps 3          # the CI smoke run (hidden 64, 2 layers, seconds)
# Flags (or the variables): --shape SHAPE (qwen3-30b-a3b | tiny), --layers LAYERS (the shape's), --seq SEQ (128),
#   --steps STEPS (4), --warmup WARMUP (1), --out OUT (runs/bench_moe), --qtune QTUNE (build/trainer/qtune),
#   --checkpointing CHECKPOINTING (on | off; on), --keep (KEEP=1: leave the models in OUT/models for the next run;
#   without it they are deleted at the end).
# LibTorch runs on all cores unless OMP_NUM_THREADS is set (the table's title says which); on a busy machine
# OMP_NUM_THREADS=1 avoids threads spinning at barriers while the other is descheduled (see bench/RESULTS.md).
# Models already in OUT/models (a complete config.json + safetensors) are reused, not rewritten.
# Prints one table and writes it as JSON to OUT/moe_step.json; logs stay in OUT/runs/<model>/.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)

SHAPE=${SHAPE:-qwen3-30b-a3b} LAYERS=${LAYERS:-} SEQ=${SEQ:-128} STEPS=${STEPS:-4} WARMUP=${WARMUP:-1}
OUT=${OUT:-$root/runs/bench_moe} QTUNE=${QTUNE:-$root/build/trainer/qtune} KEEP=${KEEP:-0} CHECKPOINTING=${CHECKPOINTING:-on}
while [ $# -gt 0 ]; do
  case "$1" in
    --shape) SHAPE=$2; shift 2 ;;
    --layers) LAYERS=$2; shift 2 ;;
    --seq) SEQ=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --qtune) QTUNE=$2; shift 2 ;;
    --checkpointing) CHECKPOINTING=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "error: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
# Sizes per shape: hidden layers heads kv_heads head_dim experts top_k moe_intermediate vocab.
case "$SHAPE" in
  qwen3-30b-a3b) read -r hidden layers heads kv head_dim experts top_k moe_inter vocab <<< "2048 48 32 4 128 128 8 768 151936" ;;
  tiny) read -r hidden layers heads kv head_dim experts top_k moe_inter vocab <<< "64 2 4 2 16 16 4 32 300" ;;
  *) echo "error: unknown --shape '$SHAPE'; use qwen3-30b-a3b or tiny" >&2; exit 2 ;;
esac
layers=${LAYERS:-$layers}
case "$CHECKPOINTING" in on) checkpointing=true ;; off) checkpointing=false ;; *) echo "error: --checkpointing must be on or off" >&2; exit 2 ;; esac
[ -x "$QTUNE" ] || { echo "error: no qtune binary at $QTUNE: build it (cmake --build build --target qtune) or pass --qtune" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "error: /usr/bin/time is missing (it measures the peak RSS): install the 'time' package" >&2; exit 2; }
[ "$WARMUP" -lt "$STEPS" ] || { echo "error: --warmup ($WARMUP) must be below --steps ($STEPS)" >&2; exit 2; }
mkdir -p "$OUT/models" "$OUT/runs" "$OUT/data"
OUT=$(cd "$OUT" && pwd)
moe="$SHAPE-L$layers-moe" dense="$SHAPE-L$layers-dense"

# write_model NAME ARCH SIZE_FLAGS...: init-model into OUT/models/NAME unless a complete one is there; the
# folder appears only when init-model succeeded, so an interrupted write is redone.
write_model() {
  local name=$1 arch=$2 dir="$OUT/models/$1"; shift 2
  rm -f "$OUT/runs/$name.init-time"  # init-model's figures are reported only by the run that wrote the model
  if [ -f "$dir/config.json" ] && ls "$dir"/*.safetensors > /dev/null 2>&1; then echo "reusing $dir"; return; fi
  rm -rf "$dir.partial"
  echo "init-model $arch -> $dir"
  /usr/bin/time -f "%e %M" -o "$OUT/runs/$name.init-time" "$QTUNE" init-model --arch "$arch" --out "$dir.partial" --hidden "$hidden" \
    --layers "$layers" --heads "$heads" --kv-heads "$kv" --head-dim "$head_dim" --vocab "$vocab" --untie --dtype bf16 --byte-tokenizer \
    --seed 0 --force --quantize nf4 --double-quant "$@" > /dev/null
  mv "$dir.partial" "$dir"
}
write_model "$moe" qwen3_moe --experts "$experts" --experts-per-token "$top_k" --moe-intermediate "$moe_inter" --intermediate $((top_k * moe_inter))
write_model "$dense" qwen3 --intermediate $((top_k * moe_inter))

# One row of exactly SEQ characters per step (each one token of the byte tokenizer; the EOS is cut off).
data="$OUT/data/seq$SEQ-rows$STEPS.jsonl"
[ -f "$data" ] || python3 -c "
import json, random, sys
rng = random.Random(0)
with open(sys.argv[1], 'w') as f:
    for _ in range(int(sys.argv[3])):
        f.write(json.dumps({'text': ''.join(rng.choice('abcdefghijklmnopqrstuvwxyz ') for _ in range(int(sys.argv[2])))}) + '\n')
" "$data" "$SEQ" "$STEPS"

# train NAME: one run; its log, metrics.jsonl and /usr/bin/time's "wall_s peak_rss_kb" in OUT/runs/NAME/.
train() {
  local name=$1 dir="$OUT/runs/$1"
  rm -rf "$dir" && mkdir -p "$dir"
  cat > "$dir/config.yaml" <<EOF
# bench/moe_step.sh: $name
base_model: $OUT/models/$name
datasets:
  - path: $data
    type: completion
dataset_prepared_path: $dir/prepared
sequence_len: $SEQ
sample_packing: false
overlong_samples: truncate
load_in_4bit: true
bnb_4bit_quant_type: nf4
bnb_4bit_use_double_quant: true
bnb_4bit_compute_dtype: bfloat16
bf16: true
adapter: qlora
lora_r: 16
lora_alpha: 32
lora_dropout: 0.0
lora_target_modules: [q_proj, k_proj, v_proj, o_proj]
micro_batch_size: 1
gradient_checkpointing: $checkpointing
gradient_accumulation_steps: 1
max_steps: $STEPS
learning_rate: 1.0e-4
lr_scheduler: constant
val_set_size: 0
eval_steps: 0
save_steps: 0
logging_steps: 1
output_dir: $dir/out
device: cpu
seed: 0
EOF
  echo "train $name ($STEPS steps of $SEQ tokens)"
  /usr/bin/time -f "%e %M" -o "$dir/time" "$QTUNE" train "$dir/config.yaml" > "$dir/log" 2>&1 &
  local timer=$!
  sample_rss "$timer" "$dir/rss"
  if ! wait "$timer"; then
    echo "error: qtune train failed for $name; the end of $dir/log:" >&2; tail -5 "$dir/log" >&2; exit 1
  fi
}

# sample_rss TIMER_PID FILE: the peak anonymous and file-backed RSS (kB, /proc/PID/status) of the process TIMER_PID
# (/usr/bin/time) runs, polled every 0.2 s until it ends, written to FILE as "anon_kb file_kb". The prequantized
# expert bank is mapped from the checkpoint, so its pages count (as file RSS) only once an expert has run: the
# report adds the whole mapped part of the file to the anonymous peak for the steady state.
sample_rss() {
  local timer=$1 file=$2 pid="" anon=0 mapped=0 a f
  while kill -0 "$timer" 2> /dev/null; do
    [ -n "$pid" ] || pid=$(pgrep -P "$timer" | head -1 || true)
    if [ -n "$pid" ] && read -r a f < <(awk '/^RssAnon/ {a = $2} /^RssFile/ {f = $2} END {print a + 0, f + 0}' "/proc/$pid/status" 2> /dev/null); then
      [ "$a" -gt "$anon" ] && anon=$a
      [ "$f" -gt "$mapped" ] && mapped=$f
    fi
    sleep 0.2
  done
  echo "$anon $mapped" > "$file"
}
train "$dense"
train "$moe"

python3 "$here/moe_step_report.py" "$OUT" "$moe" "$dense" "$WARMUP" "$SEQ" \
  "hidden $hidden, $layers layers, $heads/$kv heads x $head_dim, $experts experts top $top_k x $moe_inter, vocab $vocab"
[ "$KEEP" = 1 ] || rm -rf "${OUT:?}/models/$moe" "${OUT:?}/models/$dense"
