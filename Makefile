# abasto — two commands on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SCALE ?=
DEMO_ARGS ?=

# the optional compiled engine (mypyc, see setup.py): a complete abasto package beside the editable
# source, imported first through PYTHONPATH; rebuilt when any source changes
COMPILED := .build/compiled
COMPILED_STAMP := $(COMPILED)/.built
SOURCES := $(shell find src/abasto -name '*.py') setup.py pyproject.toml
# a C compiler and Python's headers (python3-dev on Debian) build it; without them, pure Python
HAVE_CC := $(shell (command -v cc || command -v gcc) >/dev/null && $(PYTHON) -c "import os, sys, sysconfig; \
	sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'Python.h')))" && echo yes)

.PHONY: help venv demo test test-slow test-compiled compiled lint fmt bench clean clean-data

help:
	@echo "make demo    set up, start embedded services, run the stockout early-warning demo"
	@echo "make test    set up and run the test suite (lint + type check + pytest, fast tiers)"
	@echo "make test-slow  the slow/heavy tier"
	@echo "make bench   run the benchmarks (tables of figures beside their limits) on the compiled engine"
	@echo "make compiled  build the compiled engine (mypyc; needs a C compiler) into $(COMPILED)"
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
	$(BIN)/ruff check src tests bench setup.py
	$(BIN)/mypy

test: $(STAMP) lint
	$(BIN)/pytest -m "not slow" -q
ifneq ($(HAVE_CC),)
	$(MAKE) --no-print-directory test-compiled
else
	@echo "no C compiler or Python headers: the compiled engine was neither built nor tested (the pure-Python one was)"
endif

$(COMPILED_STAMP): $(STAMP) $(SOURCES)
	@test -n "$(HAVE_CC)" || { echo "the compiled engine needs a C compiler and Python's headers: install gcc (or clang) and python3-dev"; exit 1; }
	rm -rf $(COMPILED) build
	ABASTO_MYPYC=1 $(BIN)/pip install --quiet --no-deps --no-build-isolation --target $(COMPILED) .
	@touch $@

compiled: $(COMPILED_STAMP)

# the engine's tests again, on the compiled build (the build is checked to be the one imported)
test-compiled: $(COMPILED_STAMP)
	ABASTO_EXPECT_COMPILED=1 PYTHONPATH=$(COMPILED) $(BIN)/pytest -m "not slow" -q -p no:cacheprovider \
		tests/realtime tests/ml tests/delivery tests/benchmarks

test-slow: $(STAMP)
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev,spark]"
	$(BIN)/pytest -m slow -q

bench: $(STAMP)
ifneq ($(HAVE_CC),)
	$(MAKE) --no-print-directory compiled
	PYTHONPATH=$(COMPILED) $(BIN)/python -m bench
else
	@echo "no C compiler or Python headers: benchmarking the pure-Python engine (make compiled needs them)"
	$(BIN)/python -m bench
endif

fmt: $(STAMP)
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

clean-data: $(STAMP)
	-$(BIN)/abasto down
	rm -rf .abasto

clean:
	rm -rf $(VENV) build .build *.egg-info src/*.egg-info
