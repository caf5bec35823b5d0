VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: demo test lint bench chaos clean

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

## bench: cryptographic floor, end-to-end throughput (and its scaling) and trust list benchmarks
bench: $(VENV)/.installed
	$(BIN)/python bench/crypto_floor.py
	$(BIN)/python bench/throughput.py
	$(BIN)/python bench/scale.py
	$(BIN)/python bench/trustlist.py
	$(BIN)/python bench/trustlist_spread.py --nodes 20

## chaos: nodes and broker as processes under load, killed and restarted at random (MINUTES=10)
MINUTES ?= 10
chaos: $(VENV)/.installed
	$(BIN)/python bench/chaos.py --minutes $(MINUTES) --nodes 3

## mutants: mutation testing of the pure core, survivors and kill rate per module (CHILDREN=2)
# Configured in pyproject.toml [tool.mutmut]; results are kept in mutants/ and reused while the
# code is unchanged (rm -rf mutants for a fresh run). See docs/mutation-testing.md.
CHILDREN ?= 2
define MUTANT_RATES
import json, pathlib
from mutmut.stats import status_by_exit_code as status
total = killed = 0
for meta in sorted(pathlib.Path("mutants").rglob("*.py.meta")):
    codes = list(json.loads(meta.read_text())["exit_code_by_key"].values())
    dead = sum(status[c] in ("killed", "timeout") for c in codes)
    total, killed = total + len(codes), killed + dead
    print(f"{str(meta)[8:-5]:28} {dead:5} / {len(codes):5} killed {100 * dead / len(codes):6.1f} %")
print(f"{'total':28} {killed:5} / {total:5} killed {100 * killed / max(total, 1):6.1f} %")
endef
export MUTANT_RATES
.PHONY: mutants
mutants: $(VENV)/.installed
	$(BIN)/mutmut run --max-children $(CHILDREN)
	$(BIN)/mutmut results
	@$(BIN)/python -c "$$MUTANT_RATES"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
