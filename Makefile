# The two commands of the README, each creating .venv first if it is missing or stale:
#   make repro   runs the DVC pipeline on the built-in synthetic dataset: dvc repro, with independent
#                stages side by side (pipeline/repro.py; REPRO_JOBS=1 runs one at a time, as dvc repro)
#   make test    runs the test suite
VENV := .venv
STAMP := $(VENV)/.installed
PYTHON ?= python3.11
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export MLFLOW_DISABLE_TELEMETRY := true
export NO_ALBUMENTATIONS_UPDATE := 1

.PHONY: repro test lint lock browser ui

REPRO_JOBS ?= auto
repro: $(STAMP)
	python -m pipeline.repro --jobs $(REPRO_JOBS)

# The tests run in parallel (pytest-xdist; TEST_WORKERS=0: in this process), one worker more than
# cores: a worker waiting on a subprocess, a server or a fixture another worker builds leaves its
# core to the others (on 2 cores: 2 workers 10 min 46 s, 3 workers 10 min 18 s, 4 workers 10 min 50 s).
# The tests of one xdist_group run on one worker (their module fixtures built once), and in the order
# tests/conftest.py gives (the slowest first), not xdist's largest-group-first.
TEST_WORKERS ?= $(shell echo $$(( $$(nproc) + 1 )))
test: $(STAMP) browser
	pytest -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder $(PYTEST_ARGS)

lint: $(STAMP)
	ruff check .

# The MLflow UI on the local store, on loopback unless UI_HOST says otherwise (e.g. UI_HOST=0.0.0.0);
# it first prints the address of each experiment's training runs.
UI_HOST ?= 127.0.0.1
UI_PORT ?= 5000
ui: $(STAMP)
	python -m pipeline.ui --host $(UI_HOST) --port $(UI_PORT)

# The MLflow UI test drives Debian's Chromium through Playwright: installed here when missing
# (as root); without it that one test is skipped, saying why.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && DEBIAN_FRONTEND=noninteractive sh -c \
	  'apt-get install -y -q --no-install-recommends chromium || (apt-get update -q && apt-get install -y -q --no-install-recommends chromium)'; } \
	  || echo "chromium is not installed (as root: apt-get install chromium); the MLflow UI test will be skipped"

# Exact versions of all ~200 packages; `make lock` refreshes the file from the venv.
$(STAMP): requirements.lock pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -r requirements.lock
	$(VENV)/bin/python -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

lock: $(STAMP)
	$(VENV)/bin/python -m pip freeze --exclude-editable > requirements.lock
