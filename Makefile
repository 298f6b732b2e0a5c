# Feria: the two commands a newcomer needs are `make run` and `make test`.

CARGO ?= cargo
export CARGO_TERM_COLOR ?= auto

# nextest runs each test in its own process (parallel, isolated); plain cargo test is the
# fallback on a machine without it.
NEXTEST := $(shell $(CARGO) nextest --version >/dev/null 2>&1 && echo yes)
ifeq ($(NEXTEST),yes)
TEST_RUN = $(CARGO) nextest run --workspace --no-fail-fast
else
TEST_RUN = $(CARGO) test --workspace --no-fail-fast
endif

# The suites share the local stand-ins (localstripe, the EVM node, the S3 server) and the machine's two
# cores: `make -j test` still runs SQLite, then PostgreSQL, then the doc tests.
.NOTPARALLEL:

.PHONY: run build test test-sqlite test-postgres test-doc lint fmt openapi bench migrate clean localstripe evm-node s3-server fuzz fuzz-long crash-long chaos-long

## Build and run the server on the embedded default (SQLite under ./data).
run:
	$(CARGO) run --bin feria -- serve

build:
	$(CARGO) build --workspace --all-targets

## The whole suite on SQLite, then again on PostgreSQL when TEST_DATABASE_URL is set.
test: test-sqlite test-postgres test-doc

test-sqlite:
	@echo "==> Feria test suite on SQLite (FERIA_TEST_BACKEND=sqlite)"
	FERIA_TEST_BACKEND=sqlite $(TEST_RUN)

test-postgres:
	@if [ -n "$$TEST_DATABASE_URL" ]; then \
		echo "==> Feria test suite on PostgreSQL (FERIA_TEST_BACKEND=postgres)"; \
		FERIA_TEST_BACKEND=postgres $(TEST_RUN); \
	else \
		echo "==> TEST_DATABASE_URL is not set: the PostgreSQL run is skipped"; \
	fi

test-doc:
	@echo "==> documentation examples"
	$(CARGO) test --workspace --doc

## Schema fuzzing with schemathesis against a real server (docs/RELIABILITY.md): SQLite,
## then PostgreSQL when TEST_DATABASE_URL is set. fuzz-long draws 20x the examples.
fuzz:
	bash scripts/api-fuzz.sh
	@if [ -n "$$TEST_DATABASE_URL" ]; then FUZZ_BACKEND=postgres bash scripts/api-fuzz.sh; fi

fuzz-long:
	FUZZ_MAX_EXAMPLES=500 $(MAKE) fuzz

## The SIGKILL purchase storm with 10 kills instead of the suite's one (docs/RELIABILITY.md).
crash-long:
	CRASH_STORM_ROUNDS=10 FERIA_TEST_BACKEND=sqlite $(CARGO) nextest run -p feria --test crash_safety --no-capture
	@if [ -n "$$TEST_DATABASE_URL" ]; then \
		CRASH_STORM_ROUNDS=10 FERIA_TEST_BACKEND=postgres $(CARGO) nextest run -p feria --test crash_safety --no-capture; \
	fi

## The multi-node chaos test (gateway/tests/chaos.rs, docs/SCALING.md) with a 3-minute
## storm instead of the suite's 20 s; PostgreSQL only (its own cluster, started by the test).
chaos-long:
	CHAOS_SECONDS=180 FERIA_TEST_BACKEND=postgres $(CARGO) nextest run -p feria --test chaos --no-capture

## Start the local Stripe-compatible server the Stripe client's tests use (docs/STRIPE.md);
## the tests start it themselves when STRIPE_TEST_BASE_URL is unset.
localstripe:
	bash scripts/localstripe.sh

## Start the local EVM node (anvil) the on-chain tests use (docs/ONCHAIN.md); the tests
## start it themselves when EVM_TEST_RPC_URL is unset.
evm-node:
	bash scripts/evm-node.sh

## Start the local S3-compatible server (moto) the media store's tests use
## (docs/DEPLOYMENT.md, "Media storage"); the tests start it themselves when
## S3_TEST_ENDPOINT is unset.
s3-server:
	bash scripts/s3-server.sh

## Formatting, unused dependencies (cargo-machete; .ci/run installs the pinned version),
## and clippy with warnings as errors.
MACHETE_VERSION := 0.9.1
lint:
	$(CARGO) fmt --all --check
	@$(CARGO) machete --version >/dev/null 2>&1 || { \
		echo "cargo-machete is missing: cargo install cargo-machete --version $(MACHETE_VERSION) --locked"; exit 1; }
	$(CARGO) machete
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## Regenerate the committed OpenAPI document from the code.
openapi:
	$(CARGO) run --quiet --bin feria -- openapi > openapi/openapi.json

migrate:
	$(CARGO) run --bin feria -- migrate

## Benchmarks (docs/BENCHMARKS-HOWTO.md): release build, `feria seed`, wrk against each
## backend, pgbench and in-process baselines; writes BENCHMARKS.md. It reports, it never
## fails on a number. BENCH_SIZE=small|medium|full (default medium).
BENCH_SIZE ?= medium
bench:
	BENCH_SIZE=$(BENCH_SIZE) bash scripts/bench.sh

clean:
	$(CARGO) clean
