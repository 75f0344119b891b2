#!/usr/bin/env bash
# `make fuzz`: builds the fuzz targets (fuzz/fuzz_targets/) with cargo-fuzz and runs each for a
# bounded time, one process on one core, then prints the executions per target. Fails if any
# target finds a crash (a panic, a wrong decision, an input slower than FUZZ_TIMEOUT seconds).
#
#   FUZZ_SECONDS   seconds per target (default 60)
#   FUZZ_TARGETS   which targets (default: all six)
#   FUZZ_TIMEOUT   seconds one input may take (default 10)
#   FUZZ_TOOLCHAIN rustup toolchain to build with (default: nightly if installed)
#
# The committed seeds (fuzz/seeds/<target>, regression inputs included) are read, never
# written; what libFuzzer finds goes to build/fuzz/corpus/<target> (kept between runs),
# crashes to build/fuzz/artifacts/<target>/, logs to build/fuzz/logs/<target>.log. At the end
# fuzz/report.py writes benches/FUZZ.md from this run (FUZZ_REPORT=0: not).
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECONDS=${FUZZ_SECONDS:-60}
FUZZ_TARGETS=${FUZZ_TARGETS:-token request config jwks differential dpop_proof}
FUZZ_TIMEOUT=${FUZZ_TIMEOUT:-10}
FUZZ_REPORT=${FUZZ_REPORT:-1}
CARGO_FUZZ_VERSION=0.13.2
CARGO_FUZZ=build/tools/bin/cargo-fuzz
OUT=build/fuzz

# cargo-fuzz, pinned, built from crates.io into the project (once).
if ! "$CARGO_FUZZ" --version 2>/dev/null | grep -q " $CARGO_FUZZ_VERSION\$"; then
    echo "== installing cargo-fuzz $CARGO_FUZZ_VERSION into build/tools"
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --root build/tools
fi

# libFuzzer instrumentation needs unstable rustc flags: FUZZ_TOOLCHAIN if given, else the
# installed nightly toolchain, else the default one; a stable one gets RUSTC_BOOTSTRAP=1 (the
# same flags; its AddressSanitizer runtime ships with it, nothing is downloaded).
if [ -n "${FUZZ_TOOLCHAIN:-}" ]; then
    export RUSTUP_TOOLCHAIN=$FUZZ_TOOLCHAIN
elif rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    export RUSTUP_TOOLCHAIN=nightly
fi
if ! rustc --version | grep -q nightly; then
    echo "== $(rustc --version) is not a nightly: RUSTC_BOOTSTRAP=1"
    export RUSTC_BOOTSTRAP=1
fi

max_len() {
    case "$1" in
        differential) echo 4096 ;;
        *) echo 16384 ;;
    esac
}

# -O: optimised; -a: debug assertions and overflow checks on (an overflow is a finding: the
# release .wasm would wrap silently).
echo "== cargo fuzz build ($(rustc --version))"
"$CARGO_FUZZ" build --fuzz-dir fuzz -O -a

mkdir -p "$OUT/logs"
# One line per target for fuzz/report.py: target, executions, exec/s, corpus before and after,
# status, seconds, artifact.
results="$OUT/results.tsv"
: >"$results"
run_started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
summary=()
failed=0
for target in $FUZZ_TARGETS; do
    mkdir -p "$OUT/corpus/$target" "$OUT/artifacts/$target"
    log="$OUT/logs/$target.log"
    echo "== fuzz $target for ${FUZZ_SECONDS}s (log: $log)"
    corpus_before=$(find "$OUT/corpus/$target" -type f | wc -l)
    target_started=$(date +%s)
    status=0
    "$CARGO_FUZZ" run --fuzz-dir fuzz -O -a "$target" "$OUT/corpus/$target" "fuzz/seeds/$target" -- \
        -max_total_time="$FUZZ_SECONDS" -timeout="$FUZZ_TIMEOUT" -max_len="$(max_len "$target")" \
        -dict="fuzz/dict/$target.dict" -print_final_stats=1 \
        -artifact_prefix="$OUT/artifacts/$target/" >"$log" 2>&1 || status=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    corpus=$(find "$OUT/corpus/$target" -type f | wc -l)
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$target" "${runs:-}" "${rate:-}" "$corpus_before" \
        "$corpus" "$status" "$(( $(date +%s) - target_started ))" "$artifact" >>"$results"
    if [ "$status" -ne 0 ]; then
        failed=1
        summary+=("$(printf '%-13s %12s %8s %8s  FAILED (exit %s)' "$target" "${runs:-?}" "${rate:-?}" "$corpus" "$status")")
        grep -E 'WRONG DECISION|panicked|ERROR: libFuzzer|SUMMARY|Test unit written' "$log" | head -20 || true
        if [ -n "$artifact" ]; then
            echo "   reproduce: RUSTUP_TOOLCHAIN=${RUSTUP_TOOLCHAIN:-} RUSTC_BOOTSTRAP=${RUSTC_BOOTSTRAP:-} $CARGO_FUZZ run --fuzz-dir fuzz -O -a $target $artifact"
        fi
    else
        summary+=("$(printf '%-13s %12s %8s %8s  ok' "$target" "$runs" "$rate" "$corpus")")
    fi
done

echo
echo "== fuzzing: ${FUZZ_SECONDS}s per target"
printf '%-13s %12s %8s %8s  %s\n' target executions exec/s corpus result
printf '%s\n' "${summary[@]}"
if [ "$FUZZ_REPORT" = 1 ]; then
    python3 fuzz/report.py --results "$results" --seconds "$FUZZ_SECONDS" --timeout "$FUZZ_TIMEOUT" \
        --started "$run_started" --rustc "$(rustc --version)" \
        --cargo-fuzz "$("$CARGO_FUZZ" --version)" --out benches/FUZZ.md
fi
exit "$failed"
