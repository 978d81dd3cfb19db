# The words people type. Everything runs from a virtualenv in .venv, created on first use; the SAM CLI
# has its own, .venv-sam: every aws-sam-cli release pins boto3 exactly (1.170.0: boto3==1.43.108), which
# cannot sit beside the boto3==1.44.8 the project pins.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SAM_VENV := .venv-sam
SAM := $(SAM_VENV)/bin/sam
SAM_CLI_VERSION := 1.170.0
STUDENTS ?= 20000
SIZES ?= 10000 100000
PROVIDER ?= clever

# Test workers: one per core, each with its own embedded stack. --dist loadfile keeps a test file on one
# worker, so a module-scoped fixture (a district synced three nights) is built once, not once per worker
# (--dist loadgroup would not: pytest-xdist 3.8 renames the node ids after pytest 9.2 has read them, so
# its groups never reach the scheduler). The end-to-end tier runs in a pytest process of its own: the
# integration tier's moto mock_aws resets every moto backend of its process, the embedded stack's too.
# One worker per core for every tier: the end-to-end tier's requests to the embedded stack run in the
# sending thread (no socket, rostersync_tools/local/in_process.py), so its workers wait far less. Measured on
# 2 cores, tests/e2e: 2 workers took 252 s with 420 s of CPU (one run), 4 workers 210-264 s (six runs) with
# 487-514 s of CPU (the three measured): each worker starts its own stack and builds its own module
# fixtures, so the same wall time costs more CPU, which a machine already busy does not have.
# E2E_WORKERS sets the end-to-end tier's alone.
WORKERS ?= auto
E2E_WORKERS ?= $(WORKERS)
PYTEST_ARGS := -p no:cacheprovider --dist loadfile
PYTEST := $(BIN)/python -m pytest $(PYTEST_ARGS) -n $(WORKERS)

.PHONY: install demo test test-fast lint bench bench-scale bench-map chaos build deploy clean

$(BIN)/.installed: pyproject.toml layers/core/pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("rostersync needs Python 3.11 or newer") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --editable layers/core --editable ".[dev]"
	touch $@

# cfn-lint pinned as in pyproject.toml, so `sam validate --lint` and the template tests agree.
$(SAM_VENV)/.installed: Makefile
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/python -m pip install --quiet aws-sam-cli==$(SAM_CLI_VERSION) cfn-lint==1.58.0
	touch $@

## install: .venv (both packages, editable, with the dev tools) and .venv-sam (the SAM CLI)
install: $(BIN)/.installed $(SAM_VENV)/.installed

## demo: sync the bundled Clever demo district (three nights) on the embedded local stack
demo: install
	$(BIN)/rostersync demo --self-check --out out/demo

## test: unit, integration, template (with `sam validate --lint` and a layer build) and end-to-end tests,
## in parallel; prints the 10 slowest
# One tier after the other. Side by side (the other tiers in a pytest process beside the end-to-end
# tier's) was measured back to back on 2 cores and was not reliably faster: 274.6 s against 323.6 s one
# after the other in one pair, 304.2 s against 283.9 s in the next.
test: install
	$(PYTEST) --durations=10 tests/unit tests/integration tests/template; fast=$$?; \
	$(BIN)/python -m pytest $(PYTEST_ARGS) -n $(E2E_WORKERS) --durations=10 tests/e2e; e2e=$$?; \
	exit $$(( fast || e2e ))

## test-fast: unit and integration tests only, for the edit-run loop
test-fast: install
	$(PYTEST) tests/unit tests/integration

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## bench: full sync of a synthetic district (STUDENTS=20000) on the embedded stack, with figures per step
## (time, invocations, records in and out, peak memory), the write and read floors and the counted cost
bench: install
	$(BIN)/python bench/bench_sync.py --students $(STUDENTS) --provider $(PROVIDER)

## bench-scale: the benchmark at each of SIZES="10000 100000" students (a timed process, a traced one, and one
## tracing the people phase on the unchanged re-sync);
## per step, time and peak memory per record and the ratio largest/smallest; RESULTS=dir keeps each run's
## figures (100k: its timed run outgrew 18 GB on a 24 GiB machine; docs/SCALE.md says what it took)
bench-scale: install
	$(BIN)/python bench/bench_scale.py --sizes $(SIZES) --provider $(PROVIDER) $(if $(RESULTS),--results $(RESULTS))

## bench-map: the sync's Upsert Map over NYC's 2,000 chunks on the embedded stack (`make test` runs 200)
bench-map: install
	UPSERT_MAP_CHUNKS=2000 $(BIN)/python -m pytest -p no:cacheprovider -s -q tests/e2e/test_upsert_map_at_scale.py

## chaos: the fault campaign (issue 9) on the embedded stack: crashes at every step and inside Upsert and
## Archive, provider faults, roster shrinks, concurrent runs, 10,000+ generated records; prints a table,
## fails if any record was lost or duplicated
chaos: install
	$(BIN)/python bench/chaos.py

## build: `sam build` into .aws-sam/build, no Docker: every function and the CoreLayer are built by
## their Makefiles (BuildMethod: makefile); the layer gets arm64/CPython 3.12 wheels (docs/DEPLOY.md)
build: install
	$(SAM) build

## deploy: `sam deploy --guided` to the AWS account of your credentials (docs/DEPLOY.md)
deploy: build
	$(SAM) deploy --guided

clean:
	rm -rf $(VENV) $(SAM_VENV) out .aws-sam
