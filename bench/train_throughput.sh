#!/usr/bin/env bash
# qtune's side of the training-throughput benchmark (issue 7; the HF transformers + PEFT side is
# bench/hf_peft_throughput.py, the shared arithmetic bench/throughput_common.py). For a random model of a
# given shape: QLoRA (NF4 + double quantization, bf16 compute on a GPU, fp32 on the CPU), LoRA r=16 alpha 32
# dropout 0 on all linear layers, gradient checkpointing, random text of exactly SEQ tokens per row, no
# evaluation or checkpoints. Reports steady-state tokens/s (tokens of the steps after the first WARMUP
# over their summed step_time_s from metrics.jsonl), MFU and the peak memory; or, with --max-seq, the
# longest sequence that trains at batch 1 under each memory limit.
#
#   MFU = tokens/s * flops_per_token / PEAK_FLOPS,  flops_per_token = 4*N + 6*L*S*D_attn
#   (N: decoder projections + lm_head; forward 2N + backward to the inputs 2N, no weight gradients of the
#   frozen base; causal attention forward 2*L*S*D_attn per token, backward twice that; recompute and LoRA's
#   own FLOPs not counted. Llama-3-8B, S=2048: N = 7,504,658,432, 3.163e10 FLOP/token.)
#
# Usage (from anywhere; variables or the equivalent flags):
#   bench/train_throughput.sh                                  # MODEL=llama3-8b SEQ=2048 BATCH=1 STEPS=20 WARMUP=5
#   MODEL=tiny SEQ=128 STEPS=3 WARMUP=1 bench/train_throughput.sh   # a CPU smoke run (seconds)
#   bench/offload_70b.sh                                       # the 70B shape under 22 GiB (layers streamed)
#   bench/train_throughput.sh --max-seq 24GiB 80GiB           # longest trainable SEQ at batch 1 under each limit
# Variables / flags: MODEL --model (llama3-8b | llama3-70b | tiny), SEQ --seq, BATCH --batch, STEPS --steps, WARMUP --warmup,
#   OUT --out (runs/bench_throughput), NAME --name (a suffix of the run's folder name), QTUNE --qtune (build-cuda/trainer/qtune where it exists, else
#   build/trainer/qtune), DEVICE --device (auto | cuda | cpu),
#   PEAK_FLOPS --peak-flops (989e12: H100 SXM / H200 bf16 dense), OVERRIDES --overrides ("key=value ..." for
#   qtune train, e.g. "activation_offloading=true"), max-seq search: MAX_SEQ_START (1024), MAX_SEQ_CAP (131072,
#   the model's positions), MAX_SEQ_STEP (256: bisection stops when the bracket is this narrow), MAX_SEQ_STEPS (3).
# Every run prints one summary line and appends one JSON line to OUT/results.jsonl (status ok | oom | error);
# logs and metrics stay in OUT/runs/<name>/. On a CPU device --max-seq applies each limit as `ulimit -v`
# (address space of the whole process: a smoke test of the search, not a GPU figure).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)

MODEL=${MODEL:-llama3-8b} SEQ=${SEQ:-2048} BATCH=${BATCH:-1} STEPS=${STEPS:-20} WARMUP=${WARMUP:-5}
QTUNE=${QTUNE:-$([ -x "$root/build-cuda/trainer/qtune" ] && echo "$root/build-cuda/trainer/qtune" || echo "$root/build/trainer/qtune")}
OUT=${OUT:-$root/runs/bench_throughput} DEVICE=${DEVICE:-auto}
PEAK_FLOPS=${PEAK_FLOPS:-989e12} OVERRIDES=${OVERRIDES:-} NAME=${NAME:-}
MAX_SEQ_START=${MAX_SEQ_START:-1024} MAX_SEQ_CAP=${MAX_SEQ_CAP:-131072} MAX_SEQ_STEP=${MAX_SEQ_STEP:-256} MAX_SEQ_STEPS=${MAX_SEQ_STEPS:-3}
limits=()
while [ $# -gt 0 ]; do
  case "$1" in
    --model) MODEL=$2; shift 2 ;;
    --seq) SEQ=$2; shift 2 ;;
    --batch) BATCH=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --qtune) QTUNE=$2; shift 2 ;;
    --device) DEVICE=$2; shift 2 ;;
    --peak-flops) PEAK_FLOPS=$2; shift 2 ;;
    --overrides) OVERRIDES=$2; shift 2 ;;
    --name) NAME=$2; shift 2 ;;
    --max-seq) shift; while [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; do limits+=("$1"); shift; done
               [ ${#limits[@]} -gt 0 ] || { echo "error: --max-seq needs at least one limit, e.g. --max-seq 24GiB 80GiB" >&2; exit 2; } ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "error: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[ -x "$QTUNE" ] || { echo "error: no qtune binary at $QTUNE: build it (cmake --build build --target qtune) or set QTUNE" >&2; exit 2; }
[ ${#limits[@]} -gt 0 ] || [ "$WARMUP" -lt "$STEPS" ] || { echo "error: WARMUP ($WARMUP) must be below STEPS ($STEPS)" >&2; exit 2; }
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
py() { PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}" python3 "$@"; }

# The model, once per shape: random weights in HF layout with qtune's byte tokenizer (every character of
# the ASCII text below is one token), the projections written straight in NF4 + double quantization (the
# 8B shape is then about 5.7 GB by arithmetic instead of 16 GB, and loading needs no quantization).
model_dir="$OUT/models/$MODEL"
if [ ! -f "$model_dir/config.json" ]; then
  read -r hidden layers heads kv inter vocab < <(py -c "import throughput_common as t; s=t.shape('$MODEL'); print(s['hidden'], s['layers'], s['heads'], s['kv_heads'], s['intermediate'], s['vocab'])")
  echo "init-model $MODEL -> $model_dir"
  "$QTUNE" init-model --arch llama --out "$model_dir" --hidden "$hidden" --layers "$layers" --heads "$heads" --kv-heads "$kv" \
    --intermediate "$inter" --vocab "$vocab" --untie --dtype bf16 --byte-tokenizer --seed 0 --force \
    --quantize nf4 --double-quant > /dev/null
fi

# run NAME SEQ BATCH STEPS WARMUP [LIMIT]: one training run; prints its summary line, appends its JSON line
# and sets run_status (ok | oom | error).
run() {
  local name=$1 seq=$2 batch=$3 steps=$4 warmup=$5 limit=${6:-}
  local dir="$OUT/runs/$name" data="$OUT/data/seq$2-rows$(($3 * $4)).jsonl"
  rm -rf "$dir" && mkdir -p "$dir" "$OUT/data"
  # Rows of exactly `seq` tokens: seq characters (+ the EOS completion adds), cut to sequence_len.
  [ -f "$data" ] || py -c "
import json, random, sys
rng = random.Random(0)
with open(sys.argv[1], 'w') as f:
    for _ in range(int(sys.argv[3])):
        f.write(json.dumps({'text': ''.join(rng.choice('abcdefghijklmnopqrstuvwxyz ') for _ in range(int(sys.argv[2])))}) + '\n')
" "$data" "$seq" $((batch * steps))
  cat > "$dir/config.yaml" <<EOF
# bench/train_throughput.sh: $name
base_model: $model_dir
datasets:
  - path: $data
    type: completion
dataset_prepared_path: $OUT/prepared
sequence_len: $seq
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
lora_target_linear: true
micro_batch_size: $batch
gradient_accumulation_steps: 1
max_steps: $steps
learning_rate: 1.0e-4
lr_scheduler: constant
gradient_checkpointing: true
val_set_size: 0
eval_steps: 0
save_steps: 0
logging_steps: 1
output_dir: $dir/out
device: $DEVICE
seed: 0
EOF
  local limit_args=() ulimit_kib=""
  if [ -n "$limit" ]; then
    if [ "$DEVICE" = cpu ]; then
      ulimit_kib=$(py -c "import sys, throughput_common as t; print(t.parse_size(sys.argv[1]) // 1024)" "$limit")
    else
      limit_args=("gpu_memory_limit=$limit")
    fi
  fi
  local rc=0
  # shellcheck disable=SC2086  # OVERRIDES is a list of key=value words
  ( [ -z "$ulimit_kib" ] || ulimit -v "$ulimit_kib"; exec "$QTUNE" train "$dir/config.yaml" "${limit_args[@]}" $OVERRIDES ) > "$dir/log" 2>&1 || rc=$?
  run_status=ok
  if [ $rc -ne 0 ]; then
    # qtune reports a CUDA (or host) out-of-memory error as one "error: out of memory: ..." line.
    if grep '^error:' "$dir/log" | grep -qiE 'out of memory|CUBLAS_STATUS_ALLOC_FAILED'; then run_status=oom; else run_status=error; fi
  fi
  py - "$dir" "$OUT" "$MODEL" "$seq" "$batch" "$steps" "$warmup" "$PEAK_FLOPS" "$run_status" "$rc" "$limit" "$OVERRIDES" "$DEVICE" "$QTUNE" <<'PY'
import json, os, subprocess, sys
import throughput_common as t
run_dir, out, model, seq, batch, steps, warmup, peak, status, rc, limit, overrides, device, qtune = sys.argv[1:]
seq, batch, steps, warmup, rc = int(seq), int(batch), int(steps), int(warmup), int(rc)
records = []
metrics = os.path.join(run_dir, "out", "metrics.jsonl")
if os.path.exists(metrics):
    records = [json.loads(l) for l in open(metrics) if l.strip()]
log = open(os.path.join(run_dir, "log"), errors="replace").read().splitlines()
errors = [l for l in log if l.startswith("error:")]
device_line = next((l for l in log if l.startswith("train ")), "")
fields = dict(status=status, exit_code=rc, steps=steps, warmup=warmup, peak_flops=float(peak), base="nf4-double-quant", gpu_memory_limit=limit or None,
              overrides=overrides or None, device_requested=device, run_dir=run_dir,
              train_line=device_line or None, error=errors[-1] if errors else (None if status == "ok" else (log[-1] if log else None)))
if status == "ok":
    tps, kept, seconds = t.steady_state(records, warmup)
    peaks = lambda key: max((r[key] for r in records if r.get(key) is not None), default=None)
    fields.update(tokens_per_s=tps, measured_steps=kept, measured_s=seconds,
                  mean_step_time_s=seconds / kept if kept else None,
                  tokens_per_step=records[-1]["tokens"] if records else None,
                  peak_allocated_bytes=peaks("device_peak_allocated_bytes"), peak_reserved_bytes=peaks("device_peak_reserved_bytes"),
                  peak_host_bytes=peaks("host_memory_bytes"), final_loss=records[-1]["loss"] if records else None,
                  plan_link_gb_per_s=t.plan_link_gb_per_s(log), plan=[l for l in log if l.startswith(("memory plan", "  "))] or None,
                  **t.offload_figures(records, warmup))
try:  # which GPU, where there is one
    fields["gpu_name"] = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                                        text=True).stdout.splitlines()[0].strip() if "cuda" in device_line else None
except (OSError, IndexError):
    fields["gpu_name"] = None
try:
    fields["qtune_commit"] = subprocess.run(["git", "-C", os.path.dirname(os.path.abspath(qtune)), "rev-parse", "--short", "HEAD"],
                                            capture_output=True, text=True).stdout.strip() or None
except OSError:
    pass
line = t.result_line("qtune", model, seq, batch, **fields)
t.append_result(out, line)
print(t.summary_text(line), flush=True)
PY
}

if [ ${#limits[@]} -eq 0 ]; then
  run "$MODEL-seq$SEQ-b$BATCH${NAME:+-$NAME}" "$SEQ" "$BATCH" "$STEPS" "$WARMUP"
  [ "$run_status" = ok ] || exit 1
  exit 0
fi

# --max-seq: at batch 1, double from MAX_SEQ_START while it trains, then bisect the bracket down to MAX_SEQ_STEP.
warm=$((MAX_SEQ_STEPS > 1 ? 1 : 0))
probe() { run "$MODEL-maxseq-$limit-seq$1" "$1" 1 "$MAX_SEQ_STEPS" "$warm" "$limit"; [ "$run_status" = ok ]; }  # probe SEQ
for limit in "${limits[@]}"; do
  good=0 bad=0 s=$MAX_SEQ_START
  while [ "$s" -le "$MAX_SEQ_CAP" ]; do
    if probe "$s"; then good=$s; s=$((s * 2)); else
      [ "$run_status" = oom ] || { echo "error: the run at seq $s failed for another reason than memory: see $OUT/runs/$MODEL-maxseq-$limit-seq$s/log" >&2; exit 1; }
      bad=$s; break
    fi
  done
  if [ "$good" -eq 0 ] && [ "$bad" -gt 0 ]; then  # even the first failed: halve down
    while [ "$good" -eq 0 ] && [ "$bad" -gt "$MAX_SEQ_STEP" ]; do
      s=$((bad / 2)); if probe "$s"; then good=$s; else [ "$run_status" = oom ] || exit 1; bad=$s; fi
    done
  fi
  while [ "$bad" -gt 0 ] && [ "$good" -gt 0 ] && [ $((bad - good)) -gt "$MAX_SEQ_STEP" ]; do
    s=$(((good + bad) / 2 / MAX_SEQ_STEP * MAX_SEQ_STEP)); [ "$s" -gt "$good" ] || break
    if probe "$s"; then good=$s; else [ "$run_status" = oom ] || exit 1; bad=$s; fi
  done
  py - "$OUT" "$MODEL" "$limit" "$good" "$bad" "$MAX_SEQ_CAP" "$MAX_SEQ_STEP" "$PEAK_FLOPS" "$DEVICE" <<'PY'
import sys
import throughput_common as t
out, model, limit, good, bad, cap, step, peak, device = sys.argv[1:]
good, bad, cap, step = int(good), int(bad), int(cap), int(step)
line = t.result_line("qtune", model, good, 1, mode="max_seq", status="ok", gpu_memory_limit=limit, max_seq=good,
                     first_failing_seq=bad or None, reached_cap=(bad == 0), max_seq_resolution=step, peak_flops=float(peak),
                     device_requested=device, limit_kind="host address space (ulimit -v)" if device == "cpu" else "cuda caching allocator")
t.append_result(out, line)
print("qtune %s max seq at batch 1 under %s: %d%s" % (model, limit, good,
      " (the cap, MAX_SEQ_CAP)" if bad == 0 else " (%d failed: out of memory)" % bad), flush=True)
PY
done
