VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: demo test lint bench clean

# The virtual environment, rebuilt whenever pyproject.toml changes.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

## demo: run the node's main job on the embedded default
demo: $(VENV)/.installed
	$(BIN)/xnode demo

## test: the whole test suite (the command CI runs)
test: $(VENV)/.installed
	$(BIN)/pytest

## lint: ruff and mypy
lint: $(VENV)/.installed
	$(BIN)/ruff check node tests bench tools
	$(BIN)/ruff format --check node tests bench tools
	$(BIN)/mypy

## bench: cryptographic floor and end-to-end throughput benchmarks
bench: $(VENV)/.installed
	$(BIN)/python bench/crypto_floor.py
	$(BIN)/python bench/throughput.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
