# PHRX: two commands on a fresh machine.
#   make demo   - bootstrap, then run the demo node on embedded defaults (SQLite + local dev chain)
#   make test   - bootstrap, lint, format check, full test suite with branch coverage
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY_STAMP := $(VENV)/.phrx-installed
NPM_STAMP := node_modules/.phrx-installed
SYS_STAMP := $(VENV)/.phrx-system

.PHONY: bootstrap system validator demo test lint format bench clean

bootstrap: $(PY_STAMP) $(NPM_STAMP)

system: $(SYS_STAMP)

$(SYS_STAMP): tools/bootstrap-system.sh | $(PY_STAMP)
	bash tools/bootstrap-system.sh
	@touch $@

$(PY_STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -c requirements.lock -e '.[dev]'
	@touch $@

# `npm ci`: installs exactly the committed lock and never rewrites it (a lock out of
# sync with package.json is an error, not a silent rewrite). The lock lists every
# platform's optional anvil binary (@foundry-rs/anvil-{darwin,linux,win32}-*), as
# npm writes it; one pruned to this platform's makes `npm install` add the others
# back and `npm ci` refuse it. tests/test_bootstrap.py checks both.
$(NPM_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# The HL7 FHIR validator of tests/conformance/ (HAPI FhirInstanceValidator, the IPS
# packages): built into .validator/ by the script, which does nothing when up to date.
validator:
	bash tools/fetch-validator.sh

demo: bootstrap
	$(BIN)/phrx demo

# PostgreSQL is started on every run (CI boots with no server); installing it is
# done once, by the script, when missing.
test: bootstrap system validator
	bash tools/start-postgres.sh
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest --cov --cov-branch --cov-report=term $(PYTEST_ARGS)

lint:
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: bootstrap
	$(BIN)/phrx bench ingest

clean:
	rm -rf $(VENV) node_modules .validator .pytest_cache .ruff_cache .coverage
