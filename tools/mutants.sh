#!/usr/bin/env bash
# `make mutants`: cargo-mutants over the security core with the unit tests (`cargo test --lib`),
# one file at a time, then tools/mutants-report.py writes benches/MUTANTS.md from the tool's
# output. Not part of `make test` or CI (too slow).
#
#   MUTANTS_FILES    files to mutate, in this order (default: the security core below)
#   MUTANTS_MINUTES  total budget in minutes (default 240); a file still running when it ends is
#                    interrupted (its mutants tested so far are reported, the rest as not run),
#                    and the files after it are not started
#   MUTANTS_TIMEOUT  seconds one test run of one mutant may take (default 120): a timeout
#   MUTANTS_REPORT   0: do not write benches/MUTANTS.md (default 1)
#
# Runs with `nice -n 19` and one job (`-j 1`): the unit tests already use every core. Outside the
# files they exercise, the Wycheproof vector tests are skipped (see below). Each
# file's output (cargo-mutants' mutants.out/: outcomes.json, caught.txt, missed.txt, logs) goes to
# build/mutants/<file>/ with run.json (command, tool version, start and end, exit status); a
# later run of some files keeps the other files' results. cargo-mutants builds in a copy of the
# tree, with its own target directory build/mutants/target (kept, so later runs are incremental).
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_MUTANTS_VERSION=27.1.0
CARGO_MUTANTS=build/tools/bin/cargo-mutants
# The security core: token parsing, verification, cache, authn, policy, extraction, identity,
# and the route binding (request.rs).
MUTANTS_FILES=${MUTANTS_FILES:-src/token/jws.rs src/authn/verify.rs src/authn/signature.rs src/authn/cache.rs src/authn/authenticator.rs src/authz/policy.rs src/authn/claims.rs src/authz/address.rs src/token/extract.rs src/identity.rs src/request/mod.rs src/request/route.rs}
MUTANTS_MINUTES=${MUTANTS_MINUTES:-240}
MUTANTS_TIMEOUT=${MUTANTS_TIMEOUT:-120}
MUTANTS_REPORT=${MUTANTS_REPORT:-1}
OUT=build/mutants

# cargo-mutants, pinned, built from crates.io into the project (once).
if ! "$CARGO_MUTANTS" mutants --version 2>/dev/null | grep -q " $CARGO_MUTANTS_VERSION\$"; then
    echo "== installing cargo-mutants $CARGO_MUTANTS_VERSION into build/tools"
    cargo install cargo-mutants --version "$CARGO_MUTANTS_VERSION" --locked --root build/tools
fi
version=$("$CARGO_MUTANTS" mutants --version)

mkdir -p "$OUT/target"
deadline=$(( $(date +%s) + MUTANTS_MINUTES * 60 ))
status=0
for file in $MUTANTS_FILES; do
    # One folder per file, named by its path under src/ (request/mod.rs -> request_mod).
    name=$(printf '%s' "${file#src/}" | sed 's#/#_#g; s#\.rs$##')
    dir="$OUT/$name"
    left=$(( deadline - $(date +%s) ))
    if [ "$left" -le 60 ]; then
        echo "== $file: not run (MUTANTS_MINUTES=$MUTANTS_MINUTES used up)"
        continue
    fi
    rm -rf "$dir"
    mkdir -p "$dir"
    command=(cargo mutants --jobs 1 --timeout "$MUTANTS_TIMEOUT" --file "$file" --output "$dir" --cargo-arg=--lib)
    case "$file" in
        # The Wycheproof vector tests (~6 s of the ~8 s the unit tests take here) check signatures
        # and key parsing only: they run for the files they exercise and are skipped elsewhere,
        # which can only make a mutant look missed, never caught.
        src/authn/signature.rs|src/token/jws.rs|src/authn/jwks.rs|src/testing/vectors.rs) ;;
        *) command+=(-- -- --skip wycheproof --skip vectors::) ;;
    esac
    echo "== ${command[*]} (nice -n 19, at most ${left}s)"
    started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    # The source tested: the commit, and whether files under src/ differed from it.
    commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    [ -z "$(git status --porcelain -- src 2>/dev/null)" ] || commit="$commit + uncommitted changes in src/"
    rc=0
    # SIGINT on the deadline: cargo-mutants stops and writes what it has.
    CARGO_TARGET_DIR="$PWD/$OUT/target" timeout --signal=INT --kill-after=60 "$left" \
        nice -n 19 "$CARGO_MUTANTS" "${command[@]:1}" >"$dir/console.log" 2>&1 || rc=$?
    ended=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    tail -3 "$dir/console.log"
    python3 - "$dir/run.json" "$file" "$version" "$started" "$ended" "$rc" "$MUTANTS_TIMEOUT" "$commit" "${command[@]}" <<'PY'
import json, sys
path, file, version, started, ended, rc, timeout, commit, *command = sys.argv[1:]
json.dump({"file": file, "version": version, "started": started, "ended": ended, "commit": commit,
           "exit": int(rc), "interrupted": int(rc) == 124, "timeout_seconds": int(timeout),
           "command": "nice -n 19 " + " ".join(command)}, open(path, "w"), indent=1)
PY
    # cargo-mutants exits 2 when mutants were missed, 3 on timeouts: findings, not failures of
    # the run. Anything else (1, 4: the baseline failed, 124: interrupted) is.
    case "$rc" in 0|2|3) ;; *) status=1; echo "== $file: cargo-mutants exit $rc (see $dir/console.log)";; esac
done

if [ "$MUTANTS_REPORT" = 1 ]; then
    python3 tools/mutants-report.py --out benches/MUTANTS.md
fi
exit "$status"
