# Every install step lives here: CI and new users run only these targets.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-test

.PHONY: install test lint clean bench

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e ".[test]"
	@touch $(STAMP)

install: $(STAMP)

LINT_PATHS = airflow_provider_cfbilling tests example_dags scripts bench deploy

lint: $(STAMP)
	$(PY) -m ruff check $(LINT_PATHS)
	$(PY) -m ruff format --check $(LINT_PATHS)
	$(PY) -m mypy

# The SQL landing's tests start a throwaway PostgreSQL server from Debian's binaries: `deploy-postgres`
# (below) installs them when missing; without them those tests fail, saying so.
test: $(STAMP) deploy-postgres lint docs
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# Benchmarks against the emulator over loopback (never part of `make test`).
bench: $(STAMP)
	$(PY) bench/run.py

# A real Airflow run of the daily example DAG against the emulator, into .demo/ (throwaway).
.PHONY: demo docs
demo: $(STAMP)
	$(PY) scripts/demo.py

# The Sphinx site (warnings are errors); its tools are the `docs` extra, pinned in constraints.txt.
DOCS_STAMP := $(VENV)/.installed-docs

$(DOCS_STAMP): $(STAMP) pyproject.toml constraints.txt
	$(PY) -m pip install -q -c constraints.txt -e ".[test,docs]"
	@touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	$(VENV)/bin/sphinx-build -E -W --keep-going -b html docs docs/_build/html

# A real Airflow 3 deployment (PostgreSQL, API server, scheduler with LocalExecutor, DAG processor,
# triggerer) backfilling the many-accounts example DAG against the emulator; see docs/deployment.md. Never part of
# `make test`. PostgreSQL comes from Debian's packages when its server is missing (needs root; a
# cluster the package may start is stopped again: the test runs its own throwaway server);
# the Postgres drivers (psycopg2 for the scheduler, asyncpg for the API server) come with the
# `postgres` extra of apache-airflow, pinned by constraints.txt where it pins them.
DEPLOY_STAMP := $(VENV)/.installed-deploy
DEPLOY_TIMEOUT ?= 900

$(DEPLOY_STAMP): $(STAMP) constraints.txt
	$(PY) -m pip install -q -c constraints.txt 'apache-airflow[postgres]' apache-airflow-providers-celery redis
	@touch $(DEPLOY_STAMP)

.PHONY: test-deploy deploy-postgres
deploy-postgres:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1; then \
		echo "PostgreSQL server binaries present"; \
	else \
		echo "Installing PostgreSQL from Debian's packages"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql && \
		{ pg_lsclusters -h 2>/dev/null | awk '$$4 == "online" {print $$1, $$2}' | \
			while read version cluster; do pg_ctlcluster "$$version" "$$cluster" stop; done; true; }; \
	fi

test-deploy: $(DEPLOY_STAMP) deploy-postgres
	$(PY) -m ruff check deploy
	$(PY) -m mypy $(sort $(wildcard deploy/*.py))
	timeout -k 60 $(DEPLOY_TIMEOUT) $(PY) deploy/run.py --timeout $$(( $(DEPLOY_TIMEOUT) - 60 ))

# Issue 19: the same deployment with the CeleryExecutor (docs/deployment.md): a Redis broker (Debian's
# `redis-server`, installed when missing; a server the package may start is stopped again: the test
# runs its own throwaway one without persistence), PostgreSQL as metadata DB and result backend, two
# Celery workers that share nothing local, and the lake on an S3-protocol server (moto). Shorter than
# `test-deploy` (6 days, 2 accounts) to keep `.ci/run` short. The Celery provider, celery and the
# redis client come with the deploy stamp above, pinned in constraints.txt.
CELERY_DEPLOY_ARGS ?= --days 6 --pending-days 5 --accounts 2

.PHONY: test-deploy-celery deploy-redis
deploy-redis:
	@if command -v redis-server >/dev/null 2>&1; then \
		echo "Redis server present"; \
	else \
		echo "Installing Redis from Debian's packages"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server && \
		{ if [ -x /etc/init.d/redis-server ]; then /etc/init.d/redis-server stop; fi; true; }; \
	fi

test-deploy-celery: $(DEPLOY_STAMP) deploy-postgres deploy-redis
	$(PY) -m ruff check deploy
	$(PY) -m mypy $(sort $(wildcard deploy/*.py))
	timeout -k 60 $(DEPLOY_TIMEOUT) $(PY) deploy/run.py --executor celery $(CELERY_DEPLOY_ARGS) --timeout $$(( $(DEPLOY_TIMEOUT) - 60 ))

# Issue 9: the whole suite on every supported Airflow x Python, one virtualenv each under .venvs/
# (pinned by constraints/airflow-<airflow>-py<python>.txt). MATRIX_JOBS environments at a time;
# MATRIX_ARGS passes options through, e.g. MATRIX_ARGS="--only af2.11-py3.11 -- -x tests/hooks".
MATRIX_JOBS ?= 2
MATRIX_ARGS ?=

.PHONY: test-matrix test-matrix-list

test-matrix:
	$(PYTHON) scripts/matrix.py --jobs $(MATRIX_JOBS) $(MATRIX_ARGS)

test-matrix-list:
	@$(PYTHON) scripts/matrix.py --list

# Issue 19: the release artifacts, checked (docs/packaging.md). Builds the sdist and the wheel into
# dist/ (`python -m build`; its setuptools pinned by constraints/build-backend.txt), checks their
# metadata (`twine check --strict`) and their files (`scripts/dist.py contents`: the wheel holds the
# package, emulator included, and no tests, docs, build output or leftovers), then installs the wheel
# with nothing but apache-airflow (pinned by constraints.txt) into a clean virtualenv, build/dist-venv,
# whose Python runs the daily example DAG against the emulator from the wheel (`scripts/dist.py smoke`).
DIST_STAMP := $(VENV)/.installed-dist
DIST_VENV := build/dist-venv

$(DIST_STAMP): $(STAMP) constraints.txt
	$(PY) -m pip install -q -c constraints.txt build twine
	@touch $(DIST_STAMP)

.PHONY: dist
dist: $(DIST_STAMP)
	rm -rf dist $(DIST_VENV) build/dist-smoke
	PIP_CONSTRAINT=$(CURDIR)/constraints/build-backend.txt $(PY) -m build --outdir dist .
	$(PY) -m twine check --strict dist/*
	$(PY) scripts/dist.py contents dist
	$(PY) -m venv $(DIST_VENV)
	$(DIST_VENV)/bin/python -m pip install -q --upgrade pip
	$(DIST_VENV)/bin/python -m pip install -q -c constraints.txt apache-airflow dist/*.whl
	$(DIST_VENV)/bin/python scripts/dist.py smoke --workdir build/dist-smoke
