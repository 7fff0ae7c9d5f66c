#!/usr/bin/env bash
# Installs the dependencies, builds qtune (with its CUDA kernels compiled and linked when nvcc is there) and
# runs every test, the Python reference checks included; then rebuilds with AddressSanitizer and runs the
# bad-input suites under it. Prints how long each phase took.
# Environment: QTUNE_JOBS (default: all cores), QTUNE_SKIP_ASAN=1 to skip the sanitizer pass.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
jobs=${QTUNE_JOBS:-$(nproc)}
phases=()
phase_start=$SECONDS
end_phase() { phases+=("$(printf '%-8s %5d s' "$1" $((SECONDS - phase_start)))"); phase_start=$SECONDS; }

bash scripts/setup.sh
source scripts/python_env.sh
end_phase setup

echo "== build (Release)"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DQTUNE_PYTHON="$QTUNE_PYTHON"
cmake --build build -j "$jobs"
end_phase build

echo "== tests"
# The references (Python libraries, tokenizer files) are installed: their tests must run, not skip.
export QTUNE_REQUIRE_REFERENCE=1 HF_HUB_OFFLINE=1
ctest --test-dir build --output-on-failure -j "$jobs"
end_phase tests

if [ "${QTUNE_SKIP_ASAN:-0}" != 1 ]; then
  echo "== bad-input tests under AddressSanitizer + UBSan"
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Release -DQTUNE_ASAN=ON -DQTUNE_CUDA=OFF -DQTUNE_PYTHON="$QTUNE_PYTHON"
  cmake --build build-asan -j "$jobs" --target qtune qtune_asan_tests qtune_data_tests
  # That build registers only the hostile-input suites (tests/CMakeLists.txt). LibTorch itself is not
  # instrumented; its one-time static allocations are not leaks of ours.
  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    ctest --test-dir build-asan --output-on-failure -j "$jobs"
  end_phase asan
fi
echo "== time by phase"
printf '%s\n' "${phases[@]}"
