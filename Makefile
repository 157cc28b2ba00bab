# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON_VERSION ?= 3.10.13
PYTHON ?= $(shell PYENV_VERSION=$(PYTHON_VERSION) command -v python3.10 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= out
DATA ?= movielens-100k

export PYENV_VERSION := $(PYTHON_VERSION)

.PHONY: venv run test test-unit test-e2e clean

$(BIN)/.installed: setup.py constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip wheel "setuptools>=64,<70"
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[test]"
	@touch $@

venv: $(BIN)/.installed

run: venv
	$(BIN)/eta run --data $(DATA) --pipeline-root $(OUT)/pipeline --serving-dir $(OUT)/serving

test: test-unit test-e2e

test-unit: venv
	$(BIN)/python -m pytest -m "not e2e" -q --durations=15 -n 2 --dist loadfile

test-e2e: venv
	$(BIN)/python -m pytest -m e2e -q --durations=15 -n 2 --dist loadgroup

clean:
	rm -rf $(OUT) .pytest_cache
