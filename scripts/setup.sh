#!/usr/bin/env bash
# Installs what qtune needs on Debian 12: the Debian build packages with apt, then a Python virtual
# environment from scripts/requirements.txt (torch, whose LibTorch qtune builds against, and the reference
# libraries the tests compare with). Idempotent: an environment whose requirements did not change is reused.
# Usage: scripts/setup.sh [--runtime]   (--runtime: torch only, what the demos need)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=python_env.sh
source "$here/python_env.sh"
runtime_only=0
[ "${1:-}" != --runtime ] || runtime_only=1

packages=(
  build-essential cmake ninja-build pkg-config git ca-certificates
  libyaml-cpp-dev nlohmann-json3-dev libcli11-dev libpcre2-dev libicu-dev
  libsentencepiece-dev sentencepiece
  libgloo-dev                       # headers of LibTorch's c10d Gloo process group (data-parallel training)
  libgtest-dev libgmock-dev googletest libbenchmark-dev
  python3 python3-venv              # the virtual environment below
)
# The tests also open `qtune report` pages in a headless browser.
[ $runtime_only = 1 ] || packages+=(chromium)

sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} Debian packages already installed"
else
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -q
  "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The environment records what it was made from: the whole requirements file (tests) or its torch line
# (runtime). A full install satisfies a runtime request with the same torch.
requirements="$here/requirements.txt"
torch_pin=$(grep -E '^torch==' "$requirements")
full_stamp=$(sha256sum "$requirements" | cut -d ' ' -f 1)
if [ "$(cat "$QTUNE_VENV/.qtune-requirements" 2>/dev/null)" = "$full_stamp" ] ||
   { [ $runtime_only = 1 ] && [ "$(cat "$QTUNE_VENV/.qtune-torch" 2>/dev/null)" = "$torch_pin" ]; }; then
  echo "setup: Python environment $QTUNE_VENV is up to date"
  exit 0
fi
[ -x "$QTUNE_PYTHON" ] || { echo "setup: creating $QTUNE_VENV"; mkdir -p "$(dirname "$QTUNE_VENV")"; python3 -m venv "$QTUNE_VENV"; }
pip=("$QTUNE_PYTHON" -m pip install --disable-pip-version-check --progress-bar off)
if [ $runtime_only = 1 ]; then
  echo "setup: installing $torch_pin into $QTUNE_VENV (about 2.7 GB with its CUDA libraries)"
  "${pip[@]}" "$torch_pin"
else
  echo "setup: installing scripts/requirements.txt into $QTUNE_VENV (torch alone is about 2.7 GB)"
  "${pip[@]}" -r "$requirements"
  echo "$full_stamp" > "$QTUNE_VENV/.qtune-requirements"
fi
echo "$torch_pin" > "$QTUNE_VENV/.qtune-torch"
