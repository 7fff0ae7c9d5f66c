#!/usr/bin/env bash
# ctest: bench/train_throughput.sh end to end on the CPU with the tiny shape (3 steps, a few seconds): one
# results line with status ok, positive tokens/s and MFU, and the FLOPs of the shared formula.
# Usage: test_train_throughput.sh QTUNE_BINARY SOURCE_DIR.
set -euo pipefail
qtune=$1 source_dir=$2
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
MODEL=tiny SEQ=64 STEPS=3 WARMUP=1 DEVICE=cpu OUT="$out" QTUNE="$qtune" bash "$source_dir/bench/train_throughput.sh"
PYTHONPATH="$source_dir/bench" python3 - "$out/results.jsonl" <<'PY'
import json, sys
import throughput_common as t
lines = [json.loads(l) for l in open(sys.argv[1])]
assert len(lines) == 1, lines
r = lines[0]
assert r["tool"] == "qtune" and r["status"] == "ok", r
assert r["tokens_per_s"] > 0 and r["mfu"] > 0 and r["measured_steps"] == 2, r
assert r["tokens_per_step"] == 64, r  # rows of exactly SEQ tokens
assert r["flops_per_token"] == t.flops_per_token(t.shape("tiny"), 64), r
print("ok: %.0f tokens/s" % r["tokens_per_s"])
PY
