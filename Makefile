VENV ?= .venv
PY := $(VENV)/bin/python
export ANONYMIZED_TELEMETRY ?= False

.PHONY: run setup test test-fast test-scale lint bench llamacpp writer clean

## make run: set everything up (llama.cpp, the serving engine, compiles once: ~5-10 min)
## and start the app on http://localhost:7860
run: setup
	$(VENV)/bin/assistant serve

setup:
	@bash .ci/setup.sh

## make test: set up (with test tools), lint, and run every test tier
test:
	@bash .ci/setup.sh --test
	$(MAKE) --no-print-directory lint-only
	HF_HUB_OFFLINE=1 $(PY) -m pytest -ra --durations=15

## make lint: ruff on the whole tree and mypy on assistant/ and research/ (seconds)
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

## make bench: benchmarks, JSON into bench/results/
bench: setup
	$(PY) -m bench.run

## make llamacpp: llama-cpp-python in .venv, the default serving engine (compiles once,
## ~5-10 min; the wheel is kept in ~/.cache/strata/wheels; every setup does it, this alone too)
llamacpp: setup
	@bash .ci/llamacpp.sh install

## make writer: train the question writer (adapters/question-writer) that
## `assistant synth` uses, from the demo domains' hand-written questions (about an hour on 2 cores)
writer: setup
	$(VENV)/bin/assistant writer --name question-writer --overwrite

clean:
	rm -rf data .pytest_cache
