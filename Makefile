# Each target does its own set-up: a fresh machine needs only python3 (>= 3.10) and make.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.audioflex-installed

.PHONY: install test demo lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned: this CPU wheel is on the build machines' disk (pyproject keeps a range for users)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev,parity,sed,onnx]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m ruff check src tests tools
	$(PY) -m pytest

demo: $(STAMP)
	$(VENV)/bin/audioflex demo --out runs/demo

lint: $(STAMP)
	$(PY) -m ruff check src tests tools

bench: $(STAMP)
	$(VENV)/bin/audioflex bench packing --out runs/bench_packing.json

clean:
	rm -rf $(VENV) runs build dist src/*.egg-info
