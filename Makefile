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
	$(PY) -m pip install -q -e ".[all,test,docs]"
	# DnCNN baseline weights ship inside the scico wheel, training and test photos inside the
	# wheels of pnp_lpn.training.datasets.PHOTO_WHEELS; --no-deps keeps their dependencies (JAX,
	# pyfftw, ...) out: none of them is ever imported
	$(PY) -m pip install -q --no-deps scico==0.0.7 $$($(PY) -c \
		"from pnp_lpn.training.datasets import PHOTO_WHEELS; print(*PHOTO_WHEELS.values())")
	touch $@

demo: $(VENV)/.ready
	$(VENV)/bin/pnp-lpn demo

test: $(VENV)/.ready
	$(PY) -m pytest -q tests

bench: $(VENV)/.ready
	$(VENV)/bin/pnp-lpn bench --preset quick

clean-venv:
	rm -rf $(VENV)
