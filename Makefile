VENV ?= .venv
PY := $(VENV)/bin/python
export ANONYMIZED_TELEMETRY ?= False

.PHONY: run setup test test-fast test-scale lint bench bench-env clean

## make run: set everything up and start the app on http://localhost:7860
run: setup
	$(VENV)/bin/assistant serve

setup:
	@bash .ci/setup.sh

## make test: set up (with test tools), lint, and run every test tier
test:
	@bash .ci/setup.sh --test
	$(MAKE) --no-print-directory lint-only
	HF_HUB_OFFLINE=1 $(PY) -m pytest -ra --durations=15

## make lint: ruff on the whole tree and mypy on assistant/ (seconds)
lint:
	@bash .ci/setup.sh --test
	$(MAKE) --no-print-directory lint-only

lint-only:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

## make test-fast: unit tests only (seconds)
test-fast:
	@bash .ci/setup.sh --test
	HF_HUB_OFFLINE=1 $(PY) -m pytest -m "not integration and not e2e and not scale"

## make test-scale: the scale tier alone (starts a real vLLM server; minutes)
test-scale:
	@bash .ci/setup.sh --test
	HF_HUB_OFFLINE=1 $(PY) -m pytest -ra -m scale --durations=10

## make bench: benchmarks, JSON into bench/results/ (decode's llama.cpp side needs make bench-env)
bench: setup
	@[ -x .venv-bench/bin/python ] || echo "bench: no .venv-bench: decode runs without llama.cpp (make bench-env builds it, ~10 min)"
	$(PY) -m bench.run

## make bench-env: llama-cpp-python in .venv-bench for the decode comparison (compiles; not for make test)
bench-env:
	@bash bench/llama_env.sh

clean:
	rm -rf data .pytest_cache
