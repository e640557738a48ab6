# `make demo` and `make test` set everything up on a fresh machine (Python 3.11 and a C++ compiler).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Open MPI refuses to run as root without these; harmless for other users.
export OMPI_ALLOW_RUN_AS_ROOT := 1
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM := 1
MPIRUN := $(BIN)/mpirun --oversubscribe

.PHONY: demo test bench venv clean

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "[setup] installing torch 2.13.0 (CPU build), MPI and the test tools into $(VENV)"
	$(BIN)/pip install --disable-pip-version-check -q "torch==2.13.0"
	$(BIN)/pip install --disable-pip-version-check -q -e ".[test]"
	@touch $(STAMP)

demo: $(STAMP)
	$(MPIRUN) -n 5 $(BIN)/backupsgd train --config launch/experiments/demo.toml

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	mkdir -p results/bench
	$(MPIRUN) -n 4 $(BIN)/backupsgd bench exchange --sizes 1,16,64 --json results/bench/exchange.json

clean:
	rm -rf $(VENV) build *.egg-info
