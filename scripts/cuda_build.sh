#!/usr/bin/env bash
# The GPU machine's run of the one build: the same CMake build CI makes (LibTorch from torch 2.11.0+cu130,
# kernels for sm_80/sm_90 compiled and linked), here against the GPU machine's own PyTorch, in build-cuda/;
# then the tests labelled `cuda` (ctest -L cuda, one at a time, failing rather than skipping without a GPU:
# QTUNE_REQUIRE_GPU=1), then all the others. Run on the GPU machine from anywhere in the repo. Its Debian
# build dependencies come from .deps/: on the CPU machine run `bash ../shared/device/fetch-deps.sh` first and
# carry .deps to the GPU machine; without .deps the packages must be installed there. Environment:
# QTUNE_CUDA_TESTS_ONLY=1 (stop after the CUDA tests), QTUNE_JOBS (default: all cores), QTUNE_BUILD_DIR
# (default build-cuda), QTUNE_CUDA_ARCHITECTURES (default 80;90).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
build=${QTUNE_BUILD_DIR:-build-cuda}
jobs=${QTUNE_JOBS:-$(nproc)}

# Check what use-deps.sh and CMake would otherwise fail on with less clear messages.
nvcc=${CUDACXX:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
[ -x "$nvcc" ] || { echo "error: no nvcc (looked for CUDACXX, nvcc on PATH, /usr/local/cuda/bin/nvcc): install the CUDA toolkit or set CUDACXX" >&2; exit 2; }
cuda=$(python3 -c 'import torch; print(torch.version.cuda or "")' 2>/dev/null) ||
  { echo "error: python3 cannot import torch: this script builds against the LibTorch inside the GPU machine's PyTorch" >&2; exit 2; }
[ -n "$cuda" ] || { echo "error: python3's torch ($(python3 -c 'import torch; print(torch.__version__)')) has no CUDA: install a CUDA build of PyTorch" >&2; exit 2; }

if [ -f .deps/use-deps.sh ]; then
  # shellcheck source=/dev/null
  source .deps/use-deps.sh  # unpacks the carried .debs into /tmp/deps, sets CMAKE_PREFIX_PATH (torch first) and the loader paths
else
  echo "note: no .deps/use-deps.sh: using the build dependencies installed on this machine"
  CMAKE_PREFIX_PATH="$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')${CMAKE_PREFIX_PATH:+;$CMAKE_PREFIX_PATH}"
  export CMAKE_PREFIX_PATH CUDACXX=$nvcc
fi

echo "== configure $build (torch $(python3 -c 'import torch; print(torch.__version__)'), CUDA $cuda, $("$nvcc" --version | tail -n 1))"
extra=()
[ -z "${QTUNE_CUDA_ARCHITECTURES:-}" ] || extra+=("-DQTUNE_CUDA_ARCHITECTURES=$QTUNE_CUDA_ARCHITECTURES")
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DQTUNE_CUDA=ON -DCMAKE_CUDA_COMPILER="$nvcc" \
  -DQTUNE_PYTHON="$(command -v python3)" "${extra[@]}"
echo "== build ($jobs jobs)"
start=$SECONDS
cmake --build "$build" -j "$jobs"
build_s=$((SECONDS - start))

# Both test runs are reported even when the first fails.
echo "== CUDA tests (ctest -L cuda)"
cuda_rc=0
QTUNE_REQUIRE_GPU=1 ctest --test-dir "$build" -L cuda --no-tests=error --output-on-failure || cuda_rc=$?
rest_rc=skipped
if [ "${QTUNE_CUDA_TESTS_ONLY:-0}" != 1 ]; then
  echo "== all other tests (ctest -LE cuda)"
  rest_rc=0
  HF_HUB_OFFLINE=1 ctest --test-dir "$build" -LE cuda --output-on-failure -j "$jobs" || rest_rc=$?
fi

verdict() { case "$1" in 0) echo passed ;; skipped) echo "skipped (QTUNE_CUDA_TESTS_ONLY=1)" ;; *) echo "FAILED (ctest exit $1)" ;; esac; }
echo "== summary"
echo "gpu:         $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo 'nvidia-smi not available')"
echo "build:       $build in ${build_s} s with $jobs jobs"
echo "cuda tests:  $(verdict "$cuda_rc")"
echo "other tests: $(verdict "$rest_rc")"
[ "$cuda_rc" = 0 ] && { [ "$rest_rc" = 0 ] || [ "$rest_rc" = skipped ]; }
