# `make demo` and `make test` each set up .venv on their own; nothing else is needed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# The demo needs only what production installs: not the test tools (browsers' driver, the
# S3 test server, linters), which are most of the time a fresh `make test` spends installing.
DEMO_STAMP := $(VENV)/.service-stamp

.PHONY: test lint typecheck unit check-install check-install-newest demo run clean lock lock-upgrade vendor soak

# The exact versions of requirements/test.txt (the service's lock plus the test tools), then
# the project itself without letting pip pick any dependency of its own.
$(STAMP): pyproject.toml requirements/test.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/test.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $@

$(DEMO_STAMP): pyproject.toml requirements/service.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/service.txt
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

# The same with the newest releases pyproject.toml's ranges allow instead of the lock, as a
# user who runs `pip install .` gets them. Not part of `make test`: its result changes with
# every upstream release, so run it before widening a range or cutting a release.
check-install-newest: $(STAMP)
	$(BIN)/python -m tests.production_install --newest

# The chaos soak (root only): the whole deployment on network namespaces of this machine,
# a steady load, a seeded schedule of faults, the invariants checked (see README, Reliability).
SOAK_MINUTES ?= 5
SOAK_SEED ?= 2026
soak: $(STAMP)
	$(BIN)/python -m tests.soak --minutes $(SOAK_MINUTES) --seed $(SOAK_SEED)

unit: $(STAMP)
	$(BIN)/pytest --ignore=tests/system --ignore=tests/deploy -m "not slow"

# From a terminal, a successful demo keeps running for the console until Ctrl-C; elsewhere
# (and whenever it fails) it stops at once and its exit status is the demo's.
demo: $(DEMO_STAMP)
	$(BIN)/rivya-hooks demo --keep-running

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .hypothesis

# The console's front-end pieces, from the npm registry, committed with their licenses so
# that running the service needs no Node and no build step. `make vendor` refreshes them.
# htmx stays on 2.x: 4.0 is a rewrite only weeks old.
HTMX_VERSION := 2.0.11
UPLOT_VERSION := 1.6.32
VENDOR_DIR := receiver/console/static/vendor

vendor:
	rm -rf $(VENDOR_DIR).new && mkdir -p $(VENDOR_DIR).new/pack
	cd $(VENDOR_DIR).new/pack && npm pack --silent htmx.org@$(HTMX_VERSION) uplot@$(UPLOT_VERSION) >/dev/null
	cd $(VENDOR_DIR).new/pack && for t in *.tgz; do mkdir "$${t%.tgz}" && tar -xzf "$$t" -C "$${t%.tgz}"; done
	cp $(VENDOR_DIR).new/pack/htmx.org-*/package/dist/htmx.min.js $(VENDOR_DIR).new/
	cp $(VENDOR_DIR).new/pack/htmx.org-*/package/LICENSE $(VENDOR_DIR).new/LICENSE-htmx
	cp $(VENDOR_DIR).new/pack/uplot-*/package/dist/uPlot.iife.min.js $(VENDOR_DIR).new/
	cp $(VENDOR_DIR).new/pack/uplot-*/package/dist/uPlot.min.css $(VENDOR_DIR).new/
	cp $(VENDOR_DIR).new/pack/uplot-*/package/LICENSE $(VENDOR_DIR).new/LICENSE-uplot
	printf 'htmx.org %s\nuplot %s\n' $(HTMX_VERSION) $(UPLOT_VERSION) > $(VENDOR_DIR).new/VERSIONS
	rm -rf $(VENDOR_DIR).new/pack $(VENDOR_DIR) && mv $(VENDOR_DIR).new $(VENDOR_DIR)
