# syncbind — the two set-up commands are `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help install install-demo chromium sqlite3-cli node-tools demo-edit test test-unit test-sqlite test-services test-tail test-matrix lint format demo bench dist clean

help:
	@echo "make demo   - serve the sample site on http://127.0.0.1:8000 (SQLite, in-memory layer; PORT=...)"
	@echo "make demo-edit - with the demo running, change a product from another process (PORT=... as for make demo)"
	@echo "make test   - install the test tools and run the whole suite"
	@echo "make test-unit - only the tests marked unit: no database, no server (tests/README.md)"
	@echo "make bench  - benchmark syncbind against its peers (QUICK=1: under 10 minutes)"
	@echo "make dist   - build the sdist and wheel into dist/ and check them"
	@echo "make test-matrix - the SQLite suite on Django 6.0 (Python 3.12) and 6.1 (Python 3.13)"

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# Development tools are dependency groups (pyproject.toml), not extras users would see.
$(VENV)/.installed-test: $(PY) pyproject.toml
	$(PIP) install -q -e . --group test
	@touch $@

$(VENV)/.installed-bench: $(PY) pyproject.toml
	$(PIP) install -q -e . --group bench
	@touch $@

$(VENV)/.installed-dist: $(PY) pyproject.toml
	$(PIP) install -q --group dist
	@touch $@

$(VENV)/.installed-demo: $(PY) pyproject.toml
	$(PIP) install -q -e ".[server,redis]"
	@touch $@

install: $(VENV)/.installed-test

LINTED := $(wildcard syncbind tests sample_site bench)

lint: install
	$(PY) -m ruff check $(LINTED)
	$(PY) -m ruff format --check $(LINTED)
	PYTHONPATH=. $(PY) -m mypy

format: install
	$(PY) -m ruff format $(LINTED)
	$(PY) -m ruff check --fix $(LINTED)

# The in-process suite on SQLite + the in-memory layer, then on PostgreSQL +
# channels-redis when those servers answer (always, under SYNCBIND_REQUIRE_SERVICES=1),
# then, once, the tail (marker e2e: the browser, the sample site, the distributed and
# fault scenarios, the bench's smoke run), each of which starts its own servers.
test: lint test-sqlite test-services test-tail

# The in-process suite runs on every core (pytest-xdist, each file's tests on one worker,
# so a module's fixtures are made once; each worker has its own test database and Redis
# prefix, tests/settings.py). PARALLEL= runs it in one process.
PARALLEL ?= -n auto --dist loadfile

# The browser tests drive Debian's Chromium (Playwright cannot download its own here).
chromium:
	@if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		echo "Installing Debian's chromium for the browser tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null \
			|| echo "chromium could not be installed: the browser tests will skip (or fail under SYNCBIND_REQUIRE_SERVICES)"; \
	fi

# The sample site's tests write to its database with the sqlite3 command line, as the README does.
sqlite3-cli:
	@if ! command -v sqlite3 >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		echo "Installing Debian's sqlite3 command line for the sample site's tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sqlite3 >/dev/null \
			|| echo "sqlite3 could not be installed: its test will skip (or fail under SYNCBIND_REQUIRE_SERVICES)"; \
	fi

# tsc and the AsyncAPI JSON Schemas (tests/node/package.json, its lock file) for the
# schema and TypeScript tests, in tests/node/node_modules (gitignored).
node-tools:
	@if command -v npm >/dev/null 2>&1; then \
		if [ ! -f tests/node/node_modules/.installed ] || [ tests/node/package-lock.json -nt tests/node/node_modules/.installed ]; then \
			echo "Installing tests/node/package.json with npm ci"; \
			(cd tests/node && npm ci --no-audit --no-fund --loglevel=error) && touch tests/node/node_modules/.installed; \
		fi; \
	else \
		echo "npm not found: the schema and TypeScript tests will skip (or fail under SYNCBIND_REQUIRE_SERVICES)"; \
	fi

# The tests marked unit (no database, no server): a quick check while editing; `make test`
# runs them with the rest.
test-unit: install
	SYNCBIND_TEST_DB=sqlite SYNCBIND_TEST_LAYER=memory $(PY) -m pytest -m unit $(PYTEST_ARGS)

test-sqlite: install sqlite3-cli node-tools
	SYNCBIND_TEST_DB=sqlite SYNCBIND_TEST_LAYER=memory $(PY) -m pytest -m "not e2e" $(PARALLEL) $(PYTEST_ARGS)

test-services: install sqlite3-cli node-tools
	@if [ -n "$$SYNCBIND_REQUIRE_SERVICES" ] || $(PY) -m tests.services_available; then \
		echo "== PostgreSQL + channels-redis =="; \
		SYNCBIND_TEST_DB=postgres SYNCBIND_TEST_LAYER=redis $(PY) -m pytest -m "not e2e" $(PARALLEL) $(PYTEST_ARGS); \
	else \
		echo "PostgreSQL or Redis not reachable on 127.0.0.1: skipping the PostgreSQL + channels-redis run"; \
	fi

test-tail: install chromium sqlite3-cli node-tools
	SYNCBIND_TEST_DB=sqlite SYNCBIND_TEST_LAYER=memory $(PY) -m pytest -m e2e $(PYTEST_ARGS)

# The other supported combinations, each in its own virtualenv: Django 6.0 on Python
# 3.12 and Django 6.1 on Python 3.13 (`make test` is Django 5.2 on Python 3.11). The
# SQLite + in-memory in-process suite (the tail runs once, in `make test`); the Pythons
# are found on PATH or under pyenv.
MATRIX := dj60 dj61
MATRIX_PYTHON_dj60 := 3.12
MATRIX_DJANGO_dj60 := Django>=6.0,<6.1
MATRIX_PYTHON_dj61 := 3.13
MATRIX_DJANGO_dj61 := Django>=6.1,<6.2

.venv-%/.installed: pyproject.toml
	rm -rf .venv-$*
	$$(.ci/find-python $(MATRIX_PYTHON_$*)) -m venv .venv-$*
	.venv-$*/bin/python -m pip install -q --upgrade pip
	.venv-$*/bin/python -m pip install -q -e . --group test "$(MATRIX_DJANGO_$*)"
	@touch $@

test-matrix: $(foreach combo,$(MATRIX),.venv-$(combo)/.installed) sqlite3-cli node-tools
	@set -e; for combo in $(MATRIX); do \
		echo "== $$combo: $$(.venv-$$combo/bin/python -c 'import sys, django; print("Python", sys.version.split()[0], "Django", django.__version__)') =="; \
		SYNCBIND_TEST_DB=sqlite SYNCBIND_TEST_LAYER=memory .venv-$$combo/bin/python -m pytest -m "not e2e" $(PARALLEL) $(PYTEST_ARGS); \
	done

# The sample site on SQLite (sample_site/db.sqlite3) and the in-memory channel layer.
PORT ?= 8000

demo: $(VENV)/.installed-demo
	@$(PY) -c "import socket, sys; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1', $(PORT)))" 2>/dev/null \
		|| { echo "Port $(PORT) is in use: stop what runs there, or choose another: make demo PORT=8001"; exit 1; }
	cd sample_site && $(abspath $(PY)) manage.py migrate --noinput
	cd sample_site && $(abspath $(PY)) manage.py demo_setup
	@echo "Open http://127.0.0.1:$(PORT)/accounts/login/ and log in as demo / demo (Ctrl-C stops the server)"
	cd sample_site && REDIS_URL=$(REDIS_URL) $(abspath $(PY)) -m uvicorn sample_site.asgi:application --host 127.0.0.1 --port $(PORT)

# With the demo running: change a product through its HTTP API, from another process.
demo-edit: $(VENV)/.installed-demo
	cd sample_site && $(abspath $(PY)) manage.py demo_edit --port $(PORT)

# Installs the peers (djangochannelsrestframework, channels-binding) and runs every
# scenario: bench/results/latest.json, BENCHMARKS.md and bench/results/*.png.
# PostgreSQL and Redis on 127.0.0.1 are used when they answer.
bench: $(VENV)/.installed-bench
	$(PY) -m bench.run $(if $(QUICK),--quick)

# The sdist (with all of tests/, docs/, bench/ and sample_site/) and the wheel, checked
# by twine and by .ci/check_dist.py against what git tracks.
dist: $(VENV)/.installed-dist
	rm -rf dist build syncbind.egg-info  # a stale SOURCES.txt would leak into the sdist
	$(PY) -m build --outdir dist .
	$(PY) -m twine check --strict dist/*
	$(PY) .ci/check_dist.py dist

clean:
	rm -rf $(VENV) .venv-dj* build dist *.egg-info .pytest_cache sample_site/db.sqlite3* tests/node/node_modules
