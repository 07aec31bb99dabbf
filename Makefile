# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SHARED_DATA := $(abspath ../shared/data)
ifneq ($(wildcard $(SHARED_DATA)),)
export NTKLC_DATA ?= $(SHARED_DATA)
endif
# Two cores on CI; keep BLAS and Numba from oversubscribing them.
export NUMBA_NUM_THREADS ?= 2

.PHONY: demo test test-all lint bench reproduce docs figures clean

$(BIN)/activate: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(BIN)/activate

demo: $(BIN)/activate
	$(BIN)/ntklc demo --out demo-output

reproduce: $(BIN)/activate
	$(BIN)/ntklc reproduce --quick --out reproduction

test: $(BIN)/activate
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/python -m pytest

test-all: $(BIN)/activate
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -m ''

lint: $(BIN)/activate
	$(BIN)/ruff check .
	$(BIN)/lint-imports

# The documentation site (Sphinx) in docs/_build/html, warnings as errors.
docs: $(BIN)/activate
	$(BIN)/pip install --quiet -e '.[docs]'
	$(BIN)/sphinx-build -W --keep-going -b html docs docs/_build/html

# Every figure of the documentation redrawn at quick sizes, into docs/_build/figures
# (python docs/make_figures.py --full: the pages' sizes, into docs/).
figures: $(BIN)/activate
	$(BIN)/python docs/make_figures.py

bench: $(BIN)/activate
	$(BIN)/python benchmarks/bench_theory.py
	$(BIN)/python benchmarks/bench_exact.py
	$(BIN)/python benchmarks/bench_tiles.py
	$(BIN)/python benchmarks/bench_cnn.py
	$(BIN)/python benchmarks/bench_import.py
	$(BIN)/python benchmarks/bench_spectrum.py
	$(BIN)/python benchmarks/bench_startup.py
	$(BIN)/python benchmarks/bench_solver.py
	$(BIN)/python benchmarks/bench_ternary.py
	$(BIN)/python benchmarks/bench_train.py
	$(BIN)/python benchmarks/bench_knapsack.py
	$(BIN)/python benchmarks/bench_hvp.py
	$(BIN)/python benchmarks/bench_sweep.py

clean:
	rm -rf $(VENV) demo-output reproduction runs .pytest_cache .hypothesis docs/_build docs/api
