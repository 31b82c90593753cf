# AuditDesk: `make demo` installs and runs the demo audit; `make test` installs and runs the tests.
# Both create a virtual environment in .venv on first use.

PYTHON ?= python3
VENV ?= .venv
# Torch is only used for the embedding model, on the CPU by default. On the project's
# machines this is a CPU build already on disk; elsewhere see "Choosing CPU or GPU" in README.md.
TORCH ?= torch==2.13.0
# For a GPU build of llama.cpp: make CMAKE_ARGS="-DGGML_CUDA=on" demo  (see README.md)
export CMAKE_ARGS
OUT ?= audit-output
PYTEST_ARGS ?=

BIN := $(VENV)/bin

.PHONY: install demo test test-fast gui clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[models,dev]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/auditdesk demo --out $(OUT)

test: install
	$(BIN)/lint-imports
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: install
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

gui: install
	$(BIN)/auditdesk-gui

clean:
	rm -rf $(VENV) $(OUT) build dist
