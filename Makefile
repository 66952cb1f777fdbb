# smpc_gym — the README's commands. Each target sets up .venv first when needed.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.smpc-gym-setup
export SDL_VIDEODRIVER ?= dummy
export SDL_AUDIODRIVER ?= dummy
export PYTHONUNBUFFERED := 1

.PHONY: setup test test-slow demo bench bench-learning lint docs clean

setup: $(STAMP)

# Order matters: torch's CPU build first (any other torch request would fetch a
# multi-GB CUDA build), then us, then crypten without its broken dependency list
# (--no-deps). Installing crypten last means no later resolver run meets crypten's
# unmet `sklearn`/`torchvision` requirements, so pip prints no red "ERROR: ... crypten
# requires ..." at the end; `pip check` would still list them, by design.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	$(PY) -m pip install -q --no-deps crypten==0.4.1
	@echo "crypten 0.4.1 installed without its declared sklearn/torchvision (on purpose:"
	@echo "  sklearn is a dead package, torchvision would pull another torch)."
	touch $(STAMP)
	@echo "Set up. Activate the environment in each new shell: source $(VENV)/bin/activate"

# The default suite must stay under 10 minutes on 2 cores; the 15 slowest tests are
# listed at the end of every run so the budget stays visible.
test: setup
	$(PY) -m pytest -q -n 2 --durations=15

test-slow: setup
	$(PY) -m pytest -q -m slow

demo: setup
	$(PY) examples/demo.py

# Cost benchmarks (minutes): environments, training speed, secure aggregation, secure MADDPG.
bench: setup
	$(PY) benchmarks/env_throughput.py
	$(PY) benchmarks/supply_chain_speed.py
	$(PY) benchmarks/training_speed.py --quick
	$(PY) benchmarks/secure_aggregation.py
	$(PY) benchmarks/secure_maddpg.py --updates 2

# What learning and privacy cost and buy (an hour or more on 2 cores): the README's tables.
bench-learning: setup
	$(PY) benchmarks/learning_curves.py
	$(PY) benchmarks/supply_chain_agents.py
	$(PY) benchmarks/secure_fed_dqn.py
	$(PY) benchmarks/secure_fed_dqn_dp_curves.py
	$(PY) benchmarks/privacy_attack.py
	$(PY) benchmarks/robust_aggregation.py
	$(PY) benchmarks/pate.py

# The documentation site (Sphinx + furo + MyST) into docs/_build/html, warnings as errors.
# docs/conf.py regenerates the API pages and, from benchmarks/results/*.json, the results
# pages and the README's headline table before building.
DOCS_STAMP := $(VENV)/.smpc-gym-docs

$(DOCS_STAMP): $(STAMP) pyproject.toml
	$(PY) -m pip install -q -e ".[docs]"
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	$(PY) docs/gen_results.py
	$(PY) -m sphinx -W --keep-going -q -b html docs docs/_build/html
	@echo "docs: open docs/_build/html/index.html"

lint: setup
	$(PY) -m ruff check src tests benchmarks examples docs/*.py train.py
	$(PY) -m ruff format --check src tests benchmarks examples docs/*.py train.py
	$(PY) -m mypy

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache .mypy_cache docs/_build docs/api
