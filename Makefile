# Two entry points from a fresh clone (see README.md):
#   make app    install into .venv and start the dashboard
#   make test   install into .venv (with test tools) and run the whole test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python

.PHONY: app test bench

$(VENV)/.app-installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $@

$(VENV)/.dev-installed: $(VENV)/.app-installed requirements-dev.txt requirements-ray.txt
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

app: $(VENV)/.app-installed
	$(PY) -m streamlit run app.py

test: $(VENV)/.dev-installed
	$(PY) -m pytest -q --durations=15

bench: $(VENV)/.app-installed
	$(PY) bench/bench.py --device auto --out bench/result.json
