# Two commands on a fresh machine:
#   make run    set up .venv and train the default model (F-NSF on four circles)
#   make test   set up .venv and run the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check --constraint constraints.txt
STAMP := $(VENV)/.installed
ARGS ?=

.PHONY: install run test test-all lint check bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) torch==2.13.0
	$(PIP) --editable '.[test,export]'
	touch $(STAMP)

run: install
	$(VENV)/bin/funnelrun $(ARGS)

check: install
	$(VENV)/bin/funnelrun-check $(ARGS)

test: install lint
	$(PY) -m pytest -q $(ARGS)

# Static checks (configured in pyproject.toml): lint and import order, then types.
lint: install
	$(VENV)/bin/ruff check funnelrun tests scripts
	$(VENV)/bin/mypy funnelrun

test-all: install
	$(PY) -m pytest -q -m "" $(ARGS)

# Throughput against nflows and zuko (peer libraries: the `bench` extra), e.g. ARGS="--quick".
bench: install
	$(PIP) --editable '.[test,bench]'
	$(PY) scripts/bench_throughput.py $(ARGS)

clean:
	rm -rf $(VENV) outputs multirun build *.egg-info
