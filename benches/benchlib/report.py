"""The tables (console and markdown), the target verdicts, build/bench/results.json and
benches/RESULTS.md. Cells are made once (table_cells) and laid out twice."""

from __future__ import annotations

import json
import os
import platform
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from .plan import RSS_CONCURRENCY, RSS_PAIRS, Outcome, Rss, Series, Table, Verdict
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
    nproc: int
    cpu_model: str
    kernel: str
    loadavg_start: tuple[float, float, float]
    loadavg_end: tuple[float, float, float] | None = None
    wall_seconds: float | None = None


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
          "RSS MiB", "jwt_authn cache hits"]


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
    fmt = (lambda v: f"{100 * v:+.1f} %") if c.overhead else (lambda v: f"{v:.3f}")
    target = c.target.text if c.target else ""
    return [c.what, f"{c.a} vs {c.b}", fmt(o.value), ", ".join(fmt(v) for v in o.per_round), target,
            o.verdict or ""]


OUTCOME_HEADER = ["comparison", "rows", "value", "per round", "target", "verdict"]


def rss_cells(rss: dict[str, Rss]) -> list[list[str]]:
    peers = {a: b for a, b in RSS_PAIRS}
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


def print_verdicts(vs: list[Verdict]) -> None:
    print("\n== targets (issue #7)")
    print(console(["target", "measured", "verdict"], [[v.target, v.measured, v.word] for v in vs]))


# --------------------------------------------------------------------------- files


def write_json(path: Path, info: RunInfo, tables: list[Table], series: dict[str, Series],
               outcomes: list[Outcome], rss: dict[str, Rss], vs: list[Verdict], notes: dict) -> None:
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
                "jwt_authn_cache_hits": series[r.key].cache_hits,
                "jwt_authn_cache_misses": series[r.key].cache_misses,
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
    }
    path.write_text(json.dumps(data, indent=2) + "\n")


def write_markdown(path: Path, info: RunInfo, tables: list[Table], series: dict[str, Series],
                   outcomes: list[Outcome], rss: dict[str, Rss], vs: list[Verdict], notes: dict) -> None:
    la = lambda t: ", ".join(f"{x:.2f}" for x in t) if t else "-"  # noqa: E731
    parts = [
        "# jwt-guard benchmark results" + (" (quick run)" if info.quick else ""),
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
        "| | |",
        "|---|---|",
        f"| date | {info.date} |",
        f"| command | `{info.command}` |",
        f"| machine | {info.nproc} cores (`nproc`), {info.cpu_model}, Linux {info.kernel} |",
        f"| load average | {la(info.loadavg_start)} at start, {la(info.loadavg_end)} at end |",
        f"| Envoy | {info.envoy_version}, `--concurrency 1` (RSS: `--concurrency {RSS_CONCURRENCY}`), V8 |",
        f"| jwt_guard.wasm | {info.wasm_bytes:,} bytes ({info.wasm_bytes / 2**20:.3f} MiB) |",
        f"| wrk | {info.wrk_version}, `-t1 -c{info.connections}`, {info.seconds} s per run, "
        f"{info.rounds} interleaved round(s), median |",
        f"| latency | one paced run of {info.latency_seconds} s per row at half the saturation rate of the "
        "table's slowest compared row (wrk's Lua `delay()` hook) |",
        f"| tokens | {info.pool:,}-token rotation per algorithm for \"every token new\", 1,000 others "
        "for \"cycled\" |",
        f"| wall time | {info.wall_seconds:.0f} s |" if info.wall_seconds else "| wall time | - |",
        "",
        "## Targets",
        "",
        markdown(["target", "measured", "verdict"], [[v.target, v.measured, f"**{v.word}**"] for v in vs]),
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
        "rows": "◦ marks a diagnostic row (not a contender). Each table's rows ran interleaved in the "
                "same Envoy; `× no auth` is the row's median req/s over the baseline's in the same table, "
                "`+µs/req` is 1e6/req_s − 1e6/baseline: the filter's time per request on the one worker.",
        "ratios": "A comparison's value is the median over rounds of the ratio of the two rows' runs of "
                  "the same round (runs minutes apart at most); `overhead` is the extra time per request "
                  "of the first row over the second (req/s of the second ÷ req/s of the first − 1).",
        "latency": "p50/p99 from one paced run per row at `paced at` req/s: half the saturation rate of the "
                   "table's slowest non-diagnostic row, the same for all rows of the table; a diagnostic too "
                   "slow for it is paced at half its own rate (own ½). wrk has no fixed-rate option: the "
                   "generated Lua script's delay() hook spaces the requests of all 8 connections on one "
                   "schedule; wrk's latency excludes that wait.",
        "cache hits": "from jwt_authn's own jwt_cache_hit/jwt_cache_miss counters (jwt-guard's own are "
                      "wasmcustom.jwt_guard.token_cache.hit/miss; compare jwt_guard with jwt_guard_nocache too).",
        "no token": "the 401 path: the native rows and jwt-guard answer 401, no auth answers 200; every "
                    "answer of these runs is checked in wrk's response() hook, which all rows of the table "
                    "share. native_cached and the diagnostics are left out: without a token no cache is "
                    "consulted and no signature checked. The tables for information have no baseline row.",
        "RSS": "The same figure in every table: VmRSS of an Envoy with one ES256 listener and --concurrency 2 (a main thread and two workers, "
               "each with its own Wasm VM for jwt-guard), read after the traffic shown (every token new, "
               "so each worker's token cache is full).",
        "native policy": native_policy,
    }
