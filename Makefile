# BrainCluster — see README.md. `make run` and `make test` are the two entry points.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DURATION ?= 0
PYTEST_ARGS ?=

.PHONY: install run test lint unit integration bench clean

# Shipping targets (images, chart, kind, docker e2e) live in mk/.
-include mk/*.mk

install: $(STAMP)

# Re-runs only when a dependency list changed; the distributions are installed editable,
# so code changes need no reinstall.
$(STAMP): node-image/pyproject.toml operator/pyproject.toml requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e "node-image[node]" -e operator -r requirements-dev.txt
	touch $(STAMP)

CLUSTER ?= examples/braincluster.yaml

run: install
	$(VENV)/bin/brainctl up -f $(CLUSTER) --duration $(DURATION)

lint: install
	$(VENV)/bin/ruff check .

test: lint
	$(VENV)/bin/pytest $(PYTEST_ARGS)

unit: install
	$(VENV)/bin/pytest tests/unit $(PYTEST_ARGS)

integration: install
	$(VENV)/bin/pytest tests/integration $(PYTEST_ARGS)

bench: install
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache bench/results
