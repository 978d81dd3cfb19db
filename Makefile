# The words people type. Everything runs from a virtualenv in .venv, created on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STUDENTS ?= 20000
PROVIDER ?= clever

.PHONY: install demo test lint bench build deploy clean

$(BIN)/.installed: pyproject.toml layers/core/pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("rostersync needs Python 3.11 or newer") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --editable layers/core --editable ".[dev]"
	touch $@

install: $(BIN)/.installed

## demo: sync the bundled Clever demo district (three nights) on the embedded local stack
demo: install
	$(BIN)/rostersync demo --self-check --out out/demo

## test: unit, integration, template and end-to-end tests
test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## bench: full sync of a synthetic district (STUDENTS=20000) on the embedded stack, with figures
bench: install
	$(BIN)/python bench/bench_sync.py --students $(STUDENTS) --provider $(PROVIDER)

## build / deploy: on AWS, with the SAM CLI and credentials
build:
	sam build

deploy: build
	sam deploy --guided

clean:
	rm -rf $(VENV) out .aws-sam
