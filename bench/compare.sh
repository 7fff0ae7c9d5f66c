#!/usr/bin/env bash
# qtune against transformers + PEFT + TRL, side by side in one run: bench/compare.py's docstring says what is
# measured and how. Needs a built qtune (scripts/build_qtune.sh, or scripts/test.sh) and qtune's Python
# environment (scripts/setup.sh); it installs and builds nothing itself.
#
#   bench/compare.sh                      # the CPU subset on a CPU machine, the whole matrix where torch sees a GPU
#   bench/compare.sh --only sft,512       # rows whose name has every word
#   bench/compare.sh --matrix smoke --check   # the smallest rows, both tools (what the ctest Bench.CompareSmoke runs)
# Results: a table on stdout and in OUT/table.md, one JSON line per row appended to OUT/compare.jsonl
# (OUT: --out, default runs/compare), each run's log and files in OUT/runs/.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$root/scripts/python_env.sh"
[ -x "$QTUNE_PYTHON" ] || { echo "error: no Python environment at $QTUNE_VENV: run scripts/setup.sh first" >&2; exit 2; }
export HF_HUB_OFFLINE=1
exec "$QTUNE_PYTHON" "$root/bench/compare.py" "$@"
