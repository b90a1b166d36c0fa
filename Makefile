# The README's two commands are `make demo` and `make test`; both set up what they need.
VENV   ?= .venv
PYTHON ?= python3
BIN    := $(VENV)/bin

.PHONY: setup demo test lint typecheck openapi clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,desk]'
	touch $@

setup: $(BIN)/.installed

demo: setup
	$(BIN)/matchhub demo

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

test: setup
	bash scripts/ensure-services
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest --cov=matchhub --cov-report=term:skip-covered

openapi: setup
	$(BIN)/matchhub openapi

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .coverage
