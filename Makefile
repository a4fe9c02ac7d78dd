# leanline: `make run` and `make test` set everything up on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
CONFIG ?= configs/taxi.yaml
PYTEST_ARGS ?=

.PHONY: setup run test test-quick lint format benchmarks clean

setup:
	@bash scripts/bootstrap

run: setup
	$(VENV)/bin/leanline run --config $(CONFIG)

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

test-quick: setup
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

benchmarks: run
	$(PY) -m benchmarks.compression
	$(PY) -m benchmarks.pipeline
	$(PY) -m benchmarks.inference --config $(CONFIG)

clean:
	rm -rf output .pytest_cache
