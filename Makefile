# Quick start: `make demo` and `make test`. Each creates .venv and installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test bench docs clean constraints

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Re-install whenever pyproject.toml or the constraints change. constraints.txt pins the exact
# tested versions (CI is reproducible); pyproject.toml keeps the ranges users install from.
$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[test]'
	touch $@

demo: $(VENV)/.installed
	$(BIN)/python -m jaxnet.demo

test: $(VENV)/.installed
	$(BIN)/python -m pytest -q -n auto --dist worksteal tests

bench: $(VENV)/.installed
	$(BIN)/python -m benchmarks

# The documentation site, into site/ (a warning fails the build).
docs: $(VENV)/.installed
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict -d site

# Refresh constraints.txt from a fresh resolution of the ranges (then run the tests).
constraints:
	rm -rf .venv-constraints && $(PYTHON) -m venv .venv-constraints
	.venv-constraints/bin/python -m pip install -q --upgrade pip
	.venv-constraints/bin/python -m pip install -q -e '.[test]'
	{ head -2 constraints.txt; .venv-constraints/bin/python -m pip freeze | grep -v '^-e\|^jaxnet'; } > constraints.new
	mv constraints.new constraints.txt && rm -rf .venv-constraints

clean:
	rm -rf $(VENV) out site
