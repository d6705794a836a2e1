# Two commands on a fresh machine: `make train` (install + train the default experiment) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.beadseg-installed

.PHONY: install train test test-fast benchmark clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## Train the default experiment (built-in synthetic beads); pass Hydra overrides with ARGS="model=attention_unet ..."
train: install
	$(BIN)/beadseg-train $(ARGS)

## Run the test suite (CI runs this through .ci/run)
test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## The edit loop: the suite without the end-to-end runs marked slow (under a minute)
test-fast: install
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

## Lightning loop vs a plain PyTorch loop, images per second
benchmark: install
	$(BIN)/python benchmarks/train_throughput.py $(ARGS)

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache
