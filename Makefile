# The two commands: `make test` (lint, types, layers, the whole suite) and `make demo`
# (the embedded world). Both set themselves up from nothing: .venv, pinned deps, redis-server.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test test-fast mutate demo lint types layers unit integration e2e bench clean lock redis-server kubeworld

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

test: $(STAMP) redis-server kubeworld lint types layers
	$(BIN)/pytest -q -p no:cacheprovider

# The developer loop: everything but the @slow many-iteration races (make test and CI run them).
test-fast: $(STAMP) redis-server kubeworld lint types layers
	$(BIN)/pytest -q -p no:cacheprovider -m "not slow"

# Mutation testing of the domain and the service against the unit tier (not part of make test).
mutate: $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "mutmut>=3.3"
	rm -rf mutants
	$(BIN)/mutmut run --max-children 2
	$(BIN)/mutmut results

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

integration: $(STAMP) redis-server kubeworld
	$(BIN)/pytest -q tests/integration

e2e: $(STAMP) redis-server kubeworld
	$(BIN)/pytest -q tests/e2e

demo: $(STAMP) redis-server
	$(BIN)/rollout-bot sandbox

bench: $(STAMP) redis-server
	$(BIN)/python -m bench

# Re-pin after changing dependencies in pyproject.toml.
lock: $(STAMP)
	$(BIN)/python -m pip freeze --all --exclude-editable | grep -v "^pip==" > requirements.lock

clean:
	rm -rf $(VENV) .sandbox .pytest_cache .mypy_cache .ruff_cache
