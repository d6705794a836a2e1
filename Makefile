# Two commands on a fresh machine: `make train` (install + train the default experiment) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.beadseg-installed
DEV_STAMP := $(VENV)/.beadseg-dev-installed

.PHONY: install install-dev train test test-fast docs benchmark clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e .
	touch $(STAMP)

$(DEV_STAMP): $(STAMP)
	$(BIN)/python -m pip install -e '.[dev]'
	touch $(DEV_STAMP)

## beadseg alone (what training and prediction need)
install: $(STAMP)

## beadseg with the dev extra: pytest, ruff, mypy, napari + Qt, ONNX, bioimage.io, captum (what make test needs)
install-dev: $(DEV_STAMP)

## Train the default experiment (built-in synthetic beads); pass Hydra overrides with ARGS="model=attention_unet ..."
train: install
	$(BIN)/beadseg-train $(ARGS)

## Run the test suite (CI runs this through .ci/run), one worker per core, each test file on one worker: a module's
## expensive fixture (a trained checkpoint, a prediction run) is built once (tests/conftest.py shares the cores)
test: install-dev
	$(BIN)/python -m ruff check src tests benchmarks
	$(BIN)/python -m mypy
	$(BIN)/python -m pytest -n auto --dist loadfile $(PYTEST_ARGS)
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict --quiet

## The documentation site (guides, benchmarks, settings and API reference) into outputs/site/
docs: install-dev
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict

## The edit loop: the suite without the end-to-end runs marked slow (under a minute)
test-fast: install-dev
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

## Lightning loop vs a plain PyTorch loop, images per second
benchmark: install-dev
	$(BIN)/python benchmarks/train_throughput.py $(ARGS)

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache
