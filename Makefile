# `make run` serves the default model; `make test` runs every test. Both set up what they need.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
HOST ?= 127.0.0.1
PORT ?= 5000
export PIP_DISABLE_PIP_VERSION_CHECK = 1

.PHONY: run test test-quick lint bench compile train-digits clean

$(VENV)/.serve-installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt
	touch $@

$(VENV)/.dev-installed: requirements.txt requirements-dev.txt requirements-nodeps.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps -r requirements-nodeps.txt
	touch $@ $(VENV)/.serve-installed

# The Procfile's own web command, bound to HOST:PORT (Swagger UI at http://127.0.0.1:5000/).
run: $(VENV)/.serve-installed
	PATH="$(abspath $(VENV))/bin:$$PATH" HOST=$(HOST) PORT=$(PORT) sh -c "$$(sed -n 's/^web: //p' Procfile)"

# ruff and mypy (settings in pyproject.toml); `make test` runs this first, so a finding fails CI.
lint: $(VENV)/.dev-installed
	$(PY) -m ruff check .
	$(PY) -m mypy

test: $(VENV)/.dev-installed lint
	sh scripts/ensure_chromium.sh
	$(PY) scripts/slug_size.py
	$(PY) -m pytest $(PYTEST_ARGS)

test-quick: $(VENV)/.dev-installed
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

# Benchmarks (not part of `make test`): rewrites bench/RESULTS.md (+ .json); takes ~30 minutes (10 of them the soak).
bench: $(VENV)/.dev-installed .venv-peers/.installed
	$(PY) -m bench.run --peers-python .venv-peers/bin/python

# LitServe and BentoML for the bench's peer rows, in their own venv (never the product's requirements).
.venv-peers/.installed: bench/peers/requirements.txt
	test -x .venv-peers/bin/python || $(PYTHON) -m venv .venv-peers
	.venv-peers/bin/python -m pip install -q -r bench/peers/requirements.txt
	touch $@

# Recompile every model whose model.json / weights changed (writes model.tflite + manifest).
compile: $(VENV)/.dev-installed
	$(VENV)/bin/flask --app application models compile --if-stale

# Retrain the default model from scikit-learn's bundled digits, then compile it.
train-digits: $(VENV)/.dev-installed
	$(PY) scripts/train_digits.py
	$(VENV)/bin/flask --app application models compile digits

clean:
	rm -rf $(VENV) .venv-peers .pytest_cache test-output
