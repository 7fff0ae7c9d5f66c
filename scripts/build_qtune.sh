#!/usr/bin/env bash
# Installs what qtune needs to run (scripts/setup.sh --runtime: the Debian packages and torch, not the test
# references) and builds the qtune binary (Release, build/trainer/qtune). Used by the demos.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh --runtime
source scripts/python_env.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DQTUNE_PYTHON="$QTUNE_PYTHON"
cmake --build build -j "${QTUNE_JOBS:-$(nproc)}" --target qtune
