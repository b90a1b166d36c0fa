# The README's two commands are `make demo` and `make test`; both set up what they need.
# `make check` is the developer's quick loop: lint, types and the tests that need no process.
VENV   ?= .venv
PYTHON ?= python3
BIN    := $(VENV)/bin
# Test processes: two (pytest-xdist) on this project's 2-core machines.
WORKERS ?= 2

.PHONY: setup demo test check lint typecheck openapi clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,desk]'
	touch $@

setup: $(BIN)/.installed

# `make demo PEOPLE=100000` for another population size (default 20,000).
demo: setup
	$(BIN)/matchhub demo $(if $(PEOPLE),--people $(PEOPLE))

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

# Every tier, on SQLite and PostgreSQL, with the coverage figure.
test: setup
	bash scripts/ensure-services
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest -n $(WORKERS) --dist worksteal --cov=matchhub --cov-report=term:skip-covered

# Unit, service and API tiers on SQLite: no server, no subprocess, no PostgreSQL.
check: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	MATCHHUB_TEST_BACKENDS=sqlite $(BIN)/pytest -n $(WORKERS) --dist worksteal -q -m "not slow"

openapi: setup
	$(BIN)/matchhub openapi

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .coverage
