# The two commands a new user needs: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SAMPLE ?= samples/sklearn-regression

.PHONY: install install-dev run test test-fast lint bench clean

# pip says only what went wrong (-qq hides its warnings, such as running as root in a container).
PIP := $(PY) -m pip install -qq --disable-pip-version-check

$(PY):
	@$(PYTHON) -m venv $(VENV)
	@$(PIP) --upgrade pip

# Installed (editable) with everything the samples import; redone when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(PY)
	@echo "installing devtui and the samples' dependencies (about a minute the first time)..."
	@$(PIP) -e '.[samples,flow,mlflow]'
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(PY)
	@echo "installing devtui, the samples' and the tests' dependencies (a few minutes the first time)..."
	@$(PIP) -e '.[samples,flow,mlflow,test]'
	@touch $@ $(VENV)/.installed

# The MLflow sample's model folder is made, not committed: MLflow writes the versions it runs with.
MLFLOW_SAMPLE_MODEL := samples/mlflow-sklearn/model/MLmodel

$(MLFLOW_SAMPLE_MODEL): samples/mlflow-sklearn/make_model.py $(VENV)/.installed
	@$(PY) samples/mlflow-sklearn/make_model.py > /dev/null

install: $(VENV)/.installed $(MLFLOW_SAMPLE_MODEL)

install-dev: $(VENV)/.installed-dev $(MLFLOW_SAMPLE_MODEL)

run: install
	$(VENV)/bin/devtui $(SAMPLE)

# Tests run in TEST_WORKERS processes (pytest-xdist), a module to a process: most of their time
# is spent waiting on servers, containers and the Docker engine, so 3 keep 2 cores busy. Modules
# go to workers in collection order, the longest first (tests/conftest.py, LONGEST_FIRST).
TEST_WORKERS ?= 3

test: install-dev
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=10 $(PYTEST_ARGS)

# The inner loop: unit and fake-runtime tests only (tests/conftest.py, KINDS), in about a minute.
test-fast: install-dev
	$(PY) -m pytest -q -n 2 -m "unit or fake" --durations=5 $(PYTEST_ARGS)

# Size and complexity: no function over cyclomatic complexity 15, no module over 500 lines,
# no class over 250 (tests/test_layout.py fails on them; this prints the report).
lint: install-dev
	$(VENV)/bin/radon cc -s -n C devtui inference_server
	$(PY) tests/test_layout.py

bench: install-dev
	$(PY) benchmarks/reload.py
	$(PY) benchmarks/reload.py --case flow
	$(PY) benchmarks/throughput.py
	$(PY) benchmarks/traces.py
	$(PY) benchmarks/mlflow.py
	@if $(PY) -c "import docker; docker.from_env().ping()" 2>/dev/null; then $(PY) benchmarks/container.py; \
	else echo "container benchmark skipped: no Docker engine answers (scripts/docker-engine.sh starts one)"; fi

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
