# The two commands a newcomer runs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run test lint bench clean

setup: $(STAMP)

# Reinstall only when the dependency list changes.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: setup
	$(BIN)/otlp2parquet serve

test: setup
	$(BIN)/ruff check server tests bench protos
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check server tests bench protos

bench: setup
	$(BIN)/python -m bench.convert_bench --write-results

clean:
	rm -rf $(VENV) .tools data
