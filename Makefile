# smpc_gym — the README's commands. Each target sets up .venv first when needed.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.smpc-gym-setup
export SDL_VIDEODRIVER ?= dummy
export SDL_AUDIODRIVER ?= dummy
export PYTHONUNBUFFERED := 1

.PHONY: setup test test-slow demo bench lint clean

setup: $(STAMP)

# Order matters: torch's CPU build first (any other torch request would fetch a
# multi-GB CUDA build), then crypten without its broken dependency list, then us.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q --no-deps crypten==0.4.1
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

test: setup
	$(PY) -m pytest -q -n 2

test-slow: setup
	$(PY) -m pytest -q -m slow

demo: setup
	$(PY) examples/demo.py

bench: setup
	$(PY) benchmarks/env_throughput.py

lint: setup
	$(PY) -m ruff check src tests benchmarks examples train.py
	$(PY) -m ruff format --check src tests benchmarks examples train.py
	$(PY) -m mypy

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache .mypy_cache
