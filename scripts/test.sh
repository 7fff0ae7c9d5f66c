#!/usr/bin/env bash
# Installs the dependencies, builds qtune and runs every test; then rebuilds with AddressSanitizer and
# runs the bad-input suites (corrupted checkpoints, configs) under it. Depends on: scripts/setup.sh.
# Environment: QTUNE_JOBS (default: all cores), QTUNE_SKIP_ASAN=1 to skip the sanitizer pass.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh
jobs=${QTUNE_JOBS:-$(nproc)}

echo "== build (Release)"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DQTUNE_CUDA=AUTO
cmake --build build -j "$jobs"
echo "== tests"
# The reference tokenizers were installed by setup.sh: their tests must run, not skip.
export QTUNE_REQUIRE_REFERENCE=1
ctest --test-dir build --output-on-failure -j "$jobs"

if [ "${QTUNE_SKIP_ASAN:-0}" != 1 ]; then
  echo "== bad-input tests under AddressSanitizer + UBSan"
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Release -DQTUNE_ASAN=ON -DQTUNE_CUDA=OFF
  cmake --build build-asan -j "$jobs" --target qtune qtune_tests qtune_data_tests
  # LibTorch itself is not instrumented; its one-time static allocations are not leaks of ours.
  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    ctest --test-dir build-asan --output-on-failure -j "$jobs" -R '^(BadInput|Safetensors|ModelConfig|HfTokenizer|Utf8|DatasetReader|DatasetSpec|Packing|Sentencepiece|ChatTemplate|SampleEncoder|DataCommands|TrainConfig|BlockwiseQuant|BnbFormat|Linear4bit|PairPacking|PreferenceLoss|FusedOps|ChunkedLogProbs|LayerStream|MemoryPlan|LayerCheckpoint)\.|^PreferenceRun\.BadPairs'
fi
