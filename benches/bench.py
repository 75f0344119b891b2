#!/usr/bin/env python3
"""make bench: jwt-guard (Wasm and native) against Envoy's own jwt_authn (and rbac), in the same Envoy binary.

Throughput and latency: one Envoy (--concurrency 1, one worker) with one listener per
(filter, algorithm), each answering 200 from a `direct_response` route (no upstream), so only
the HTTP filters differ (benchlib/filters.py):

    baseline             no auth filter
    native               jwt_authn, one provider (the key inline), no cache
    native_cached        jwt_authn + jwt_cache_config {jwt_cache_size: 1000}
    native_rbac          jwt_authn (cache, payload_in_metadata) + rbac: role, scope, CIDR, country
    jwt_guard            jwt-guard, the same provider, default settings (host backend, cache 1000)
    jwt_guard_policy     jwt-guard with the same role + scope + CIDR + country policy
    jwt_guard_native     jwt-guard as a dynamic module (target/native/libjwt_guard.so, `make native`),
                         the configuration of jwt_guard (signatures by ring, cache 1000 per worker)
    jwt_guard_native_policy  the module with jwt_guard_policy's configuration
    jwt_guard_dpop       jwt-guard with DPoP (issue #18): a bound token (cache hit) and a fresh ES256
                         proof every request (benchlib/dpop.py); jwt_guard_native_dpop: the module
  diagnostics:
    jwt_guard_pure_rust  signature_backend: pure_rust (every signature in Rust, in the VM)
    jwt_guard_nocache    token_cache_size: 0
    jwt_guard_noop       one `disabled` rule: the cost of proxy-wasm alone

Workloads (benchlib/plan.py): "every token new" (a rotation of --pool tokens, larger than any
cache), "1,000 tokens cycled" (each in the caches after priming) — for ES256 and RS256 (their
"every token new" tables also hold the DPoP rows, with their own workload), and for
EdDSA, PS256 and HS256 "for information" — and "no token" (the 401 path). The no-op runs in
the cycled and no-token tables too: issue #17 sets the Wasm cache hit and 401 against it.

Per row: req/s at saturation (wrk -t1 -c8, --rounds interleaved rounds, median); p50/p99 at a
fixed rate, half the saturation rate of the table's slowest compared row (wrk's Lua delay()
hook paces the requests); Envoy's RSS with --concurrency 2 (one Envoy per filter, after
traffic). Then the ratios against the native peers and the targets of issues #7 and #17, PASS
or MISS.

Safety: every listener must give the expected answers before it is measured (200 with a valid
token, 401 without one or with a forged one, 403 from the policy listeners for a token without
the role, from a denied address or country; the Wasm and the module rows alike); jwt-guard's
start-up lines must name the expected settings; any unexpected answer or socket error during a
measured run fails the bench. Envoy is always stopped (also on Ctrl-C, SIGTERM or an error).

    .venv/bin/python benches/bench.py      # BENCH_SECONDS (5), BENCH_ROUNDS (3), BENCH_LATENCY_SECONDS (3)
    make bench-quick                       # BENCH_SECONDS=2 BENCH_ROUNDS=1 BENCH_LATENCY_SECONDS=2
    BENCH_ONLY='jwt_guard(_native)?(_dpop)?@' make bench-quick   # only the rows whose key matches

A partial run (`--only REGEX`, env BENCH_ONLY: the rows whose key `<listener>@<workload>`
matches, the comparisons between them, the RSS of their filters) writes build/bench/partial.md
instead of benches/RESULTS.md.

Writes build/bench/results.json and benches/RESULTS.md; keys, token pools, wrk scripts and
Envoy configs/logs go under build/bench/. Exit status: 0 when every run was clean (whatever
the verdicts), 1 if a check failed or Envoy did not start, 130 on Ctrl-C.

Against another build: `--baseline PATH` (env BENCH_BASELINE; `make bench BENCH_BASELINE=PATH`)
gives every jwt-guard row a twin: a listener `<name>_basewasm` in the same Envoy with the same
configuration (only the .wasm file differs), checked like the others, measured next to its row in
every round (which of the two goes first alternates by round) and paced at the same rate. The run
ends with the table "this build vs baseline" (req/s of each, this/baseline as the median over
rounds of the same-round ratios, p50/p99 of each; the ratios' geometric mean) and both .wasm
sizes, written to build/bench/baseline.md (and results.json's "baseline") instead of
benches/RESULTS.md. RSS is measured for this build only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(REPO_ROOT / "tests" / "integration"))  # harness.py (after benches/: no name clash)

from harness import NATIVE_LIB_DIR, NATIVE_LIB_PATH, WASM_PATH, EnvoyStartError, envoy_binary  # noqa: E402

from benchlib import dpop, plan, report, wrk  # noqa: E402
from benchlib.envoys import (BenchEnvoy, CheckFailed, check_guard_settings, check_listener,  # noqa: E402
                             check_module_settings, envoy_version, prime, start_envoy)
from benchlib.filters import BASELINE_SUFFIX, KINDS, NATIVE_POLICY_NOTES, Listener  # noqa: E402
from benchlib.plan import CYCLED, DPOP, NONE, Row, Series, Table  # noqa: E402
from benchlib.tokens import ALGORITHMS, CheckTokens, SigningKey, TokenPool, check_tokens, load_or_create_key, \
    load_or_mint_pool  # noqa: E402

OUT_DIR = REPO_ROOT / "build" / "bench"
RESULTS_MD = REPO_ROOT / "benches" / "RESULTS.md"
DEFAULTS = {"seconds": 5, "rounds": 3, "latency_seconds": 3}
GUARD_CACHE = r"^wasmcustom\.jwt_guard\.token_cache\."


# --------------------------------------------------------------------------- settings


def parse_args() -> argparse.Namespace:
    env = lambda name, default: int(os.environ.get(name, default))  # noqa: E731
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=env("BENCH_SECONDS", DEFAULTS["seconds"]),
                    help="seconds per saturation run (env BENCH_SECONDS, default 5)")
    ap.add_argument("--rounds", type=int, default=env("BENCH_ROUNDS", DEFAULTS["rounds"]),
                    help="interleaved rounds of saturation runs (env BENCH_ROUNDS, default 3)")
    ap.add_argument("--latency-seconds", type=int,
                    default=env("BENCH_LATENCY_SECONDS", DEFAULTS["latency_seconds"]),
                    help="seconds per paced (latency) run (env BENCH_LATENCY_SECONDS, default 3)")
    ap.add_argument("--pool", type=int, default=env("BENCH_POOL", 4000),
                    help="tokens in each 'every token new' rotation (env BENCH_POOL, default 4000)")
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=1, help="seconds of unmeasured load per listener first")
    ap.add_argument("--rss-seconds", type=int, default=3, help="seconds of traffic before reading the RSS")
    ap.add_argument("--only", default=os.environ.get("BENCH_ONLY") or None, metavar="REGEX",
                    help="only the rows whose key (<listener>@<workload>, e.g. es256_jwt_guard_dpop@ES256/dpop) "
                         "matches; writes build/bench/partial.md, not benches/RESULTS.md (env BENCH_ONLY)")
    ap.add_argument("--dpop-rate", type=int, default=env("BENCH_DPOP_RATE", dpop.DEFAULT_RATE),
                    help="req/s a DPoP row may reach: proofs are minted for that rate over all its runs "
                         f"(env BENCH_DPOP_RATE, default {dpop.DEFAULT_RATE})")
    ap.add_argument("--baseline", type=Path, default=os.environ.get("BENCH_BASELINE") or None, metavar="WASM",
                    help="another jwt_guard.wasm: its jwt-guard rows measured alongside, compared in build/bench/"
                         "baseline.md; benches/RESULTS.md is left alone (env BENCH_BASELINE)")
    args = ap.parse_args()
    if min(args.seconds, args.rounds, args.latency_seconds, args.rss_seconds) < 1:
        ap.error("--seconds, --rounds, --latency-seconds and --rss-seconds must be ≥ 1")
    if args.pool < 2 * plan.CYCLED_TOKENS:
        ap.error(f"--pool must be ≥ {2 * plan.CYCLED_TOKENS}: larger than any cache of the bench")
    return args


def command_line(args: argparse.Namespace) -> str:
    return (f"make bench BENCH_SECONDS={args.seconds} BENCH_ROUNDS={args.rounds} "
            f"BENCH_LATENCY_SECONDS={args.latency_seconds} BENCH_POOL={args.pool}"
            + (f" BENCH_BASELINE={args.baseline}" if args.baseline else "")
            + (f" BENCH_ONLY='{args.only}'" if args.only else ""))


def is_quick(args: argparse.Namespace) -> bool:
    return any(getattr(args, k) < v for k, v in DEFAULTS.items())


def unique_listeners(tables: list[Table]) -> list[Listener]:
    seen: dict[str, Listener] = {}
    for t in tables:
        for r in t.rows:
            seen.setdefault(r.listener.name, r.listener)
    return list(seen.values())


def estimate_seconds(tables: list[Table], listeners: list[Listener], args: argparse.Namespace,
                     twins: int = 0, rss_kinds: int = len(plan.RSS_KINDS)) -> int:
    rows = sum(len(t.rows) for t in tables) + twins
    load = rows * (args.rounds * args.seconds + args.latency_seconds) + len(listeners) * args.warmup
    return int(load + rss_kinds * (args.rss_seconds + 3) + rows * args.rounds * 0.3)


# --------------------------------------------------------------------------- the throughput Envoy


@dataclass
class Bench:
    """The running throughput Envoy and what a measurement needs."""

    envoy: BenchEnvoy
    ports: dict[str, int]
    pools: dict[str, TokenPool]
    args: argparse.Namespace
    scripts_dir: Path
    dpop_pools: dict[str, dpop.DpopPool] = field(default_factory=dict)  # by token algorithm
    positions: dict[tuple[str, str], int] = field(default_factory=dict)  # (listener, token file) -> next index

    def pool(self, listener: Listener) -> TokenPool:
        return self.pools[listener.alg or plan.MAIN_ALGS[0]]

    def tokens(self, row: Row) -> Path | None:
        if row.workload.name == NONE:
            return None
        pool = self.pools[row.workload.alg]
        return pool.cycled_path if row.workload.name == CYCLED else pool.fresh_path

    def run(self, row: Row, seconds: float, rate: float | None = None) -> tuple[wrk.WrkResult, int, int]:
        """One wrk run (primed first for a cycled run of a caching filter); every answer checked.
        Returns the result and the filter's token cache hits and misses during it: jwt_authn's
        per-listener counters, or jwt-guard's (one counter for all its listeners, both runtimes:
        only this listener has traffic during the run)."""
        listener = row.listener
        port = self.ports[listener.name]
        if row.workload.name == CYCLED and listener.kind.caches:
            prime(port, self.pools[row.workload.alg].cycled)
        tokens, proofs = self.tokens(row), None
        if row.workload.name == DPOP:
            tokens, proofs = self.dpop_pools[row.workload.alg].token_path, self.dpop_pools[row.workload.alg].proofs_path
        script = wrk.Script(tokens, row.expect, rate, self.args.connections, proofs).write(self.scripts_dir)
        where = (listener.name, str(proofs or tokens))
        counters = (r"jwt_authn\." if listener.kind.native
                    else GUARD_CACHE if listener.kind.runtime and listener.kind.caches else None)
        before = self.envoy.stats(counters) if counters else {}
        cmd = wrk.command(script, port, seconds, self.positions.get(where, 0), self.args.connections)
        result = wrk.run(cmd, seconds, row.expect)
        after = self.envoy.stats(counters) if counters else {}
        if tokens is not None:
            self.positions[where] = result.end_pos
        if proofs and result.end_pos > self.dpop_pools[row.workload.alg].count:
            raise CheckFailed(f"{row.key}: the {self.dpop_pools[row.workload.alg].count:,} DPoP proofs ran out "
                              f"(more than --dpop-rate {self.args.dpop_rate:,} req/s): raise BENCH_DPOP_RATE")
        if not result.clean:
            raise CheckFailed(f"{row.key}: {result.status_errors} unexpected answers, {result.socket_errors} "
                              f"socket errors, {result.requests} requests\n{' '.join(cmd)}\n{result.raw}")
        if listener.kind.native:
            hit, miss = f"http.{listener.name}.jwt_authn.jwt_cache_hit", f"http.{listener.name}.jwt_authn.jwt_cache_miss"
        else:
            hit, miss = "wasmcustom.jwt_guard.token_cache.hit", "wasmcustom.jwt_guard.token_cache.miss"
        delta = lambda s: after.get(s, 0) - before.get(s, 0)  # noqa: E731
        return result, delta(hit), delta(miss)


def check_all(bench: Bench, listeners: list[Listener], checks: dict[str, CheckTokens]) -> None:
    print("checks before measuring (every answer as expected; jwt-guard's start-up line):")
    for l in listeners:
        summary = check_listener(l, bench.ports[l.name], bench.pool(l), checks[l.alg or plan.MAIN_ALGS[0]],
                                 bench.dpop_pools.get(l.alg or ""))
        settings = check_guard_settings(bench.envoy, l)
        print(f"  {l.name:<30} {summary}" + (f"\n  {'':<30} └ {settings}" if settings else ""))
    module = check_module_settings(bench.envoy, listeners)
    if module:
        print(f"  {'module start-up lines':<30} one per module listener: {module}")


def warm_up(bench: Bench, listeners: list[Listener]) -> None:
    for l in listeners:
        alg = l.alg or plan.MAIN_ALGS[0]
        bench.run(Row(l, plan.Workload(DPOP if l.kind.dpop else plan.NEW, alg)), bench.args.warmup)


def with_twins(rows: list[Row], twins: dict[str, Row], twin_first: bool = False) -> list[Row]:
    """The rows, each followed (or preceded) by its `--baseline` twin if it has one."""
    out: list[Row] = []
    for r in rows:
        pair = [r, twins[r.key]] if r.key in twins else [r]
        out += pair[::-1] if twin_first else pair
    return out


def saturation_rounds(bench: Bench, rows: list[Row], series: dict[str, Series],
                      twins: dict[str, Row] | None = None) -> None:
    rounds = bench.args.rounds
    for rnd in range(rounds):
        # A row and its twin side by side, which goes first alternating by round.
        order = with_twins(rows, twins or {}, twin_first=rnd % 2 == 1)
        # Each round starts elsewhere in the list, so no row is always measured first or last.
        shift = rnd * len(order) // rounds
        for row in order[shift:] + order[:shift]:
            result, hits, misses = bench.run(row, bench.args.seconds)
            s = series[row.key]
            s.samples.append(result)
            s.cache_hits += hits
            s.cache_misses += misses
            print(f"  round {rnd + 1}/{rounds}  {row.key:<44} {result.rps:>9,.0f} req/s "
                  f"({result.requests:,} requests)", flush=True)


def latency_runs(bench: Bench, tables: list[Table], series: dict[str, Series],
                 twins: dict[str, Row] | None = None) -> None:
    for t in tables:
        rate = plan.latency_rate(t, series)
        for row in t.rows:
            s = series[row.key]
            # A row too slow for the table's rate (a diagnostic) is paced at half its own.
            s.latency_own_rate = s.median_rps() * 0.8 < rate
            s.latency_rate = 0.5 * s.median_rps() if s.latency_own_rate else rate
            # A `--baseline` twin right after its row, at the row's rate.
            for r in with_twins([row], twins or {}):
                rs = series[r.key]
                rs.latency_own_rate, rs.latency_rate = s.latency_own_rate, s.latency_rate
                rs.latency, _, _ = bench.run(r, bench.args.latency_seconds, rs.latency_rate)
                print(f"  {r.key:<44} paced at {rs.latency_rate:>7,.0f} req/s: got {rs.latency.rps:>7,.0f}, "
                      f"p50 {rs.latency.p50_ms:.2f} ms, p99 {rs.latency.p99_ms:.2f} ms", flush=True)


# --------------------------------------------------------------------------- RSS


def measure_rss(keys: dict[str, SigningKey], pools: dict[str, TokenPool], checks: dict[str, CheckTokens],
                args: argparse.Namespace, workdir: Path, scripts_dir: Path,
                kinds: tuple[str, ...] = plan.RSS_KINDS) -> dict[str, plan.Rss]:
    """One Envoy per filter, --concurrency 2: checked, loaded with every-token-new traffic
    (fills each worker's token cache), then its VmRSS."""
    out: dict[str, plan.Rss] = {}
    alg = plan.RSS_ALG
    script = wrk.Script(pools[alg].fresh_path).write(scripts_dir)
    for kind in kinds:
        listener = Listener.of(KINDS[kind], alg)
        envoy, ports = start_envoy([listener], keys, workdir / kind, f"rss-{kind}", plan.RSS_CONCURRENCY)
        try:
            port = ports[listener.name]
            check_listener(listener, port, pools[alg], checks[alg])
            check_guard_settings(envoy, listener)
            check_module_settings(envoy, [listener])
            result = wrk.run(wrk.command(script, port, args.rss_seconds, 0, args.connections), args.rss_seconds, None)
            if not result.clean:
                raise CheckFailed(f"RSS traffic for {kind}: {result.status_errors} non-2xx, "
                                  f"{result.socket_errors} socket errors\n{result.raw}")
            time.sleep(0.5)
            workers = envoy.stats(r"worker_\d+\.downstream_cx_total")
            out[kind] = plan.Rss(kind, envoy.rss_kib(), result.requests)
            print(f"  {kind:<22} {out[kind].mib:7.1f} MiB after {result.requests:,} requests "
                  f"(connections per worker: {', '.join(str(v) for v in workers.values())})", flush=True)
        finally:
            envoy.stop()
    return out


# --------------------------------------------------------------------------- main


def prepare_tokens(args: argparse.Namespace) -> tuple[dict[str, SigningKey], dict[str, TokenPool], dict[str, CheckTokens]]:
    keys, pools, checks = {}, {}, {}
    for alg in ALGORITHMS:
        keys[alg] = load_or_create_key(alg, OUT_DIR / "keys")
        pools[alg] = load_or_mint_pool(keys[alg], args.pool, plan.CYCLED_TOKENS, OUT_DIR / "tokens")
        checks[alg] = check_tokens(keys[alg])
        p = pools[alg]
        how = f"minted in {p.mint_seconds:.1f}s" if p.minted else "reused from disk"
        print(f"  {alg:<6} kid {keys[alg].kid}: {len(p.fresh):,} + {len(p.cycled):,} tokens, {how}")
    return keys, pools, checks


def prepare_dpop(tables: list[Table], keys: dict[str, SigningKey], args: argparse.Namespace,
                 reserve_s: int) -> dict[str, dpop.DpopPool]:
    """Proofs for every DPoP row's algorithm: enough for --dpop-rate over all runs of a listener."""
    algs = sorted({r.workload.alg for t in tables for r in t.rows if r.workload.name == DPOP})
    need = int(args.dpop_rate * (args.warmup + args.rounds * args.seconds + args.latency_seconds) * 1.1) + 1000
    out = {}
    for alg in algs:
        out[alg] = p = dpop.load_or_mint(keys[alg], need, reserve_s, OUT_DIR / "dpop")
        how = f"minted in {p.mint_seconds:.1f}s" if p.minted else "reused from disk"
        print(f"  DPoP, {alg} token: {p.count:,} ES256 proofs, {how}")
    return out


def run(args: argparse.Namespace) -> int:
    started, t0 = time.monotonic(), dt.datetime.now(dt.timezone.utc)
    wasm_bytes = WASM_PATH.stat().st_size
    info = report.RunInfo(
        date=t0.isoformat(timespec="seconds"), command=command_line(args), quick=is_quick(args),
        seconds=args.seconds, rounds=args.rounds, latency_seconds=args.latency_seconds,
        connections=args.connections, pool=args.pool, envoy_version=envoy_version(),
        wrk_version=wrk.version(),
        wasm_path=str(WASM_PATH.relative_to(REPO_ROOT)), wasm_bytes=wasm_bytes,
        module_path=str(NATIVE_LIB_PATH.relative_to(REPO_ROOT)), module_bytes=NATIVE_LIB_PATH.stat().st_size,
        **report.machine(),
        loadavg_start=os.getloadavg(), only=args.only)
    tables = plan.select(plan.build_tables(), args.only)
    if not tables:
        raise CheckFailed(f"no row matches --only / BENCH_ONLY {args.only!r}")
    rss_kinds = tuple(k for k in plan.RSS_KINDS if not args.only or any(t.row(k) for t in tables))
    base_wasm = args.baseline.resolve() if args.baseline else None
    twins = plan.twins(tables, str(base_wasm)) if base_wasm else {}
    listeners = unique_listeners(tables) + list({r.listener.name: r.listener for r in twins.values()}.values())
    rows = [r for t in tables for r in t.rows]
    print(f"Envoy {info.envoy_version} ({envoy_binary()}); {info.wasm_path} {wasm_bytes:,} bytes; "
          f"{info.module_path} {info.module_bytes:,} bytes; {info.nproc} cores, {info.cpu_model}")
    if base_wasm:
        print(f"baseline: {base_wasm} {base_wasm.stat().st_size:,} bytes: the {len(twins)} jwt-guard rows again "
              f"with it (listeners *{BASELINE_SUFFIX}, same configuration); the comparison comes last, "
              f"in build/bench/baseline.md; benches/RESULTS.md is not written")
    print(f"{len(listeners)} listeners, {len(rows) + len(twins)} rows × {args.rounds} rounds × {args.seconds}s "
          f"+ {len(rows) + len(twins)} paced runs × {args.latency_seconds}s + RSS of {len(rss_kinds)} filters: "
          f"about {estimate_seconds(tables, listeners, args, len(twins), len(rss_kinds)) / 60:.0f} min")
    print("keys and tokens (build/bench/keys, build/bench/tokens):")
    keys, pools, checks = prepare_tokens(args)
    dpop_pools = prepare_dpop(tables, keys, args, estimate_seconds(tables, listeners, args, len(twins), len(rss_kinds)) + 300)
    info.dpop_proofs = max((p.count for p in dpop_pools.values()), default=0)

    envoy_dir = OUT_DIR / "envoy"
    shutil.rmtree(envoy_dir, ignore_errors=True)
    series = {r.key: Series(r) for r in with_twins(rows, twins)}
    envoy, ports = start_envoy(listeners, keys, envoy_dir / "throughput", "bench", concurrency=1)
    try:
        bench = Bench(envoy, ports, pools, args, OUT_DIR / "wrk", dpop_pools)
        bench.scripts_dir.mkdir(parents=True, exist_ok=True)
        check_all(bench, listeners, checks)
        example = wrk.command(Path("build/bench/wrk/<script>.lua"), 0, args.seconds, 0, args.connections)
        print(f"\nwrk per run: {' '.join(example[:-3])} http://127.0.0.1:<port>/ -- <first token index>")
        print(f"warm-up: {args.warmup}s per listener")
        warm_up(bench, listeners)
        print(f"saturation: {args.rounds} interleaved round(s) of {len(rows) + len(twins)} runs")
        saturation_rounds(bench, rows, series, twins)
        print("latency: paced runs")
        latency_runs(bench, tables, series, twins)
    except CheckFailed as e:
        raise CheckFailed(f"{e}\n--- Envoy log (last lines) ---\n{envoy.log_tail(20)}") from None
    finally:
        envoy.stop()

    print(f"RSS: one Envoy per filter, --concurrency {plan.RSS_CONCURRENCY}, {args.rss_seconds}s of "
          f"{plan.RSS_ALG} every-token-new traffic first")
    rss = measure_rss(keys, pools, checks, args, envoy_dir / "rss", OUT_DIR / "wrk", rss_kinds)

    outcomes = [plan.compare(t, c, series) for t in tables for c in t.comparisons]
    verdicts = plan.verdicts(outcomes, rss, wasm_bytes)
    report.print_tables(tables, series, outcomes, rss, args.pool)
    report.print_rss(rss)
    report.print_verdicts(verdicts)

    info.loadavg_end = os.getloadavg()
    info.wall_seconds = round(time.monotonic() - started, 1)
    notes = report.notes(NATIVE_POLICY_NOTES)
    if base_wasm:
        base = report.Baseline(str(base_wasm), base_wasm.stat().st_size, plan.versus(tables, twins, series))
        report.print_versus(info, base, series)
        report.write_json(OUT_DIR / "results.json", info, tables, series, outcomes, rss, verdicts, notes,
                          report.versus_json(base, series))
        report.write_versus_markdown(OUT_DIR / "baseline.md", info, base, series)
        written = "build/bench/results.json and build/bench/baseline.md (benches/RESULTS.md left as it was)"
    else:
        # A partial run's figures are no reference: benches/RESULTS.md keeps the last full run's.
        markdown = OUT_DIR / "partial.md" if args.only else RESULTS_MD
        report.write_json(OUT_DIR / "results.json", info, tables, series, outcomes, rss, verdicts, notes)
        report.write_markdown(markdown, info, tables, series, outcomes, rss, verdicts, notes)
        written = f"build/bench/results.json and {markdown.relative_to(REPO_ROOT)}"
    print(f"\nwrote {written}; wall time {info.wall_seconds:.0f}s; "
          f"load average now {', '.join(f'{x:.2f}' for x in info.loadavg_end)}")
    return 0


def main() -> int:
    args = parse_args()
    if not shutil.which("wrk"):
        print("wrk is not installed: `make bench` installs it (apt-get install -y wrk)", file=sys.stderr)
        return 1
    if not WASM_PATH.exists():
        print(f"{WASM_PATH} is missing: run `make build` (make bench does)", file=sys.stderr)
        return 1
    if not NATIVE_LIB_PATH.exists():
        print(f"{NATIVE_LIB_PATH} is missing: run `make native` (make bench does)", file=sys.stderr)
        return 1
    # Each row chooses its runtime (benchlib/filters.py): the harness's JWTG_RUNTIME switch would
    # turn the Wasm rows into module rows; and the module rows load this build's library.
    os.environ["JWTG_RUNTIME"] = "wasm"
    os.environ["ENVOY_DYNAMIC_MODULES_SEARCH_PATH"] = str(NATIVE_LIB_DIR)
    if args.baseline and not args.baseline.is_file():
        print(f"--baseline / BENCH_BASELINE: {args.baseline} is not a file", file=sys.stderr)
        return 1

    # SIGTERM behaves like Ctrl-C: unwind, so every `finally` stops its Envoy.
    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    try:
        return run(args)
    except (CheckFailed, EnvoyStartError, RuntimeError) as e:
        print(f"FAILED: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted: Envoy stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
