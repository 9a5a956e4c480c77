# Two entry points for a fresh machine: `make demo` and `make test`.
# Each bootstraps its own virtualenv in .venv (re-installed when pyproject.toml changes).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: venv demo test lint typecheck unit otelcol bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

## The main job: profile a real example service end to end and show the result.
demo: venv
	$(PY) examples/demo/run_demo.py

## The whole suite: lint, type check, unit + end-to-end tests (incl. the real Collector).
test: venv lint typecheck otelcol
	$(PY) -m pytest tests

## The real OpenTelemetry Collector for the interop tests: built once per machine from
## otelcol/builder-config.yaml with Go, cached outside the checkout (~/.cache/otelprof).
otelcol:
	scripts/build_otelcol.sh

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: venv
	$(VENV)/bin/mypy

bench: venv
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
