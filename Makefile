# Two commands for a newcomer: `make demo` (the main job) and `make test` (the whole suite).
# Each creates .venv and installs the pinned dependencies on first use (torch 2.13.0 first: a CPU wheel
# on this machine; asking pip for plain `torch` would pull several GB of CUDA packages).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
STAMP  := $(VENV)/.installed
PEER_STAMP := $(VENV)/.peer-wheels
EXTRAS := jax,orbax,flax,torch,plot,plan,tensorboard,test,dev,docs,peers,integrations
# Peer wheels read by tests/peers.py (downloaded without their heavy dependencies; tests skip if absent).
PEER_WHEELS := torchtitan==0.3.0 megatron-core==0.16.1 ai2-olmo-core==3.0.0 marin-levanter==0.2.20.dev202606180959
DEMO_DIR ?= demo_output

.PHONY: all demo test test-fast lint docs bench format clean

all: test

$(STAMP): pyproject.toml requirements/constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is needed (jax, flax, orbax); set PYTHON=python3.11")'
	@echo "setting up $(VENV), once (about 2 minutes): a virtual environment, then torch 2.13.0, then jax and the rest"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "  [1/2] torch 2.13.0 (CPU) ..."
	@$(PIP) install -q torch==2.13.0
	@echo "  [2/2] the project and its pinned extras ($(EXTRAS)) ..."
	@$(PIP) install -q -c requirements/constraints.txt -e '.[$(EXTRAS)]'
	@echo "  $(VENV) is ready"
	@touch $@

# Its own stamp, remade when this file (and so the list) changes, without reinstalling the rest.
$(PEER_STAMP): Makefile | $(STAMP)
	$(PIP) download -q --no-deps -d $(VENV)/peer-wheels $(PEER_WHEELS) || \
		echo "note: peer wheels not downloaded; the torchtitan, Megatron and OLMo-core preset tests will skip"
	@touch $@

demo: $(STAMP)
	$(PY) examples/demo/demo.py --out $(DEMO_DIR)

test: $(STAMP) $(PEER_STAMP)
	$(PY) -m pytest

# The inner loop: everything but the tests marked slow (subprocesses, real training runs).
test-fast: $(STAMP) $(PEER_STAMP)
	$(PY) -m pytest -m "not slow"

# The documentation site (docs/ and the docstrings) into site/, warnings as errors.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --quiet --site-dir site

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

format: $(STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

bench: $(STAMP)
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) $(DEMO_DIR) site build dist .pytest_cache .mypy_cache .ruff_cache .hypothesis
