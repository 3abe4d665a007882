# Set-up is idempotent: the first target that needs the environment builds it.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python

.PHONY: demo test bench clean-venv

$(VENV)/.ready: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch 2.14.1 + torchvision 0.29.1 lie on this machine's disk (deepinv needs torchvision)
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e ".[test,baselines]"
	# DnCNN baseline weights ship inside the scico wheel; --no-deps keeps JAX out
	$(PY) -m pip install -q --no-deps scico==0.0.7
	touch $@

demo: $(VENV)/.ready
	$(VENV)/bin/pnp-lpn demo

test: $(VENV)/.ready
	$(PY) -m pytest -q tests

bench: $(VENV)/.ready
	$(VENV)/bin/pnp-lpn bench --preset quick

clean-venv:
	rm -rf $(VENV)
