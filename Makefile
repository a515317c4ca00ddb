# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo test test-fast lint typecheck pytest clean bench

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: venv
	$(BIN)/steadyhand demo

lint: venv
	$(BIN)/ruff check src tests $(wildcard examples bench)
	$(BIN)/ruff format --check src tests $(wildcard examples bench)

# mypy strict over src/, a little looser over tests/ (see [tool.mypy] in pyproject.toml).
typecheck: venv
	$(BIN)/mypy

pytest: venv
	$(BIN)/pytest

test: lint typecheck pytest

# The pure tests and the store's conformance suite (both backends): seconds, for every edit.
test-fast: venv
	$(BIN)/pytest -q tests/unit tests/store

# Benchmarks side by side with DBOS and pgqueuer (issue 7), then every peer end to end
# (issue 16: DBOS, Absurd, pgqueuer, Temporal); not part of `make test`. `make bench
# BENCH_ARGS=--quick E2E_ARGS="--rounds 1"` for a short run; results go to bench/RESULTS.md.
bench: venv
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	$(BIN)/python -m bench.run $(BENCH_ARGS)
	$(BIN)/python -m bench.endtoend $(E2E_ARGS)

# Every system end to end, starts included (issue 16): steadyhand, DBOS, Absurd, pgqueuer,
# Temporal.
.PHONY: bench-e2e
bench-e2e: venv
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	$(BIN)/python -m bench.endtoend $(BENCH_ARGS)

# Code-first against the same saga declared with Steps, and decision time at 10/100/1,000
# steps (issue 14); appended to bench/RESULTS.md.
.PHONY: bench-codefirst
bench-codefirst: venv
	$(BIN)/python -m bench.codefirst $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build dist src/*.egg-info .mypy_cache .ruff_cache .pytest_cache

# Chaos runs (issue 6), the long version: 2,000 trips under hostile faults and 50+ worker
# kills per backend, with store disruptions (a PostgreSQL server restart included); the
# figures are written to docs/RELIABILITY.md. Not part of `make test` (tests/chaos is).
.PHONY: chaos
chaos: venv
	$(BIN)/steadyhand chaos --backend sqlite --report docs/RELIABILITY.md
	$(BIN)/steadyhand chaos --backend postgresql --report docs/RELIABILITY.md

# Losing the PostgreSQL primary (issue 19): 600 trips on a throwaway primary + synchronous
# standby (initdb/pg_basebackup on free loopback ports), the primary SIGKILLed mid-run and
# the standby promoted; figures into docs/RELIABILITY.md. tests/chaos/test_failover.py is
# the CI-sized version.
.PHONY: failover
failover: venv
	$(BIN)/steadyhand failover --report docs/RELIABILITY.md
