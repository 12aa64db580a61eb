# Quick start: `make demo` and `make test`. Each creates .venv and installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test test-oldest bench docs clean constraints

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

# The oldest jax pyproject.toml allows (constraints.txt pins the newest tested), on a smoke
# subset: the 2-device contract (a failing instance on a sharded program neither aborts nor
# hangs) and sharded training equal to unsharded. CI runs it after `make test`.
OLDEST_JAX := 0.9.2
.venv-oldest/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv .venv-oldest
	.venv-oldest/bin/python -m pip install -q --upgrade pip
	sed 's/^jax==.*/jax==$(OLDEST_JAX)/; s/^jaxlib==.*/jaxlib==$(OLDEST_JAX)/' constraints.txt > .venv-oldest/constraints.txt
	.venv-oldest/bin/python -m pip install -q -c .venv-oldest/constraints.txt -e '.[test]'
	touch $@

test-oldest: .venv-oldest/.installed
	.venv-oldest/bin/python -c "import jax; assert jax.__version__ == '$(OLDEST_JAX)', jax.__version__"
	.venv-oldest/bin/python -m pytest -q tests/test_sharding.py \
		tests/test_contract.py::test_sharded_program_with_a_failing_instance_survives \
		tests/test_contract.py::test_one_bad_instance_is_nan_and_named

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
	rm -rf $(VENV) .venv-oldest out site
