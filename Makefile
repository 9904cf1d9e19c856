# The two commands a newcomer needs: `make demo` and `make test`.
# Each creates .venv on first use; the install is redone only when pyproject.toml changes.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PIP_FLAGS := --disable-pip-version-check --progress-bar off -q

.PHONY: demo test test-fast lint soak ui bench package clean-data help

help:
	@echo "make demo   - install and run the whole asset graph locally, print the report path"
	@echo "make test   - install test dependencies, lint, and run the whole test suite"
	@echo "make test-fast - lint and the tests without Spark, browser, whole-graph or training runs (inner loop)"
	@echo "make lint   - ruff (lint, format) and the import contracts"
	@echo "make soak   - the heavy reliability runs: load, 1M transactions, 10,000-example fuzzing, more kills"
	@echo "make ui     - start the Dagster UI on http://127.0.0.1:3000"
	@echo "make bench  - run the benchmarks in bench/"
	@echo "make package - build the Lambda zips and Glue artifacts with their manifests into dist/ (before pulumi up)"

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install $(PIP_FLAGS) --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install $(PIP_FLAGS) -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install $(PIP_FLAGS) -e '.[dev]'
	@touch $@

# Debian packages the tests and benchmarks use: Chromium for the browser tests (Playwright drives it; no browser
# download from Playwright) and wrk, the load generator of the real-time API's benchmark and soak.
CHROMIUM := /usr/bin/chromium
WRK := /usr/bin/wrk
# buildah and debootstrap: the container image's test builds and runs the Dockerfile without Docker or a registry
BUILDAH := /usr/bin/buildah
DEBOOTSTRAP := /usr/sbin/debootstrap
/usr/bin/% /usr/sbin/%:
	@if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq $* >/dev/null; \
	elif command -v sudo >/dev/null; then sudo apt-get update -qq && sudo apt-get install -y -qq $* >/dev/null; \
	else echo "warning: $@ missing and no root: install the Debian package $*" >&2; fi

# one line per asset; Spark's, TensorFlow's and Dagster's own output go to FRAUD_HOME/logs/ (VERBOSE=1 shows them)
demo: $(VENV)/.installed
	@$(BIN)/fraud demo $(if $(VERBOSE),--verbose)

# style and architecture: ruff (lint and format, pyproject.toml) and import-linter's layer contracts
lint: $(VENV)/.installed-dev
	$(BIN)/ruff check --quiet .
	$(BIN)/ruff format --check --quiet .
	$(BIN)/lint-imports --no-logo --no-cache | grep -E "KEPT|BROKEN|^- |Contracts:"; exit $${PIPESTATUS[0]}

test: lint $(VENV)/.installed-dev | $(CHROMIUM) $(WRK) $(BUILDAH) $(DEBOOTSTRAP)
	$(BIN)/python -m pytest -n 2 --dist loadfile

# the inner loop: everything but the modules marked slow in tests/conftest.py (Spark, browser, whole graph, training)
test-fast: lint $(VENV)/.installed-dev
	$(BIN)/python -m pytest -n 2 --dist loadfile -m "not slow and not soak"

# the soak-marked tests plus the fuzz tests at 10,000 examples each (Hypothesis profile "soak")
soak: $(VENV)/.installed-dev | $(WRK)
	HYPOTHESIS_PROFILE=soak $(BIN)/python -m pytest -m "soak or fuzz"

ui: $(VENV)/.installed
	$(BIN)/fraud ui

# ONLY=load,simulator,etl,scoring,training,robustness runs some phases; JSON=FILE also writes the figures as JSON
bench: $(VENV)/.installed-dev | $(WRK)
	$(BIN)/python -m bench $(if $(ONLY),--only $(ONLY)) $(if $(JSON),--json $(JSON))

# the artifacts infra/ deploys and their dist/*.manifest.json; `pulumi preview`/`up` only read them
# and the Dagster image's wheelhouse (dist/wheelhouse/: wheels for this machine, so build on Linux x86_64 with
# Python 3.11, the image's platform)
package: $(VENV)/.installed
	$(BIN)/fraud package
	$(BIN)/fraud package --wheelhouse

clean-data:
	-$(BIN)/fraud db stop
	rm -rf .fraud
