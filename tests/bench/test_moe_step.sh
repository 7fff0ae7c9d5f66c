#!/usr/bin/env bash
# ctest: bench/moe_step.sh end to end on the CPU with the tiny shape (hidden 64, 2 layers, 16 experts top 4; a few
# seconds): both models are written and trained, the table is printed with finite positive numbers, and the
# printed ratios are the quotients of the table's own columns. Usage: test_moe_step.sh QTUNE_BINARY SOURCE_DIR.
set -euo pipefail
qtune=$1 source_dir=$2
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
bash "$source_dir/bench/moe_step.sh" --shape tiny --seq 32 --steps 3 --warmup 1 --out "$out" --qtune "$qtune" | tee "$out/printed"
[ ! -e "$out/models/tiny-L2-moe" ] || { echo "the models should be deleted without --keep" >&2; exit 1; }
python3 - "$out/printed" "$out/moe_step.json" <<'PY'
import json, math, re, sys
printed = open(sys.argv[1]).read()
rows = {}
for line in printed.splitlines():
    cells = [c.strip() for c in line.strip("|").split("|")]
    if line.startswith("| tiny-L2-"):
        rows[cells[0]] = [float(c) for c in cells[1:]]
assert set(rows) == {"tiny-L2-moe", "tiny-L2-dense"}, printed
for name, values in rows.items():
    assert len(values) == 9 and all(math.isfinite(v) and v > 0 for v in values), (name, values)
    peak_rss, anon, mapped, size = values[3:7]
    assert anon <= peak_rss and mapped <= size, (name, values)  # anonymous RSS is part of the RSS; the file holds the mapped part
    step_s, tokens_per_s = values[0], values[1]
    # tokens/s is 32 tokens over the mean step time; the table gives both to 4 significant digits (each off by at
    # most 0.05%), so they agree within 0.1%.
    assert abs(32 / step_s - tokens_per_s) <= 1e-3 * tokens_per_s, (name, values)
ratio = float(re.search(r"MoE / dense step time: ([0-9.]+)", printed).group(1))
memory = float(re.search(r"MoE host memory \(max of peak RSS, peak anonymous \+ mapped\) / 4-bit size: ([0-9.]+)", printed).group(1))
# The printed ratios are the quotients of the columns (step times to 4 significant digits: within 0.1% + the ratio's 0.0005).
assert abs(ratio - rows["tiny-L2-moe"][0] / rows["tiny-L2-dense"][0]) <= 1e-3 * ratio + 5e-4, (ratio, rows)
assert abs(memory - max(rows["tiny-L2-moe"][7], rows["tiny-L2-moe"][8])) < 0.002, (memory, rows)
figures = json.load(open(sys.argv[2]))
# The memory ratio is max(peak RSS, peak anonymous + mapped) / checkpoint from the unrounded figures (the tiny columns'
# MiB are too coarse).
moe = figures["moe"]
host = max(moe["peak_rss_bytes"], moe["peak_anon_bytes"] + moe["mapped_bytes"])
assert abs(figures["memory_ratio"] - host / moe["checkpoint_bytes"]) < 1e-12, figures
assert abs(memory - figures["memory_ratio"]) < 5e-4, (memory, figures["memory_ratio"])
assert figures["moe"]["measured_steps"] == 2 and figures["moe"]["tokens_per_step"] == 32, figures["moe"]
# The MoE's file holds 16 experts x 3 projections per layer where the dense one holds one MLP 4 experts wide.
assert figures["moe"]["checkpoint_bytes"] > figures["dense"]["checkpoint_bytes"], figures
print("ok: MoE/dense step %.2f, MoE RSS/checkpoint %.0f (tiny: the process, not the weights)" % (ratio, memory))
PY
