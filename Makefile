# Surveillance pipeline: `make demo` runs the main job on embedded defaults, `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export DAGSTER_HOME := $(CURDIR)
export DAGSTER_STORAGE_DIR := $(CURDIR)/data/dagster
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: install demo test test-fast dev bench clean

$(STAMP): setup.py constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	mkdir -p $(DAGSTER_STORAGE_DIR)
	$(VENV)/bin/surveillance demo

test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

dev: $(STAMP)
	mkdir -p $(DAGSTER_STORAGE_DIR)
	$(VENV)/bin/dagster dev -w workspace.yaml

bench: $(STAMP)
	$(PY) benchmarks/bench_ingest.py
	$(PY) benchmarks/bench_storage.py
	$(PY) benchmarks/bench_features.py
	$(PY) benchmarks/bench_e2e.py --skip-validate

clean:
	rm -rf data/demo data/landing data/warehouse data/rejects data/dagster data/surveillance.db*
