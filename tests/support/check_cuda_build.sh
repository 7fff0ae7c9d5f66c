#!/usr/bin/env bash
# ctest Build.CudaKernelsLinked: the qtune binary of a CUDA build links LibTorch's CUDA library and carries
# qtune's kernels (their host stubs, and device code for every requested architecture in its fat binary),
# and says so in `qtune --version`. Usage: check_cuda_build.sh QTUNE_BINARY "80;90"
set -euo pipefail
qtune=$1 archs=$2
fail() { echo "FAIL: $*"; exit 1; }
libraries=$(ldd "$qtune")  # whole, not piped into grep -q: an early exit would fail ldd under pipefail
grep -q 'libtorch_cuda\.so' <<<"$libraries" || fail "$qtune does not link libtorch_cuda.so"
stubs=$(nm "$qtune" | grep -c '__device_stub__' || true)
[ "$stubs" -gt 0 ] || fail "no kernel launch stubs in $qtune: the CUDA kernels are not linked"
echo "kernel launch stubs: $stubs"
# The fat binary records the ptxas options of each device code object it holds ("-arch sm_90 -m 64").
fatbin=$(mktemp)
trap 'rm -f "$fatbin"' EXIT
objcopy -O binary --only-section=.nv_fatbin "$qtune" "$fatbin"
for arch in ${archs//;/ }; do
  count=$(strings "$fatbin" | grep -c -- "-arch sm_$arch " || true)
  [ "$count" -gt 0 ] || fail "no sm_$arch device code in $qtune"
  echo "sm_$arch: $count device code objects"
done
version=$("$qtune" --version)
echo "$version"
grep -q "CUDA kernels for sm_${archs%%;*}" <<<"$version" || fail "qtune --version does not report the CUDA kernels"
