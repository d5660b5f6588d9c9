# Kaipiao — `make run` and `make test` work on a fresh Debian 12 machine with Rust, node
# and Python. Both install what is missing first and are idempotent.

SHELL := /bin/bash
CARGO ?= cargo
PYTHON ?= python3
APT_PACKAGES := build-essential pkg-config libssl-dev libdbus-1-dev \
  libwebkit2gtk-4.1-dev xvfb xauth webkit2gtk-driver fonts-noto-cjk imagemagick libfaketime \
  poppler-utils zbar-tools
# Bumped when install-deps.sh learns something new, so existing machines run it again.
STAMP := target/.deps-installed-6

.PHONY: bench-batch run demo test deps build bench fmt clean-demo ui ui-test bindings app crash fuzz package bench-release-app

## Installs the system and Python packages the build and the tests need (once per machine).
deps: $(STAMP)

$(STAMP):
	@scripts/install-deps.sh $(APT_PACKAGES)
	@mkdir -p target && touch $(STAMP)

build: deps
	$(CARGO) build --workspace --bins

## The front end (ui/dist, embedded in the app at compile time).
ui: deps
	cd ui && npm run build

## Front-end unit tests (vitest, jsdom, mocked IPC).
ui-test: deps
	cd ui && npm test

## The desktop app (debug build, front end embedded; the same build as `make run`).
app: ui
	$(CARGO) build --workspace --bins

## Regenerates ui/src/lib/bindings from crates/desk/src/dto.rs (ts-rs).
bindings:
	UPDATE_BINDINGS=1 $(CARGO) test -p kaipiao-desk --test engine bindings_are_fresh

## The desktop app against a local sandbox taxd (fresh data in .demo/app; taxd stops on exit).
## Builds exactly what `make test` builds first (`--workspace --bins`): one feature set, so
## neither target recompiles what the other built.
run: ui
	$(CARGO) build --workspace --bins
	@src-tauri/run-demo.sh

## The narrated terminal demo against a local sandbox taxd.
demo: build
	@scripts/demo.sh

## Every test: unit, property, integration and end-to-end over real processes, the
## front end's vitest suite, and the real app window over WebDriver (kaipiao-app's
## `window` tests, run by nextest). Ends with nextest's own summary line.
test: deps
	cd ui && npm run check && npm test && npm run build
	$(CARGO) build --workspace --bins
	$(CARGO) nextest run --workspace --no-fail-fast

## Batch issue from Excel against JSONL import and its floor, and the catalogs' type-ahead
## at 10,000 items and 5,000 buyers (docs/BENCHMARKS.md).
bench-batch: deps
	$(CARGO) bench -p kaipiao-desk --bench batch
	$(CARGO) bench -p kaipiao-desk --bench catalog

## Criterion benchmarks; figures go to docs/BENCHMARKS.md by hand.
bench: deps
	$(CARGO) bench -p kaipiao-core --bench core -- --warm-up-time 1 --measurement-time 3
	$(CARGO) bench -p kaipiao-ledger --bench issue -- --warm-up-time 1 --measurement-time 3
	$(CARGO) bench -p kaipiao-sync --bench drain
	$(CARGO) bench -p kaipiao-pdf --bench render -- --warm-up-time 1 --measurement-time 3
	$(CARGO) bench -p kaipiao-desk --bench batch
	cd ui && npm run build
	$(CARGO) bench -p kaipiao-app --bench app --profile dev

## The crash loop (issue 10): 1,000 random kill -9 moments of issue, import and sync
## (KAIPIAO_CRASH_KILLS to change), each followed by the checks; minutes, not part of
## `make test`. Figures go to docs/BENCHMARKS.md by hand.
crash: deps
	$(CARGO) build --workspace --bins
	$(CARGO) run -p kaipiao-tests --example crash_loop

## The fuzzer (issue 10): a million generated drafts, CLI arguments, wire bodies both
## ways and JSON Lines, in process (KAIPIAO_FUZZ_INPUTS, KAIPIAO_FUZZ_SEED); release build.
fuzz: deps
	$(CARGO) run --release -p kaipiao-tests --example fuzz

## The fleet simulation (issues 4 and 13): docs/fleet.svg, docs/fleet-CAPACITY.svg, docs/fleet.md and docs/fleet.json (the
## paced recovery against today's plan, two mixes, five capacities), figures for BENCHMARKS.md.
fleet:
	$(CARGO) run --release -p kaipiao-fleet -- --out docs/

fmt:
	$(CARGO) fmt --all

## The .deb a shop installs (issue 11): release app with the front end embedded, the
## kaipiao CLI, icons, desktop entry, the font's licence; then unpacked and checked (both
## binaries' --version from the unpacked tree). Release builds: minutes, not in `make test`.
package: deps
	@scripts/package.sh

## The packaged (release) app against a bare Tauri window (release) in the same run: cold
## start to an interactable field and idle PSS of all processes (docs/BENCHMARKS.md).
bench-release-app: package
	$(CARGO) build --release -p kaipiao-app --example blank --features bench-baseline
	KAIPIAO_BENCH_APP=$(CURDIR)/target/release/bundle/deb/unpacked/usr/bin/kaipiao-app \
	  KAIPIAO_BENCH_BLANK=$(CURDIR)/target/release/examples/blank \
	  $(CARGO) bench -p kaipiao-app --bench app --profile dev -- window

