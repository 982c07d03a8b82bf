# smtp-sansio developer tasks.  Everything runs in the virtual environment .venv, created on demand.
#
#   make demo        send a message through a throwaway local SMTP server (with STARTTLS)
#   make bench       compare smtp-sansio with other clients (benchmarks/run.py; minutes)
#   make check       lint, type-check, test (with >= 95% branch coverage of the core), build the docs
#   make lint | typecheck | test | docs    one step of `check`
#   make clean       remove build and test artefacts;  make distclean  also removes .venv
#
# The project is installed editable (`pip install -e`).  setuptools' default editable mode installs
# an import finder that maps smtp_sansio -> ./smtp_sansio and smtp_sansio.adapters -> ./adapters, so
# modules added to either directory are importable without reinstalling; only a change to
# pyproject.toml triggers a reinstall (the .venv/.installed-* stamps depend on it).  Do not use
# `--config-settings editable_mode=compat`: it only puts the project root on sys.path, where
# smtp_sansio.adapters does not exist.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip

.DEFAULT_GOAL := check
.PHONY: demo bench check lint typecheck test docs clean distclean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(PIP) install --disable-pip-version-check -e '.[dev]'
	touch $@

$(VENV)/.installed-demo: pyproject.toml | $(BIN)/python
	$(PIP) install --disable-pip-version-check -e '.[demo]'
	touch $@

demo: $(VENV)/.installed-demo
	$(BIN)/smtp-sansio demo

$(VENV)/.installed-bench: pyproject.toml | $(BIN)/python
	$(PIP) install --disable-pip-version-check -e '.[bench]'
	touch $@

bench: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/run.py

check: lint typecheck test docs

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

# pytest is run from .venv/bin (not `python -m pytest`) so that the working directory is not put on
# sys.path: the package is imported through its installation, where smtp_sansio.adapters exists.
test: $(VENV)/.installed-dev
	$(BIN)/pytest --cov=smtp_sansio --cov-branch --cov-report=term-missing --cov-fail-under=95

docs: $(VENV)/.installed-dev
	$(BIN)/sphinx-build -W --keep-going -b html docs docs/_build/html

clean:
	rm -rf build dist *.egg-info docs/_build docs/_generated .coverage .coverage.* htmlcov \
		.pytest_cache .mypy_cache .ruff_cache .hypothesis
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
