# PyMySQLLock developer tasks (GNU make).  `make` or `make help` lists them.
#
# Everything runs from a virtualenv in $(VENV) that `make` creates and keeps up
# to date: the project is (re)installed only when setup.cfg or setup.py change.
# The test suite starts its own throwaway MariaDB server; nothing here starts one.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:
MAKEFLAGS += --no-builtin-rules --no-print-directory

VENV ?= .venv
PYTHON ?= python3
EXTRAS ?= test,lint,docs
PYTEST_ARGS ?=
BENCH_ARGS ?=
STRESS_ARGS ?=
# The oldest and newest Python the classifiers claim, for `make pythons`; an interpreter that is
# not installed is reported and skipped.
EXTRA_PYTHONS ?= /root/.pyenv/versions/3.9.18/bin/python3.9 /root/.pyenv/versions/3.13.0/bin/python3.13
# A fast subset, to keep CI short: the core behaviour and the 0.2.0 API on one driver (the
# other drivers' code is the same Python), names and argument parsing.
PYTHONS_TESTS ?= tests/test_acquire.py tests/test_compat.py tests/test_names.py tests/test_cli_args.py
PYTHONS_PYTEST_ARGS ?= -k "not connector and not mysqldb"
# Only what that subset (and tests/conftest.py) needs: no C driver to compile, no framework.
PYTHONS_EXTRAS ?= pymysql,aiomysql,asyncmy
PYTHONS_DEPS ?= pytest>=8 pytest-timeout>=2.1 pytest-asyncio>=1.0 hypothesis>=6.0

BIN := $(VENV)/bin
VPY := $(BIN)/python
STAMP := $(VENV)/.installed
INSTALL_DEPS := setup.cfg setup.py $(wildcard pyproject.toml)
SRC_DIRS := $(wildcard PyMySQLLock tests benchmarks)

# Never prompt: CI has no stdin.
export DEBIAN_FRONTEND := noninteractive
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export PIP_NO_INPUT := 1
PIP := $(VPY) -m pip install --quiet --progress-bar off

.PHONY: help bootstrap sysdeps bench-sysdeps install test legacy-test lint type docs bench demo stress stress-aio stress-fencing dist pythons clean distclean

help: ## Show this list of targets
	@echo "usage: make <target> [VENV=$(VENV)] [PYTHON=$(PYTHON)] [PYTEST_ARGS='...']"
	@awk 'BEGIN {FS = ":.*## "} \
		/^##@ / {printf "\n%s\n", substr($$0, 5); next} \
		/^[a-zA-Z_-]+:.*## / {printf "  %-10s %s\n", $$1, $$2}' $(firstword $(MAKEFILE_LIST))

##@ Setup

sysdeps: ## Install MariaDB server, Galera, client library and pkg-config when missing (apt, root)
	@export PATH="$$PATH:/usr/local/sbin:/usr/sbin:/sbin"; \
	missing=""; \
	command -v mariadbd >/dev/null 2>&1 || missing="$$missing mariadb-server"; \
	command -v pkg-config >/dev/null 2>&1 || missing="$$missing pkg-config"; \
	[ -e /usr/lib/galera/libgalera_smm.so ] || missing="$$missing galera-4"; \
	{ pkg-config --exists libmariadb 2>/dev/null || dpkg -s libmariadb-dev >/dev/null 2>&1; } \
		|| missing="$$missing libmariadb-dev"; \
	command -v cc >/dev/null 2>&1 || missing="$$missing gcc"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "==> installing system packages:$$missing"; \
			apt-get update -qq; \
			apt-get install -y -qq --no-install-recommends $$missing; \
		else \
			echo "error: missing system packages:$$missing" >&2; \
			echo "       install them as root, then run make again:" >&2; \
			echo "         sudo apt-get update && sudo apt-get install -y$$missing" >&2; \
			exit 1; \
		fi; \
	fi

bench-sysdeps: ## redis-server for the benchmarks' Redis peers, when missing (apt, root)
	@export PATH="$$PATH:/usr/local/sbin:/usr/sbin:/sbin"; \
	if ! command -v redis-server >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "==> installing redis-server (the benchmarks start a private one of their own)"; \
			apt-get update -qq; \
			apt-get install -y -qq --no-install-recommends redis-server; \
		else \
			echo "warning: redis-server is missing, the Redis peers will be skipped; as root:" >&2; \
			echo "         sudo apt-get install -y redis-server" >&2; \
		fi; \
	fi

$(VPY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip setuptools wheel

$(STAMP): $(INSTALL_DEPS) | $(VPY)
	$(PIP) -e '.[$(EXTRAS)]'
	@touch $@

$(VENV)/.installed-bench: $(INSTALL_DEPS) | $(STAMP)
	$(PIP) -e '.[$(EXTRAS),bench]'
	@touch $@

$(VENV)/.installed-dist: | $(VPY)
	$(PIP) build twine
	@touch $@

bootstrap: sysdeps $(STAMP) ## System packages, virtualenv and editable install (only what is missing)

install: bootstrap ## Same as bootstrap: make the dev environment ready

##@ Checks

lint: bootstrap ## ruff check and ruff format --check
	$(BIN)/ruff check $(SRC_DIRS)
	$(BIN)/ruff format --check $(SRC_DIRS)

type: bootstrap ## mypy --strict on the package
	$(BIN)/mypy --strict PyMySQLLock

test: bootstrap lint type docs ## lint, type, docs (warnings are errors), the full test suite, then 0.2.0's tests
	@echo "$(VPY) -m pytest $(PYTEST_ARGS)"
	@rc=0; $(VPY) -m pytest $(PYTEST_ARGS) || rc=$$?; \
	if [ "$$rc" -eq 5 ]; then echo "error: pytest collected no tests (exit 5)" >&2; fi; \
	exit "$$rc"
	@$(MAKE) legacy-test

# PyMySQLLock 0.2.0's own test suite, from its sdist on PyPI (never copied into the repository),
# run unchanged against this package; tests/legacy/legacy020.py points its connection fixture
# at a throwaway server.
LEGACY_VERSION := 0.2.0
LEGACY_DIR := .cache/pymysqllock-$(LEGACY_VERSION)
LEGACY_SDIST := $(LEGACY_DIR)/PyMySQLLock-$(LEGACY_VERSION).tar.gz

$(LEGACY_SDIST): | $(VPY)
	mkdir -p $(LEGACY_DIR)
	$(VPY) -m pip download --quiet --no-deps --no-binary :all: \
		PyMySQLLock==$(LEGACY_VERSION) -d $(LEGACY_DIR)

legacy-test: bootstrap $(LEGACY_SDIST) ## Run PyMySQLLock 0.2.0's own tests against this package
	rm -rf $(LEGACY_DIR)/tests
	tar -xzf $(LEGACY_SDIST) -C $(LEGACY_DIR) --strip-components=1 \
		PyMySQLLock-$(LEGACY_VERSION)/tests
	cd $(LEGACY_DIR) && PYTHONPATH='$(CURDIR)/tests/legacy' '$(abspath $(VPY))' -m pytest \
		-c '$(CURDIR)/tests/legacy/pytest.ini' --rootdir . tests

docs: bootstrap ## Build the HTML docs into docs/_build/html (warnings are errors)
	$(BIN)/sphinx-build -W --keep-going -n -b html docs docs/_build/html

##@ Running

bench: sysdeps bench-sysdeps $(VENV)/.installed-bench ## Run the benchmarks (BENCH_ARGS=...)
	$(VPY) -m benchmarks $(BENCH_ARGS)

demo: bootstrap ## Run the command-line demo
	$(BIN)/pymysqllock demo

stress: bootstrap ## Run the stress driver (STRESS_ARGS=...)
	$(VPY) tests/stress.py $(STRESS_ARGS)

stress-aio: bootstrap ## 1,000 random cancellations of async acquires per asyncio driver
	PYMYSQLLOCK_AIO_CANCELLATIONS=1000 $(VPY) -m pytest -q -p no:cacheprovider \
		tests/test_aio_cancel.py -k random_cancellations $(PYTEST_ARGS)

stress-fencing: bootstrap ## Paused holders vs fencing tokens, 3 min x 3 drivers (STRESS_ARGS=...)
	$(VPY) tests/fence_stress.py --require-chaos $(STRESS_ARGS)

##@ Packaging and cleanup

dist: $(VENV)/.installed-dist ## Build sdist and wheel into dist/, check them with twine, run the wheel
	rm -rf dist build
	$(VPY) -m build
	$(BIN)/twine check --strict dist/*
	@# The wheel in a fresh virtualenv, as a user gets it, runs the README's quick start; from a
	@# directory outside the checkout, so that nothing of the checkout is imported.
	fresh=$$(mktemp -d); trap 'rm -rf "$$fresh"' EXIT; \
	$(VPY) -m venv "$$fresh/venv"; \
	"$$fresh/venv/bin/python" -m pip install --quiet --progress-bar off "$$(ls dist/*.whl)[pymysql]"; \
	cd "$$fresh" && env -u PYTHONPATH venv/bin/python '$(CURDIR)/tests/wheel_quickstart.py' '$(CURDIR)/README.rst'

pythons: sysdeps ## The fast test subset on the oldest and newest claimed Python (EXTRA_PYTHONS)
	@for py in $(EXTRA_PYTHONS); do \
		if [ ! -x "$$py" ]; then echo "==> skipping $$py: not installed here"; continue; fi; \
		version=$$("$$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])'); \
		venv=".venv-$$version"; \
		echo "==> Python $$version ($$py): $(PYTHONS_TESTS)"; \
		[ -x "$$venv/bin/python" ] || "$$py" -m venv "$$venv"; \
		"$$venv/bin/python" -m pip install --quiet --progress-bar off -e '.[$(PYTHONS_EXTRAS)]' $(PYTHONS_DEPS); \
		"$$venv/bin/python" -m pytest -q -p no:cacheprovider $(PYTHONS_PYTEST_ARGS) $(PYTHONS_TESTS); \
	done

clean: ## Remove build artifacts, caches and docs/_build (keeps the virtualenv)
	rm -rf build dist .eggs *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis \
		htmlcov .coverage .coverage.* docs/_build
	find . \( -path ./.git -o -path './$(VENV)' -o -path ./.tox \) -prune \
		-o -type d -name __pycache__ -prune -exec rm -rf {} +

distclean: clean ## clean, and also remove the virtualenv and .tox
	rm -rf '$(VENV)' .venv-3.* .tox
