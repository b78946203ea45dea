# Two commands: `make run` (set up and start the service) and `make test` (the whole suite).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# cpu (default) or gpu: which ONNX Runtime wheel to install; never both.
RUNTIME ?= cpu

.PHONY: run test lint install install-test bench bench-replicas bench-video models clean extension-tools

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.run-$(RUNTIME): pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install -q -e ".[$(RUNTIME)]"
	touch $@

$(VENV)/.test: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install -q -e ".[cpu,test,train,facefinder]"
	touch $@ $(VENV)/.run-cpu

install: $(VENV)/.run-$(RUNTIME)
install-test: $(VENV)/.test

run: install
	$(PY) -m service

test: install-test extension-tools
	$(PY) -m ruff check .
	$(PY) -m pytest -q

# web-ext (the Firefox add-on linter) for the extension's lint test, and tfjs with nsfwjs for the
# MobileNetV2 port's parity test, when npm is there.
extension-tools:
	@if command -v npm >/dev/null 2>&1 && [ ! -x extension/tools/node_modules/.bin/web-ext ]; then \
		npm ci --prefix extension/tools --no-audit --no-fund; fi
	@if command -v npm >/dev/null 2>&1 && [ ! -d model_export/tools/node_modules/nsfwjs ]; then \
		npm ci --prefix model_export/tools --no-audit --no-fund; fi

lint: install-test
	$(PY) -m ruff check .

bench: install
	$(PY) -m bench.run_bench
	$(PY) -m bench.replicas

# Only the replicas scenario: one replica on SQLite and on PostgreSQL, two on one PostgreSQL.
bench-replicas: install
	$(PY) -m bench.replicas

# Video checks: a 30-s 720p clip through the service (docs/performance.md), and the combining
# rule against other rules on clips of held-out faces (docs/video-api.md).
bench-video: install
	$(PY) -m bench.video_bench
	$(PY) -m bench.video_rule

# Reproduce the shipped detectors from ../shared/data (hours on 2 CPU cores; resumable).
models: install-test
	$(PY) -m model_export.reproduce --data ../shared/data

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
