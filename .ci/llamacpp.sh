#!/usr/bin/env bash
# llama-cpp-python, the default serving engine (ASSISTANT_BACKEND=auto answers with llama.cpp
# where it is installed), installed into Strata's own virtualenv (it shares numpy and nothing
# else). .ci/setup.sh runs this on every setup, so `make run`, `make test` and the Dockerfile
# all get it.
#   bash .ci/llamacpp.sh install    build once, then install (idempotent)
# It has no wheel on the registry and compiles llama.cpp from source (~5-10 minutes on two
# cores; a line every minute says how long it has run), so the built wheel is kept outside
# the checkout (STRATA_WHEELS, default ~/.cache/strata/wheels): a fresh clone on the same
# machine installs it in seconds. Without a compiler the build fails; the app then answers
# with the local generator and says why (`assistant models`).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV=${VENV:-$ROOT/.venv}
VERSION=0.3.16
WHEELS=${STRATA_WHEELS:-$HOME/.cache/strata/wheels}

# CPU build for the machine at hand, without OpenMP: torch ships its own libgomp under the
# same name, so an OpenMP llama.cpp shared torch's thread runtime, and once torch had run a
# parallel operation, llama.cpp decoding from another thread (the backend's worker) slowed
# to about 60% (libgomp stops spinning when its threads outnumber the cores). ggml's own
# thread pool has no such tie. The flags name the wheel cache, so a change rebuilds.
CMAKE_ARGS=${CMAKE_ARGS:--DGGML_NATIVE=ON -DGGML_OPENMP=OFF -DGGML_BLAS=OFF -DLLAMA_CURL=OFF}
WHEELS=$WHEELS/llama-cpp-$(echo "$VERSION $CMAKE_ARGS" | sha256sum | cut -c1-12)
STAMP=$VENV/.strata-llamacpp-$(basename "$WHEELS")

build() {
  echo "llamacpp: compiling llama-cpp-python $VERSION once (about 5-10 minutes on two cores;" \
    "then cached in $WHEELS)"
  export CMAKE_ARGS
  export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}"
  local started=$SECONDS log
  log=$(mktemp)
  nice -n 10 "$VENV/bin/python" -m pip wheel --quiet --disable-pip-version-check --no-deps \
    --wheel-dir "$WHEELS" "llama-cpp-python==$VERSION" >"$log" 2>&1 &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null && sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "llamacpp: still compiling ($(( (SECONDS - started) / 60 )) min so far)"
    fi
  done
  if ! wait "$pid"; then
    tail -n 30 "$log" >&2
    rm -f "$log"
    echo "llamacpp: the build failed after $(( SECONDS - started )) s (a C++ compiler and" \
      "cmake are needed)" >&2
    return 1
  fi
  rm -f "$log"
  echo "llamacpp: compiled in $(( (SECONDS - started) / 60 )) min $(( (SECONDS - started) % 60 )) s"
}

install() {
  [[ -f "$STAMP" ]] && "$VENV/bin/python" -c "import llama_cpp" 2>/dev/null && return 0
  mkdir -p "$WHEELS"
  if ! ls "$WHEELS"/llama_cpp_python-"$VERSION"-*.whl >/dev/null 2>&1; then
    build
  fi
  rm -f "$VENV"/.strata-llamacpp-*
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --force-reinstall \
    --no-deps "$WHEELS"/llama_cpp_python-"$VERSION"-*.whl
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "diskcache>=5.6.1"
  touch "$STAMP"
  "$VENV/bin/python" -c "import llama_cpp; print('llamacpp: ready', llama_cpp.__version__)"
}

case "${1:-}" in
  install) install ;;
  *) echo "usage: bash .ci/llamacpp.sh install" >&2; exit 2 ;;
esac
