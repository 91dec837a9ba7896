# Two entry points for a fresh machine (Python 3.11 + Go): `make demo` and `make test`.
# Everything else is set up by these targets; nothing needs installing by hand.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# The harness every e2e test and the demo use, typed strictly and formatted like the package:
# all of tools/, the benchmarks, plus the test modules that are strict already (pyproject's
# mypy covers the package only; the rest of tests/ is checked by ruff). tests/ is no package
# and tests/bench is, hence --explicit-package-bases: the bench modules are tests.bench.*.
STRICT_TESTS := tests/e2e/support.py tests/e2e/tokenservice.py tests/e2e/hoststate.py tests/harness \
                tests/bench
BIN_DIRS = PULLSECRET_BIN_DIR=$$(tools/build-control-plane.sh) \
           PULLSECRET_NODE_BIN_DIR=$$(tools/build-node.sh)

.PHONY: venv tools node-tools image test unit lint lint-chart generate e2e demo demo-down clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

# Builds etcd, kube-apiserver, kube-controller-manager, kubectl and helm from Go modules into
# ~/.cache/pullsecret-injector (reused when already built).
tools:
	tools/build-control-plane.sh >/dev/null

# Builds the real node of the e2e suite (kubelet, containerd + shim, the registry, the CNI
# loopback plugin, our image tool) from Go modules and unpacks runc from Debian's .deb (nothing
# is installed on the host), into ~/.cache/pullsecret-injector/node (reused when built).
node-tools:
	tools/build-node.sh >/dev/null

# Builds the container image from the Dockerfile with buildah, FROM a Debian 12 Python base made
# with mmdebstrap (no Docker engine, no registry), into ~/.cache/pullsecret-injector/image
# (reused when the inputs are unchanged); prints the OCI archive. Pushing: tools/build-image.sh --help
image:
	tools/build-image.sh

lint: venv lint-chart
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check webhook certs tools $(STRICT_TESTS)
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy --strict --explicit-package-bases tools $(STRICT_TESTS)
	$(VENV)/bin/lint-imports
	test -z "$$(gofmt -l tools/imagetool)"

# The chart, linted the way chart maintainers do (chart-testing's `ct lint`: yamllint with ct's
# rules on Chart.yaml and the values files, and `helm lint --strict` per values file).
CHART := charts/pullsecret-injector
lint-chart: venv tools
	$(VENV)/bin/python -m tools.values_schema --check
	$(VENV)/bin/yamllint --strict -c charts/lintconf.yaml charts/lintconf.yaml \
		$(CHART)/Chart.yaml $(CHART)/values.yaml $(CHART)/values-openshift.yaml
	HELM=$$(tools/build-control-plane.sh)/helm && \
		$$HELM lint --strict $(CHART) && \
		$$HELM lint --strict $(CHART) --values $(CHART)/values-openshift.yaml

unit: venv
	$(PY) -m pytest tests/unit -q

e2e: venv tools node-tools
	$(BIN_DIRS) $(PY) -m pytest tests/e2e -q

# Files generated from others: values.schema.json from the annotated values.yaml.
generate: venv
	$(VENV)/bin/python -m tools.values_schema

# The whole suite CI runs: lint, unit tests, then e2e on the real control plane and node.
test: venv tools node-tools lint
	$(BIN_DIRS) $(PY) -m pytest -q

# The demo runs the chart's pods on a real node from our image: it needs all three builds.
demo: venv tools node-tools image
	$(BIN_DIRS) $(PY) -m tools.demo up

demo-down: venv
	$(PY) -m tools.demo down

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
