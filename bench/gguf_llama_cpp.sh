#!/usr/bin/env bash
# qtune's GGUF export checked against llama.cpp itself (through llama-cpp-python, which vendors llama.cpp): a
# one-off bench, not part of CI. bench/gguf_llama_cpp.py's docstring says what it checks and how.
#
#   bench/gguf_llama_cpp.sh                       # llama (and qwen2) into runs/gguf-llama-cpp
#   bench/gguf_llama_cpp.sh --arch llama --out /tmp/g
#   LLAMA_CPP_PYTHON=/path/venv/bin/python bench/gguf_llama_cpp.sh   # an environment that has llama_cpp already
#
# Needs a built qtune (scripts/build_qtune.sh; QTUNE=path/to/qtune to use another binary). Without
# LLAMA_CPP_PYTHON it makes its own environment, ${XDG_CACHE_HOME:-~/.cache}/qtune/llama-cpp-venv (LLAMA_CPP_VENV
# moves it), with llama-cpp-python 0.3.36 built from its PyPI source package plus gguf 0.19.0 and numpy. That
# build compiles all of llama.cpp and takes long on 2 cores (about 10 minutes on the machine of bench/RESULTS.md,
# more on a slower or busier one), once; later runs reuse the environment.
# Results: a Markdown report on stdout and in OUT/report.md, the numbers in OUT/report.json.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
qtune=${QTUNE:-$root/build/trainer/qtune}
[ -x "$qtune" ] || { echo "error: no qtune binary at $qtune: run scripts/build_qtune.sh first (or set QTUNE)" >&2; exit 2; }

llama_cpp_version=0.3.36
make_llama_cpp_env() {  # make_llama_cpp_env DIR: a venv with llama_cpp (built from source), gguf and numpy
  echo "== making $1: llama-cpp-python $llama_cpp_version from source (compiles llama.cpp; long on 2 cores)" >&2
  python3 -m venv "$1"
  "$1/bin/pip" install --upgrade pip >&2
  CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) "$1/bin/pip" install --no-binary llama-cpp-python \
    "llama-cpp-python==$llama_cpp_version" "gguf==0.19.0" numpy >&2
}

if [ -n "${LLAMA_CPP_PYTHON:-}" ]; then
  python=$LLAMA_CPP_PYTHON
else
  venv=${LLAMA_CPP_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/qtune/llama-cpp-venv}
  python=$venv/bin/python
  "$python" -c "import llama_cpp, gguf, numpy" 2>/dev/null || make_llama_cpp_env "$venv"
fi
"$python" -c "import llama_cpp, gguf, numpy" || { echo "error: $python cannot import llama_cpp, gguf and numpy" >&2; exit 2; }
export GGUF_BENCH_COMMAND="bench/gguf_llama_cpp.sh $*"
exec "$python" "$root/bench/gguf_llama_cpp.py" --qtune "$qtune" "$@"
