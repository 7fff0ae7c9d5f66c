#!/usr/bin/env bash
# ctest: bench/offload_70b.sh end to end on the CPU with a 4-layer tiny shape (offload_base forced, the CPU
# has no budget): the streamed run's results line carries what the layer streaming moved, and the RTX 4090
# estimate is printed. Usage: test_offload_70b.sh QTUNE_BINARY SOURCE_DIR.
set -euo pipefail
qtune=$1 source_dir=$2
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
MODEL=tiny-4layers SEQ=64 STEPS=3 WARMUP=1 DEVICE=cpu OUT="$out" QTUNE="$qtune" bash "$source_dir/bench/offload_70b.sh" | tee "$out/printed"
grep -q "RTX 4090 estimate: " "$out/printed"
PYTHONPATH="$source_dir/bench" python3 - "$out/results.jsonl" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
assert len(lines) == 1, lines
r = lines[0]
assert r["status"] == "ok" and r["model"] == "tiny-4layers", r
# Steady state: each forward and backward copies the 2 layers the other pass did not leave in the slots.
assert r["offload_h2d_bytes_per_step"] > 0 and r["offload_h2d_gb_per_s"] > 0, r
assert r["offload_copy_hidden"] == 0, r  # nothing overlaps a CPU copy
assert any("2 slots for the streamed decoder layers" in l for l in r["plan"]), r["plan"]
print("ok: %.0f bytes streamed per step" % r["offload_h2d_bytes_per_step"])
PY
