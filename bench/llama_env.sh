#!/usr/bin/env bash
# Builds llama-cpp-python into a bench-only virtualenv (.venv-bench by default).
#
# Why a separate environment: llama-cpp-python has no wheel on the registry and
# compiles llama.cpp from source (minutes on two cores), which must never sit on
# the default `make run` / `make test` path. bench/bench_decode.py looks for this
# environment and skips the llama.cpp side with a message when it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH_VENV="${BENCH_VENV:-.venv-bench}"
PYTHON="${PYTHON:-python3.11}"
LLAMA_CPP_VERSION="${LLAMA_CPP_VERSION:-0.3.16}"

if [ -x "$BENCH_VENV/bin/python" ] && "$BENCH_VENV/bin/python" -c "import llama_cpp" 2>/dev/null; then
  echo "bench env ready: $BENCH_VENV (llama-cpp-python $("$BENCH_VENV/bin/python" -c 'import llama_cpp; print(llama_cpp.__version__)'))"
  exit 0
fi
"$PYTHON" -m venv "$BENCH_VENV"
"$BENCH_VENV/bin/pip" install --quiet --upgrade pip
# CPU build, native instructions of this machine (the benchmark compares engines on
# the machine at hand), no server extras; `nice` keeps a shared box usable meanwhile.
export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=ON -DGGML_BLAS=OFF -DLLAMA_CURL=OFF}"
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}"
nice -n 10 "$BENCH_VENV/bin/pip" install --no-cache-dir "llama-cpp-python==$LLAMA_CPP_VERSION"
"$BENCH_VENV/bin/python" -c "import llama_cpp; print('bench env ready:', llama_cpp.__version__)"
