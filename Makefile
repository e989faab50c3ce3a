# Paved: `make demo` runs the operator on a local control plane; `make test` runs
# everything CI runs. Both start with .ci/install (idempotent: a warm machine skips
# what it has), so both work on a fresh machine.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
CARGO ?= cargo
# Tests get their own control plane, so `make test` never disturbs a running demo.
TEST_CP_DIR ?= $(CURDIR)/target/control-plane-test

.PHONY: help deps build test fmt-check clippy deny unit e2e fakes backstage bench crds generate generate-check demo demo-down

help:
	@echo "make demo       control plane + CRDs + compositions + operator + examples, waits for Ready"
	@echo "make demo-down  stop the demo's operator and control plane"
	@echo "make test       fmt, clippy -D warnings, unit tests, Backstage tests, e2e tests on a real control plane"
	@echo "make bench      benchmarks on a local control plane: prints a table, writes target/paved-bench/results.json"
	@echo "make generate   regenerate crds/, the chart copies and the README reasons table (generate-check: only compare)"

# What a fresh machine lacks (etcd, PostgreSQL, Redis, lua5.1, PyYAML, rustfmt, clippy).
deps:
	bash .ci/install

# The e2e tests run an operator built with test-only crash points.
build:
	$(CARGO) build --workspace --all-targets --features paved-operator/test-crash-points

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets --features paved-operator/test-crash-points -- -D warnings

# Every cargo invocation uses the same features: the operator's integration tests build
# its binary, which the e2e tests run with the test-only crash points.
FEATURES := --features paved-operator/test-crash-points

unit:
	$(CARGO) test --workspace --exclude paved-e2e $(FEATURES)

# The e2e tests start the control plane themselves (e2e/control-plane up is
# idempotent) and each test runs its own operator, so they run one at a time.
e2e: build
	@rc=0; PAVED_CP_DIR=$(TEST_CP_DIR) $(CARGO) test -p paved-e2e --no-fail-fast -- --test-threads=1 || rc=$$?; \
	  PAVED_CP_DIR=$(TEST_CP_DIR) e2e/control-plane down; exit $$rc

# One cargo invocation over the whole workspace, so dependencies are built once with
# one feature set (per-package selections would each rebuild them).
# Benchmarks on their own control plane, with the release build of the operator;
# BENCH_ARGS e.g. --claims 200 --cache-claims 2000 --aws-instances 100.
BENCH_CP_DIR ?= $(CURDIR)/target/control-plane-bench
BENCH_ARGS ?=
bench:
	$(CARGO) build --release -p paved-operator
	$(CARGO) build -p paved-e2e --bin paved-bench
	e2e/build-kro >/dev/null
	@rc=0; PAVED_CP_DIR=$(BENCH_CP_DIR) PAVED_OPERATOR_PROFILE=release \
	  $(CARGO) run -q -p paved-e2e --bin paved-bench -- $(BENCH_ARGS) || rc=$$?; \
	  PAVED_CP_DIR=$(BENCH_CP_DIR) e2e/control-plane down; exit $$rc

# The loopback fakes of the Azure and Cloud SQL APIs, and the fault proxy put in front
# of moto, have their own tests.
fakes:
	python3 -m unittest e2e/fakes/test_azure_postgres.py e2e/fakes/test_gcp_sqladmin.py e2e/fakes/test_fault_proxy.py

# The Backstage template and catalog module (backstage/): npm ci from the committed
# lockfile (a warm machine reuses its installed tree), then their tests: the template
# against crds/, the real scaffolder's dry run and a real task run, the module. Their
# run against the control plane is the e2e test e2e/tests/backstage.rs.
backstage:
	backstage/install
	cd backstage && npm test

# Licenses, bans and sources of every dependency (deny.toml), with the pinned cargo-deny.
deny:
	"$$(e2e/build-cargo-deny)" deny --log-level error check licenses bans sources

test: deps fmt-check clippy deny build fakes backstage
	@rc=0; PAVED_CP_DIR=$(TEST_CP_DIR) $(CARGO) test --workspace $(FEATURES) --no-fail-fast -- --test-threads=1 || rc=$$?; \
	  PAVED_CP_DIR=$(TEST_CP_DIR) e2e/control-plane down; exit $$rc

# Everything derived from the Rust types: crds/, the chart's copies of crds/ and
# compositions/, the README's reasons table. A test (and `make generate-check`) fails
# when any of them drift.
generate:
	$(CARGO) run -q -p paved-cli -- generate

generate-check:
	$(CARGO) run -q -p paved-cli -- generate --check

crds: generate

demo: deps
	e2e/demo up

demo-down:
	e2e/demo down
