#!/usr/bin/env bash
# Installs what qtune needs to run (scripts/setup.sh without the test references) and builds the qtune
# binary (Release, build/trainer/qtune). Used by the demos. Depends on: scripts/setup.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
QTUNE_SETUP_NO_REFERENCE=1 bash scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j "${QTUNE_JOBS:-$(nproc)}" --target qtune
