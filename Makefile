# Kaipiao — `make run` and `make test` work on a fresh Debian 12 machine with Rust, node
# and Python. Both install what is missing first and are idempotent.

SHELL := /bin/bash
CARGO ?= cargo
PYTHON ?= python3
APT_PACKAGES := build-essential pkg-config libssl-dev libdbus-1-dev
STAMP := target/.deps-installed

.PHONY: run test deps build bench fmt clean-demo

## Installs the system and Python packages the build and the tests need (once per machine).
deps: $(STAMP)

$(STAMP):
	@scripts/install-deps.sh $(APT_PACKAGES)
	@mkdir -p target && touch $(STAMP)

build: deps
	$(CARGO) build --workspace --bins

## The narrated terminal demo against a local sandbox taxd (CLI until the app lands).
run: build
	@scripts/demo.sh

## Every test: unit, property, integration and end-to-end over real processes.
## Ends with nextest's own summary line.
test: deps
	$(CARGO) build --workspace --bins
	$(CARGO) nextest run --workspace --no-fail-fast

## Criterion benchmarks; figures go to docs/BENCHMARKS.md by hand.
bench: deps
	$(CARGO) bench -p kaipiao-core --bench core -- --warm-up-time 1 --measurement-time 3
	$(CARGO) bench -p kaipiao-ledger --bench issue -- --warm-up-time 1 --measurement-time 3

fmt:
	$(CARGO) fmt --all
