# abasto — two commands on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SCALE ?=
DEMO_ARGS ?=

.PHONY: help venv demo test test-slow lint fmt bench clean clean-data

help:
	@echo "make demo    set up, start embedded services, run the stockout early-warning demo"
	@echo "make test    set up and run the test suite (lint + type check + pytest, fast tiers)"
	@echo "make test-slow  the slow/heavy tier"
	@echo "make bench   run the benchmarks (tables of figures beside their limits)"
	@echo "make clean-data  stop services and delete ./.abasto (all generated data)"

$(STAMP): pyproject.toml constraints.txt
	@test -n "$(PYTHON)" || { echo "Python 3.11 is required"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip==25.3"
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/abasto demo $(if $(SCALE),--scale $(SCALE)) $(DEMO_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

test: $(STAMP) lint
	$(BIN)/pytest -m "not slow" -q

test-slow: $(STAMP)
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev,spark]"
	$(BIN)/pytest -m slow -q

bench: $(STAMP)
	$(BIN)/python -m bench

fmt: $(STAMP)
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

clean-data: $(STAMP)
	-$(BIN)/abasto down
	rm -rf .abasto

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
