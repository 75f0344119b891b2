"""The tables (console and markdown), the target verdicts, build/bench/results.json and
benches/RESULTS.md; with `--baseline`, the table "this build vs baseline" and build/bench/baseline.md
instead of RESULTS.md. Cells are made once (table_cells, versus_cells) and laid out twice."""

from __future__ import annotations

import json
import math
import os
import platform
import re
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

from .plan import RSS_CONCURRENCY, RSS_PAIRS, Outcome, Rss, Series, Table, Verdict, Versus
from .filters import KINDS


@dataclass
class RunInfo:
    date: str
    command: str
    quick: bool
    seconds: int
    rounds: int
    latency_seconds: int
    connections: int
    pool: int
    envoy_version: str
    wrk_version: str
    wasm_path: str
    wasm_bytes: int
    module_path: str
    module_bytes: int
    nproc: int
    cpu_model: str
    kernel: str
    loadavg_start: tuple[float, float, float]
    loadavg_end: tuple[float, float, float] | None = None
    wall_seconds: float | None = None
    only: str | None = None  # BENCH_ONLY: the rows measured (a partial run), None: all
    dpop_proofs: int = 0  # proofs minted per algorithm for the DPoP rows


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict:
    return {"nproc": os.cpu_count() or 0, "cpu_model": cpu_model(), "kernel": platform.release()}


# --------------------------------------------------------------------------- cells


def _rate(x: float | None) -> str:
    return "-" if x is None else f"{x:,.0f}"


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


HEADER = ["filter", "req/s", "min–max", "× no auth", "+µs/req", "p50 ms", "p99 ms", "paced at",
          "RSS MiB", "cache hits"]


def table_cells(table: Table, series: dict[str, Series], rss: dict[str, Rss]) -> list[list[str]]:
    base = table.row("baseline")
    base_rps = series[base.key].median_rps() if base else None
    rows = []
    for row in table.rows:
        s = series[row.key]
        med = s.median_rps()
        lat = s.latency
        paced = "-"
        if s.latency_rate is not None:
            paced = _rate(s.latency_rate) + (" (own ½)" if s.latency_own_rate else "")
            if lat is not None and lat.rps < 0.9 * s.latency_rate:
                paced += f" (got {_rate(lat.rps)})"
        hit = s.cache_hit_share()
        own_rss = rss.get(row.kind.name)
        rows.append([
            row.kind.name + (" ◦" if row.kind.diagnostic else ""),
            _rate(med),
            f"{_rate(min(x.rps for x in s.samples))}–{_rate(max(x.rps for x in s.samples))}",
            f"{med / base_rps:.3f}" if base_rps else "-",
            f"{1e6 / med - 1e6 / base_rps:.1f}" if base_rps and row is not base else "-",
            _ms(lat.p50_ms if lat else None),
            _ms(lat.p99_ms if lat else None),
            paced,
            f"{own_rss.mib:.1f}" if own_rss else "-",
            "-" if hit is None else f"{100 * hit:.1f} %",
        ])
    return rows


def outcome_cells(o: Outcome) -> list[str]:
    c = o.comparison
    target = f"{c.target.text} ({c.target.issue})" if c.target else ""
    return [c.what, f"{c.a} vs {c.b}", c.show(o.value), ", ".join(c.show(v) for v in o.per_round), target,
            o.verdict or ""]


OUTCOME_HEADER = ["comparison", "rows", "value", "per round", "target", "verdict"]


def rss_cells(rss: dict[str, Rss]) -> list[list[str]]:
    peers = {a: b for a, b, _, _ in RSS_PAIRS}
    native = rss.get("native")
    rows = []
    for kind, r in rss.items():
        peer = rss.get(peers.get(kind, ""), None)
        rows.append([kind, KINDS[kind].title, f"{r.mib:.1f}",
                     f"{r.mib - native.mib:+.1f}" if native else "-",
                     f"{r.mib - peer.mib:+.1f} ({peer.kind})" if peer else "", f"{r.requests:,}"])
    return rows


RSS_HEADER = ["filter", "what", "RSS MiB", "Δ vs native", "Δ vs peer", "requests before"]


# --------------------------------------------------------------------------- layouts


def _numeric_columns(rows: list[list[str]], width: int) -> list[bool]:
    """Columns whose cells are all numbers (or "-" / empty) are right-aligned."""
    number = re.compile(r"^[-+]?[\d.,]+")
    return [all(number.match(r[i]) or r[i] in ("", "-") for r in rows) and any(r[i] not in ("", "-") for r in rows)
            for i in range(width)]


def console(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    right = _numeric_columns(rows, len(header))

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right)).rstrip()

    return "\n".join([line(header), "-" * len(line(header)), *map(line, rows)])


def markdown(header: list[str], rows: list[list[str]]) -> str:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    align = "|" + "|".join("---:" if r else "---" for r in _numeric_columns(rows, len(header))) + "|"
    return "\n".join([line(header), align, *map(line, rows)])


def table_title(table: Table, pool: int) -> str:
    return table.workload.title(pool) + (" — for information" if table.info else "")


def print_tables(tables: list[Table], series: dict[str, Series], outcomes: list[Outcome], rss: dict[str, Rss],
                 pool: int) -> None:
    for t in tables:
        print(f"\n== {table_title(t, pool)}")
        print(console(HEADER, table_cells(t, series, rss)))
        print()
        print(console(OUTCOME_HEADER, [outcome_cells(o) for o in outcomes if o.table is t]))


def print_rss(rss: dict[str, Rss]) -> None:
    print(f"\n== Envoy RSS with --concurrency {RSS_CONCURRENCY} (one Envoy per filter, after traffic)")
    print(console(RSS_HEADER, rss_cells(rss)))


VERDICT_HEADER = ["issue", "target", "measured", "verdict"]


def print_verdicts(vs: list[Verdict]) -> None:
    print("\n== targets (issues #7, #17 and #18)")
    print(console(VERDICT_HEADER, [[v.issue, v.target, v.measured, v.word] for v in vs]))


# --------------------------------------------------------------------------- files


def write_json(path: Path, info: RunInfo, tables: list[Table], series: dict[str, Series],
               outcomes: list[Outcome], rss: dict[str, Rss], vs: list[Verdict], notes: dict,
               extra: dict | None = None) -> None:
    def sample(x) -> dict:
        d = asdict(x)
        d.pop("raw")
        return d

    data = {
        "info": asdict(info),
        "tables": [{
            "workload": t.workload.key,
            "title": table_title(t, info.pool),
            "info_only": t.info,
            "rows": [{
                "kind": r.kind.name, "listener": r.listener.name, "diagnostic": r.kind.diagnostic,
                "median_rps": round(series[r.key].median_rps(), 1),
                "samples": [sample(x) for x in series[r.key].samples],
                "cache_hits": series[r.key].cache_hits,
                "cache_misses": series[r.key].cache_misses,
                "latency_rate": series[r.key].latency_rate,
                "latency_own_rate": series[r.key].latency_own_rate,
                "latency": sample(series[r.key].latency) if series[r.key].latency else None,
            } for r in t.rows],
            "comparisons": [{
                "a": o.comparison.a, "b": o.comparison.b, "what": o.comparison.what,
                "overhead": o.comparison.overhead, "value": round(o.value, 4),
                "per_round": [round(v, 4) for v in o.per_round],
                "target": o.comparison.target.text if o.comparison.target else None, "verdict": o.verdict,
            } for o in outcomes if o.table is t],
        } for t in tables],
        "rss_concurrency": RSS_CONCURRENCY,
        "rss": {k: {"kib": r.kib, "mib": round(r.mib, 2), "requests": r.requests} for k, r in rss.items()},
        "verdicts": [asdict(v) | {"verdict": v.word} for v in vs],
        "ok": True,
        "notes": notes,
        **(extra or {}),
    }
    path.write_text(json.dumps(data, indent=2) + "\n")


def run_rows(info: RunInfo) -> list[str]:
    """The first rows of a results table: when, how and where the run was made."""
    la = lambda t: ", ".join(f"{x:.2f}" for x in t) if t else "-"  # noqa: E731
    return [
        "| | |",
        "|---|---|",
        f"| date | {info.date} |",
        f"| command | `{info.command}` |",
        f"| machine | {info.nproc} cores (`nproc`), {info.cpu_model}, Linux {info.kernel} |",
        f"| load average | {la(info.loadavg_start)} at start, {la(info.loadavg_end)} at end |",
    ]


def write_markdown(path: Path, info: RunInfo, tables: list[Table], series: dict[str, Series],
                   outcomes: list[Outcome], rss: dict[str, Rss], vs: list[Verdict], notes: dict) -> None:
    parts = [
        "# jwt-guard benchmark results" + (" (quick run)" if info.quick else "")
        + (f" (partial run: rows matching `{info.only}`)" if info.only else ""),
        "",
        "Written by `make bench` (`benches/bench.py`); docs/benchmarks.md's *Benchmarks* section says how",
        "the rows, workloads and targets are defined and how to read them.",
        "",
    ]
    if info.quick:
        parts += [
            f"> **Quick run** ({info.seconds} s per run, {info.rounds} round(s), {info.latency_seconds} s per "
            "paced run) on a shared machine: it shows that the bench works, its numbers are noisy and "
            "indicative only. The reference numbers come from a default run on a quiet machine.",
            "",
        ]
    parts += [
        *run_rows(info),
        f"| Envoy | {info.envoy_version}, `--concurrency 1` (RSS: `--concurrency {RSS_CONCURRENCY}`); V8 for the "
        "Wasm rows, the dynamic module for `jwt_guard_native*` |",
        f"| jwt_guard.wasm | {info.wasm_bytes:,} bytes ({info.wasm_bytes / 2**20:.3f} MiB) |",
        f"| {Path(info.module_path).name} | {info.module_bytes:,} bytes (`{info.module_path}`, `make native`) |",
        f"| wrk | {info.wrk_version}, `-t1 -c{info.connections}`, {info.seconds} s per run, "
        f"{info.rounds} interleaved round(s), median |",
        f"| latency | one paced run of {info.latency_seconds} s per row at half the saturation rate of the "
        "table's slowest compared row (wrk's Lua `delay()` hook) |",
        f"| tokens | {info.pool:,}-token rotation per algorithm for \"every token new\", 1,000 others "
        f"for \"cycled\"; DPoP: one bound token, {info.dpop_proofs:,} proofs per algorithm |",
        f"| wall time | {info.wall_seconds:.0f} s |" if info.wall_seconds else "| wall time | - |",
        "",
        "## Targets",
        "",
        markdown(VERDICT_HEADER, [[v.issue, v.target, v.measured, f"**{v.word}**"] for v in vs]),
        "",
    ]
    for t in tables:
        parts += [f"## {table_title(t, info.pool)}", "", markdown(HEADER, table_cells(t, series, rss)), "",
                  markdown(OUTCOME_HEADER, [outcome_cells(o) for o in outcomes if o.table is t]), ""]
    parts += [f"## Envoy RSS, `--concurrency {RSS_CONCURRENCY}`", "", markdown(RSS_HEADER, rss_cells(rss)), ""]
    parts += ["## Notes", ""] + [f"- **{k}**: {v}" for k, v in notes.items()] + [""]
    path.write_text("\n".join(parts))


def notes(native_policy: str) -> dict:
    return {
        "rows": "◦ marks a diagnostic row (not a contender). `native`, `native_cached` and `native_rbac` are "
                "Envoy's own jwt_authn (and rbac); `jwt_guard_native` and `jwt_guard_native_policy` are "
                "jwt-guard as a dynamic module (libjwt_guard.so, signatures by ring, a token cache per worker) "
                "with the same configuration as `jwt_guard` and `jwt_guard_policy` (the .wasm in V8). Each "
                "table's rows ran interleaved in the same Envoy; `× no auth` is the row's median req/s over "
                "the baseline's in the same table, `+µs/req` is 1e6/req_s − 1e6/baseline: the filter's time "
                "per request on the one worker.",
        "ratios": "A comparison's value is the median over rounds of the ratio of the two rows' runs of "
                  "the same round (runs minutes apart at most); `overhead` is the extra time per request "
                  "of the first row over the second (req/s of the second ÷ req/s of the first − 1); a value "
                  "in µs is 1e6/req_s of the first − 1e6/req_s of the second, of the same round's runs (the "
                  "`+µs/req` column's measure, against the second row instead of no auth).",
        "latency": "p50/p99 from one paced run per row at `paced at` req/s: half the saturation rate of the "
                   "table's slowest non-diagnostic row, the same for all rows of the table; a diagnostic too "
                   "slow for it is paced at half its own rate (own ½). wrk has no fixed-rate option: the "
                   "generated Lua script's delay() hook spaces the requests of all 8 connections on one "
                   "schedule; wrk's latency excludes that wait.",
        "cache hits": "the share of token cache lookups that hit during the saturation runs: for jwt_authn "
                      "its own jwt_cache_hit/jwt_cache_miss counters, for jwt-guard (both runtimes) its "
                      "wasmcustom.jwt_guard.token_cache.hit/miss (one counter for all its listeners; only the "
                      "measured listener has traffic during a run). `-`: no cache, or no lookup.",
        "no token": "the 401 path: the native rows and jwt-guard (both runtimes) answer 401, no auth and "
                    "the no-op answer 200; every answer of these runs is checked in wrk's response() hook, "
                    "which all rows of the table share. native_cached and the other diagnostics are left "
                    "out: without a token no cache is consulted and no signature checked. The tables for "
                    "information have no baseline row.",
        "RSS": "The same figure in every table: VmRSS of an Envoy with one ES256 listener and --concurrency 2 "
               "(a main thread and two workers; the Wasm filter has a Wasm VM per worker and the main "
               "thread's, the dynamic module a compiled configuration and token cache per worker), read "
               "after the traffic shown (every token new, so each worker's token cache is full).",
        "DPoP": "`jwt_guard_dpop` and `jwt_guard_native_dpop` (issue #18) sit in the every-token-new tables "
                "but run their own workload: every request carries the same token, bound to an ES256 proof key "
                "(`cnf.jkt`), as `Authorization: DPoP`, so the token is a cache hit after the first, and a "
                "proof never sent before (its own `jti`, `htm` GET, `htu` http://dpop.bench.test/ — the "
                "requests' Host —, `ath` of the token, pre-minted with Python's `cryptography`): each request "
                "verifies one ES256 proof signature, checks its claims and records its `jti` in the replay store "
                "(provider `dpop`: ES256 proofs, max_age_seconds 3600, replay_capacity 4,194,304). Their target: "
                "at least 0.8 × the same runtime's every-token-new row of the ES256 table (the proofs' "
                "algorithm); in the RS256 table the ratio is for information (ES256 proofs beside RS256 tokens). Before measuring, each "
                "answers 200 to a proof, 401 to the same proof again, to a proof by another key and to the "
                "bound token sent as Bearer.",
        "native policy": native_policy,
    }


# --------------------------------------------------------------------------- this build vs baseline (--baseline)


@dataclass
class Baseline:
    """The other jwt_guard.wasm and how its twins of the jwt-guard rows fared."""

    wasm_path: str
    wasm_bytes: int
    versus: list[Versus]

    def geomean(self) -> float:
        return math.exp(statistics.fmean(math.log(v.value) for v in self.versus))


VERSUS_HEADER = ["workload", "filter", "req/s", "baseline req/s", "this/baseline", "per round", "p50 ms",
                 "baseline p50", "p99 ms", "baseline p99", "paced at"]


def versus_cells(b: Baseline, series: dict[str, Series]) -> list[list[str]]:
    rows = []
    for v in b.versus:
        this, base = series[v.this.key], series[v.base.key]
        rows.append([
            v.table.workload.short,
            v.this.kind.name + (" ◦" if v.this.kind.diagnostic else ""),
            _rate(this.median_rps()),
            _rate(base.median_rps()),
            f"{v.value:.3f}",
            ", ".join(f"{x:.3f}" for x in v.per_round),
            _ms(this.latency.p50_ms if this.latency else None),
            _ms(base.latency.p50_ms if base.latency else None),
            _ms(this.latency.p99_ms if this.latency else None),
            _ms(base.latency.p99_ms if base.latency else None),
            _rate(this.latency_rate) + (" (own ½)" if this.latency_own_rate else ""),
        ])
    return rows


def versus_lines(info: RunInfo, b: Baseline) -> list[str]:
    return [
        f"jwt_guard.wasm: this build {info.wasm_bytes:,} bytes ({info.wasm_path}), baseline {b.wasm_bytes:,} "
        f"bytes ({b.wasm_path}): {info.wasm_bytes - b.wasm_bytes:+,} bytes",
        f"geometric mean of this/baseline over the {len(b.versus)} rows: {b.geomean():.3f}",
    ]


def print_versus(info: RunInfo, b: Baseline, series: dict[str, Series]) -> None:
    print("\n== this build vs baseline (each jwt-guard row again with the baseline .wasm, the same "
          "configuration, in the same Envoy and rounds)")
    print(console(VERSUS_HEADER, versus_cells(b, series)))
    print()
    print("\n".join(versus_lines(info, b)))


def versus_json(b: Baseline, series: dict[str, Series]) -> dict:
    def latency(s: Series) -> dict | None:
        return {"p50_ms": s.latency.p50_ms, "p99_ms": s.latency.p99_ms, "rps": s.latency.rps} if s.latency else None

    return {"baseline": {
        "wasm_path": b.wasm_path, "wasm_bytes": b.wasm_bytes, "geomean": round(b.geomean(), 4),
        "rows": [{
            "workload": v.table.workload.key, "kind": v.this.kind.name,
            "listener": v.this.listener.name, "baseline_listener": v.base.listener.name,
            "median_rps": round(series[v.this.key].median_rps(), 1),
            "baseline_median_rps": round(series[v.base.key].median_rps(), 1),
            "baseline_samples_rps": [round(x.rps, 1) for x in series[v.base.key].samples],
            "ratio": round(v.value, 4), "per_round": [round(x, 4) for x in v.per_round],
            "latency_rate": series[v.this.key].latency_rate,
            "latency": latency(series[v.this.key]), "baseline_latency": latency(series[v.base.key]),
        } for v in b.versus],
    }}


def write_versus_markdown(path: Path, info: RunInfo, b: Baseline, series: dict[str, Series]) -> None:
    parts = [
        "# jwt-guard: this build vs baseline" + (" (quick run)" if info.quick else ""),
        "",
        "Written by `make bench BENCH_BASELINE=…` (`benches/bench.py --baseline`). Every jwt-guard row of the",
        "bench ran twice in the same Envoy: with this build's .wasm and, on a listener of its own with the",
        "same jwt-guard configuration, with the baseline .wasm; the twins were measured next to each other",
        "in every round (which goes first alternates by round) and paced at the same rate.",
        "`this/baseline` is the median over rounds of the ratio of the runs of the same round.",
        "",
        *run_rows(info),
        f"| Envoy | {info.envoy_version}, `--concurrency 1`, V8 |",
        f"| wrk | {info.wrk_version}, `-t1 -c{info.connections}`, {info.seconds} s per run, "
        f"{info.rounds} interleaved round(s); paced runs of {info.latency_seconds} s |",
        f"| this build | `{info.wasm_path}`, {info.wasm_bytes:,} bytes |",
        f"| baseline | `{b.wasm_path}`, {b.wasm_bytes:,} bytes |",
        f"| size | {info.wasm_bytes - b.wasm_bytes:+,} bytes |",
        f"| geometric mean of this/baseline | {b.geomean():.3f} over {len(b.versus)} rows |",
        "",
        markdown(VERSUS_HEADER, versus_cells(b, series)),
        "",
    ]
    path.write_text("\n".join(parts))
