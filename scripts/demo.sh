#!/usr/bin/env bash
# The demo: installs the dependencies, builds qtune, writes the tiny built-in default model and
# inspects it. (Fine-tuning joins here once the SFT trainer lands.) Depends on: scripts/setup.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j "${QTUNE_JOBS:-$(nproc)}" --target qtune

qtune=build/trainer/qtune
out=${1:-runs/demo/tiny-llama}
echo "== qtune init-model --arch llama --out $out --force"
$qtune init-model --arch llama --out "$out" --force
echo "== qtune inspect $out"
$qtune inspect "$out"
