# The two commands: `make test` (lint, types, layers, the whole suite) and `make demo`
# (the embedded world). Both set themselves up from nothing: .venv, pinned deps, redis-server,
# prometheus.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test demo lint types layers unit integration e2e conformance bench clean lock \
	redis-server prometheus kubeworld crds

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

# The suite starts its own redis-server processes on free ports; install the binary if absent.
redis-server:
	@command -v redis-server >/dev/null 2>&1 || { \
	  echo "redis-server not found: installing it from the distribution's packages"; \
	  (apt-get update -qq && apt-get install -y -qq redis-server) >/dev/null; }
	@command -v redis-server >/dev/null 2>&1 || { echo "redis-server is required by the tests"; exit 1; }

# Canary analysis is tested against, and demonstrated with, a real Prometheus on a free port.
prometheus:
	@command -v prometheus >/dev/null 2>&1 || { \
	  echo "prometheus not found: installing it from the distribution's packages"; \
	  (apt-get update -qq && apt-get install -y -qq prometheus) >/dev/null; }
	@command -v prometheus >/dev/null 2>&1 || { echo "prometheus is required by the tests"; exit 1; }

# The tests' real kube-apiserver and etcd, built from the pinned Go module in
# tests/support/apiserver into a cache outside the work tree (the first time only).
kubeworld: $(STAMP)
	$(BIN)/python -m tests.support.build

lint: $(STAMP)
	$(BIN)/ruff check .

types: $(STAMP)
	$(BIN)/mypy

layers: $(STAMP)
	$(BIN)/lint-imports

test: $(STAMP) redis-server prometheus kubeworld lint types layers
	$(BIN)/pytest -q -p no:cacheprovider

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

integration: $(STAMP) redis-server prometheus kubeworld
	$(BIN)/pytest -q tests/integration

e2e: $(STAMP) redis-server kubeworld
	$(BIN)/pytest -q tests/e2e

# The emulator held to the real API server: one recorded set of requests replayed on both.
conformance: $(STAMP) kubeworld
	$(BIN)/pytest -q tests/conformance

# The emulator validates with the official CRDs, materialized from the pinned Go modules.
crds: $(STAMP)
	ROLLOUT_UPSTREAM_CRDS="$${ROLLOUT_UPSTREAM_CRDS:-$(abspath ../shared/crds)}" \
	  $(BIN)/python -m sandbox.crds .sandbox/crds

demo: $(STAMP) redis-server prometheus crds
	$(BIN)/rollout-bot sandbox --crds .sandbox/crds

bench: $(STAMP) redis-server
	$(BIN)/python -m bench

# Re-pin after changing dependencies in pyproject.toml.
lock: $(STAMP)
	$(BIN)/python -m pip freeze --all --exclude-editable | grep -v "^pip==" > requirements.lock

clean:
	rm -rf $(VENV) .sandbox .pytest_cache .mypy_cache .ruff_cache
