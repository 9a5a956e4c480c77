# Two entry points for a fresh machine: `make demo` and `make test`.
# Each bootstraps its own virtualenv in .venv (re-installed when pyproject.toml, setup.py or the C
# extension's source changes).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: venv assets chromium docs demo test lint typecheck unit otelcol bench clean

$(STAMP): pyproject.toml setup.py otelprof/_native.c
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP) assets

## The flame graph bundle `otelprof view` and `otelprof diff` inline (from the npm registry;
## node_modules and the bundle are build outputs, not in git).
VIEWER_JS := otelprof/viewer/js
BUNDLE    := otelprof/viewer/static/viewer.js
$(BUNDLE): $(VIEWER_JS)/package.json $(VIEWER_JS)/package-lock.json $(VIEWER_JS)/build.mjs \
		$(wildcard $(VIEWER_JS)/src/*)
	cd $(VIEWER_JS) && npm ci --no-audit --no-fund --loglevel=error && node build.mjs

assets: $(BUNDLE)

## Headless Chromium for the viewer's browser tests (Debian's package, installed when missing).
chromium:
	test -x /usr/bin/chromium || (apt-get update && apt-get install -y chromium)

## The documentation site (mkdocs.yml); --strict turns broken links and nav into errors.
docs: venv
	$(VENV)/bin/mkdocs build --strict --site-dir site

## The main job: profile a real example service end to end and show the result.
demo: venv
	$(PY) examples/demo/run_demo.py

## The whole suite: lint, type check, unit + end-to-end tests (incl. the real Collector).
test: venv lint typecheck otelcol chromium
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

## On demand, never in CI: overhead and accuracy against a bare run and peer profilers.
bench: venv
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
