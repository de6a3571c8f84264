# `make demo` and `make test` each set up .venv on their own; nothing else is needed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: test lint typecheck unit check-install demo run clean lock lock-upgrade

# The exact versions of requirements/test.txt (the service's lock plus the test tools), then
# the project itself without letting pip pick any dependency of its own.
$(STAMP): pyproject.toml requirements/test.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/test.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $@

# Lock files (pip-tools, hashes of every file PyPI has for each pinned release):
# requirements/service.txt is what production installs, requirements/test.txt adds the test
# tools at the same versions. `make lock` keeps every pin that still fits pyproject.toml's
# ranges (add a dependency there, then run it); `make lock-upgrade` moves every package to the
# newest release the ranges allow.
PIP_COMPILE = CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile --quiet --generate-hashes \
	--strip-extras --allow-unsafe --no-emit-index-url --no-emit-find-links

lock: $(STAMP)
	$(PIP_COMPILE) $(LOCK_ARGS) --output-file requirements/service.txt pyproject.toml
	$(PIP_COMPILE) $(LOCK_ARGS) --extra test --constraint requirements/service.txt \
		--output-file requirements/test.txt pyproject.toml

lock-upgrade:
	$(MAKE) lock LOCK_ARGS=--upgrade

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# The whole suite. Tests that need PostgreSQL or Redis run when those answer, are skipped
# with the reason when they do not, and fail when CI=true.
test: lint typecheck check-install
	$(BIN)/pytest

# Production as a user installs it: the wheel and requirements/service.txt in a new venv
# outside the checkout, every Procfile role run from it (see tests/production_install.py).
check-install: $(STAMP)
	$(BIN)/python -m tests.production_install

unit: $(STAMP)
	$(BIN)/pytest tests/unit

demo: $(STAMP)
	$(BIN)/rivya-hooks demo

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .hypothesis
