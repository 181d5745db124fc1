# ipsflow: the two commands a newcomer needs are `make run` and `make test` (see README.md).
SHELL := /bin/bash
UV_VERSION := 0.13.9
VENV := .venv
PY := $(VENV)/bin/python
UV := python3 -m uv

.PHONY: go-test run test deps stack-up stack-down stack-status stack-reset stack-sweep lint typecheck bench bench-table unit fuzz chaos clean

deps:  ## Python dependencies from uv.lock into .venv (exact versions); BPMN tools (npm ci in tools/bpmn, chromium); the letter font
	@$(UV) --version >/dev/null 2>&1 || { echo "[deps] installing uv $(UV_VERSION) from PyPI"; \
	  python3 -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"; }
	@$(UV) sync --frozen --quiet
	@echo "[deps] .venv synced from uv.lock"
	@bash tools/bpmn/install.sh
	@echo "[deps] bpmnlint, bpmn-js (tools/bpmn/node_modules) and chromium present"
	@bash tools/console/install.sh
	@echo "[deps] the console's diagram bundle (tools/console/dist) and axe-core present"
	@bash tools/fonts/install.sh
	@echo "[deps] the letter font (fonts-dejavu-core) present"

stack-up:  ## RabbitMQ + FerretDB, installed and started when missing
	@bash deploy/local/stack.sh up

stack-down:
	@bash deploy/local/stack.sh down

stack-status:  ## does RabbitMQ answer AMQP, does FerretDB answer; with .venv also the namespaces test runs left
	@if [ -x $(VENV)/bin/ipsflow ]; then $(VENV)/bin/ipsflow stack status; else bash deploy/local/stack.sh status; fi

stack-reset:  ## asks, then wipes the local broker and database state (.local/rabbitmq, .local/ferretdb), starts fresh
	@bash deploy/local/stack.sh reset

stack-sweep: deps  ## removes namespaces of test and benchmark runs that were left behind
	@$(VENV)/bin/ipsflow stack sweep

run: deps stack-up  ## the whole system with demo data
	@$(VENV)/bin/ipsflow run --demo

test: deps stack-up go-test  ## every test: unit, bpmn, integration, e2e, on the real broker and database; the FerretDB front's Go tests
	@$(VENV)/bin/pytest -q -m "not chaos"

# Long campaigns on a RabbitMQ node / 3-node cluster and a FerretDB of their own (tests/support/chaos.py; the shared
# stack is not touched): 1,000 cases with replicas killed, the broker and FerretDB killed; a cluster node killed.
chaos: deps  ## the long chaos campaigns (IPSFLOW_CHAOS_CASES, default 1000); make test runs a bounded one
	@IPSFLOW_CHAOS=1 $(VENV)/bin/pytest -q -s -m chaos tests/integration/test_chaos_campaign.py

# The FerretDB front (deploy/ferretdb): unit tests, tests against an embedded FerretDB, and a bounded fuzz run of
# the wire-message parser (make fuzz explores longer: GO_FUZZTIME).
GO_FUZZTIME ?= 15s
go-test:
	@cd deploy/ferretdb && go test -count=1 ./... && \
	  ./fuzz.sh FuzzParseOpMsg $(GO_FUZZTIME) && ./fuzz.sh FuzzReadMessage $(GO_FUZZTIME)
	@echo "[go-test] deploy/ferretdb: tests and $(GO_FUZZTIME) of fuzzing per target passed"

unit: deps
	@$(VENV)/bin/pytest -q -m "unit"

# make test runs the same fuzz tests with 50 examples per operation; each operation may take longer here.
fuzz: deps stack-up  ## schemathesis on every service's OpenAPI, 500 examples per operation (IPSFLOW_FUZZ_EXAMPLES); the front's parser 5 min per target
	@$(MAKE) --no-print-directory go-test GO_FUZZTIME=$${GO_FUZZTIME:-5m}
	@IPSFLOW_FUZZ_EXAMPLES=$${IPSFLOW_FUZZ_EXAMPLES:-500} IPSFLOW_FUZZ_SEED=$${IPSFLOW_FUZZ_SEED:-random} \
	  $(VENV)/bin/pytest -q -m fuzz --timeout=3600 tests/fuzz

lint: deps
	@$(VENV)/bin/ruff check services tests
	@$(VENV)/bin/mypy

bench: deps stack-up  ## benchmarks in tests/perf (print figures; not tests)
	@for b in tests/perf/bench_*.py; do [ "$$b" = tests/perf/bench_table.py ] && continue; \
	  echo "== $$b"; PYTHONPATH=. $(PY) $$b || exit 1; done

bench-table: deps stack-up  ## issue 14's table in one run; OLD=<checkout> adds the old code's column (see README, Performance)
	@PYTHONPATH=.:services $(PY) tests/perf/bench_table.py $(if $(OLD),--old $(OLD)) $(BENCH_TABLE_ARGS)

clean:
	rm -rf $(VENV) .local/bin
