#!/usr/bin/env bash
# ctest: bench/compare.py's smallest rows (tiny shape, SFT and DPO at 64 tokens, NF4 base, 3 steps) for both
# tools, so the comparison script never rots. Asserts that every row has both sides, not any speed: both
# trained, on the same number of tokens per step, from the same start (the DPO loss is ln 2 on both sides
# before the first update, when the adapter's B is zero and the policy equals its reference).
# Usage: test_compare.sh QTUNE_BINARY SOURCE_DIR PYTHON.
set -euo pipefail
qtune=$1 source_dir=$2 python=$3
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$python" "$source_dir/bench/compare.py" --matrix smoke --check --qtune "$qtune" --out "$out"
"$python" - "$out" <<'PY'
import json, math, os, sys
out = sys.argv[1]
rows = [json.loads(l) for l in open(os.path.join(out, "compare.jsonl"))]
assert [r["task"] for r in rows] == ["sft", "dpo"], rows
for r in rows:
    q, h = r["qtune"], r["hf"]
    assert q["status"] == "ok" and h["status"] == "ok", (q.get("error"), h.get("error"))
    assert q["tokens_per_step"] == h["tokens_per_step"] and len(q["tokens_per_step"]) == 3, (q["tokens_per_step"], h["tokens_per_step"])
    assert all(r["ratios"][k] > 0 for k in ("tokens_per_s", "memory", "time_to_first_step")), r["ratios"]
    assert r["gemm_flops_per_s"]["fp32"] > 0 and r["gemm_flops_per_s"]["bf16"] > 0, r["gemm_flops_per_s"]
    if r["task"] == "dpo":
        assert abs(q["losses"][0] - math.log(2)) < 1e-6 and abs(h["losses"][0] - math.log(2)) < 1e-6, (q["losses"], h["losses"])
table = open(os.path.join(out, "table.md")).read()
assert "qtune tok/s" in table and "HF tok/s" in table and table.count("| tiny ") == 2, table
print("ok: both tools on %d rows, tokens per step %s" % (len(rows), [r["qtune"]["tokens_per_step"][0] for r in rows]))
PY
