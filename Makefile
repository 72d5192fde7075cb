# The two commands: `make test` (lint, types, layers, the whole suite) and `make demo`
# (the embedded world). Both set themselves up from nothing: .venv, pinned deps, redis-server,
# prometheus.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test test-fast mutate demo lint types layers unit integration e2e conformance bench soak \
	clean lock redis-server prometheus demo-prometheus chromium kubeworld crds scan sbom helm

# The development lock (runtime pins plus the tools), installed with its hashes checked.
$(STAMP): requirements-dev.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes \
	  -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

# The suite starts its own redis-server and redis-sentinel processes on free ports; install
# the binaries if absent.
redis-server:
	@command -v redis-server >/dev/null 2>&1 && command -v redis-sentinel >/dev/null 2>&1 || { \
	  echo "redis-server or redis-sentinel not found: installing them from the distribution's packages"; \
	  (apt-get update -qq && apt-get install -y -qq redis-server redis-sentinel) >/dev/null; }
	@command -v redis-server >/dev/null 2>&1 || { echo "redis-server is required by the tests"; exit 1; }
	@command -v redis-sentinel >/dev/null 2>&1 || { echo "redis-sentinel is required by the tests"; exit 1; }

# The chart tests run helm lint and helm template; where helm is missing it is built from
# its Go module (the Go toolchain is needed anyway for the tests' kube-apiserver).
HELM_VERSION := v3.22.0
helm: $(STAMP)
	@command -v helm >/dev/null 2>&1 || test -x $(BIN)/helm || { \
	  echo "helm not found: building helm $(HELM_VERSION) from its Go module into $(BIN)"; \
	  GOBIN=$(abspath $(BIN)) GOFLAGS=-buildvcs=false go install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION); }

# Canary analysis is tested against, and demonstrated with, a real Prometheus on a free port.
INSTALL_PROMETHEUS := command -v prometheus >/dev/null 2>&1 || { \
	  echo "prometheus not found: installing it from the distribution's packages"; \
	  (apt-get update -qq && apt-get install -y -qq prometheus) >/dev/null; }
prometheus:
	@$(INSTALL_PROMETHEUS)
	@command -v prometheus >/dev/null 2>&1 || { echo "prometheus is required by the tests"; exit 1; }

# Two end-to-end tests walk the chat page in headless Chromium; where it cannot be installed
# they skip, saying so.
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  echo "chromium not found: installing it from the distribution's packages"; \
	  (apt-get update -qq && apt-get install -y -qq chromium) >/dev/null 2>&1 || \
	  echo "chromium could not be installed: the two browser tests will skip"; }

# The demo runs without canary analysis where prometheus cannot be installed (its banner
# says so).
demo-prometheus:
	@$(INSTALL_PROMETHEUS) || echo "prometheus could not be installed: the demo runs without canary analysis"

# The tests' real kube-apiserver and etcd, built from the pinned Go module in
# tests/support/apiserver into a cache outside the work tree (the first time only).
kubeworld: $(STAMP)
	$(BIN)/python -m tests.support.build

lint: $(STAMP)
	$(BIN)/ruff check .

# mypy's incremental cache lives outside the work tree, as the API server's build does: a
# fresh checkout on a warm machine is checked in seconds (mypy trusts an entry only while
# the file's hash, its dependencies and mypy's options and version are the same).
MYPY_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/rollout-bot/mypy
types: $(STAMP)
	$(BIN)/mypy --cache-dir "$(MYPY_CACHE)"

layers: $(STAMP)
	$(BIN)/lint-imports

# Most of the suite waits on servers (the API server, Redis, Prometheus, bake times), so it
# runs on more workers than cores; a file's tests stay on one worker and share its fixtures.
# Files go out in the order tests/conftest.py gives (the minute-long ones first); xdist's own
# reorder, by number of tests, sent the one-test soak and races last, a tail of two minutes.
TEST_WORKERS ?= 4
PYTEST := $(BIN)/pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile \
	--no-loadscope-reorder

test: $(STAMP) redis-server prometheus chromium helm kubeworld lint types layers
	$(PYTEST)

# The developer loop: everything but the @slow many-iteration races (make test and CI run them).
test-fast: $(STAMP) redis-server prometheus chromium helm kubeworld lint types layers
	$(PYTEST) -m "not slow"

# Mutation testing of the domain and the service against the unit tier (not part of make test).
mutate: $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "mutmut>=3.3"
	rm -rf mutants
	$(BIN)/mutmut run --max-children 2
	$(BIN)/mutmut results

unit: $(STAMP) helm
	$(BIN)/pytest -q tests/unit

integration: $(STAMP) redis-server prometheus kubeworld
	$(BIN)/pytest -q tests/integration

e2e: $(STAMP) redis-server prometheus chromium kubeworld
	$(BIN)/pytest -q tests/e2e

# The emulator held to the real API server: one recorded set of requests replayed on both.
conformance: $(STAMP) kubeworld
	$(BIN)/pytest -q tests/conformance

# The emulator validates with the official CRDs, materialized from the pinned Go modules.
crds: $(STAMP)
	ROLLOUT_UPSTREAM_CRDS="$${ROLLOUT_UPSTREAM_CRDS:-$(abspath ../shared/crds)}" \
	  $(BIN)/python -m sandbox.crds .sandbox/crds

demo: $(STAMP) redis-server demo-prometheus crds
	$(BIN)/rollout-bot sandbox --crds .sandbox/crds

bench: $(STAMP) redis-server kubeworld
	$(BIN)/python -m bench

# The long soak (README, "Performance and reliability"): serve replicas, a scheduler, Redis
# with AOF and the real API server under faults for SOAK_SECONDS; exits 1 when a must-be-zero
# check found something. `make test` runs a two-minute form of it.
SOAK_SECONDS ?= 900
SOAK_SEED ?= 1
soak: $(STAMP) redis-server kubeworld
	$(BIN)/python -m tests.soak --duration $(SOAK_SECONDS) --seed $(SOAK_SEED)

# Re-pin after changing dependencies in pyproject.toml: the runtime lock (what the image
# installs), the development lock (runtime plus tools; existing pins are kept, so the two
# agree) and the build lock (setuptools, to build the project's wheel), all with hashes.
COMPILE := $(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
	--no-emit-index-url --no-emit-find-links
lock: $(STAMP)
	$(COMPILE) -o requirements.lock pyproject.toml
	$(COMPILE) --extra dev -o requirements-dev.lock pyproject.toml
	$(COMPILE) --only-build-deps --build-deps-for wheel -o requirements-build.lock pyproject.toml

# A CycloneDX SBOM of what the image installs: the runtime lock, with its hashes.
sbom: $(STAMP)
	mkdir -p build
	$(BIN)/cyclonedx-py requirements --pyproject pyproject.toml --of JSON --output-reproducible \
	  -o build/sbom.cdx.json requirements.lock

# Scan what a cluster and a registry receive: checkov on the rendered Kustomize base and the
# Containerfile, kubernetes-validate --strict on the render. The scanners live in a venv of
# their own: they are not the bot's dependencies.
SCAN_VENV ?= .venv-scan
SCAN := build/scan
CHECKOV := checkov==3.3.30
KUBERNETES_VALIDATE := kubernetes-validate==1.37.0

$(SCAN_VENV)/.installed:
	test -x $(SCAN_VENV)/bin/python || $(PYTHON) -m venv $(SCAN_VENV)
	$(SCAN_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
	  "$(CHECKOV)" "$(KUBERNETES_VALIDATE)"
	touch $@

scan: $(SCAN_VENV)/.installed helm
	mkdir -p $(SCAN)
	kubectl kustomize deploy/kubernetes > $(SCAN)/kustomize.yaml
	PATH="$(abspath $(BIN)):$$PATH" helm template rollout-bot deploy/helm/rollout-bot \
	  --namespace rollout-bot --kube-version 1.34.0 -f deploy/helm/rollout-bot/ci/example-values.yaml \
	  --set ingress.enabled=true --set serviceMonitor.enabled=true > $(SCAN)/helm.yaml
	cp deploy/Containerfile $(SCAN)/Dockerfile
	$(SCAN_VENV)/bin/checkov --compact --quiet --skip-download --framework kubernetes \
	  -f $(SCAN)/kustomize.yaml
	$(SCAN_VENV)/bin/checkov --compact --quiet --skip-download --framework kubernetes \
	  -f $(SCAN)/helm.yaml
	$(SCAN_VENV)/bin/checkov --compact --quiet --skip-download --framework dockerfile \
	  -f $(SCAN)/Dockerfile
	$(SCAN_VENV)/bin/kubernetes-validate --strict --quiet $(SCAN)/kustomize.yaml
	$(SCAN_VENV)/bin/kubernetes-validate --strict --quiet $(SCAN)/helm.yaml

clean:
	rm -rf $(VENV) $(SCAN_VENV) build .sandbox .pytest_cache .mypy_cache .ruff_cache
