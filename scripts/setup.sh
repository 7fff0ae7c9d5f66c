#!/usr/bin/env bash
# Installs every build and test dependency of qtune with apt (Debian 12). Idempotent.
# Depends on: apt-get, run as root or through sudo.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git ca-certificates
  libtorch-dev                      # LibTorch 1.13 (CPU)
  libyaml-cpp-dev libfmt-dev nlohmann-json3-dev libcli11-dev libpcre2-dev
  libsentencepiece-dev sentencepiece
  libgtest-dev libgmock-dev googletest libbenchmark-dev
  python3 python3-numpy             # independent reference for the parity fixtures
)

sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages already installed"
  exit 0
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -q
"${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
