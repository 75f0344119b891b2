"""What is measured: workloads, the tables (one per workload and algorithm), their rows, the
comparisons printed under each table and the issue's targets (#7 item 4). Everything about
"which row is compared with which, against which target" is here and nowhere else.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from .filters import KINDS, Kind, Listener
from .wrk import WrkResult

MAIN_ALGS = ("ES256", "RS256")
INFO_ALGS = ("EdDSA", "PS256", "HS256")
MAIN_KINDS = ("baseline", "native", "native_cached", "native_rbac", "jwt_guard", "jwt_guard_policy")
NEW, CYCLED, NONE = "new", "cycled", "none"
CYCLED_TOKENS = 1000


@dataclass(frozen=True)
class Workload:
    name: str  # NEW, CYCLED or NONE
    alg: str | None  # whose tokens (None: no token)

    @property
    def key(self) -> str:
        return f"{self.alg}/{self.name}" if self.alg else self.name

    @property
    def short(self) -> str:
        return {NEW: f"{self.alg} every token new", CYCLED: f"{self.alg} 1,000 cycled", NONE: "no token"}[self.name]

    def title(self, pool_size: int) -> str:
        return {
            NEW: f"{self.alg}, every token new ({pool_size:,}-token rotation: no cache of 1,000 can hit)",
            CYCLED: f"{self.alg}, {CYCLED_TOKENS:,} tokens cycled (every one in every cache after priming)",
            NONE: "no token (the 401 path; no auth and the no-op answer 200)",
        }[self.name]


@dataclass(frozen=True)
class Row:
    """One listener under one workload: a series of wrk runs."""

    listener: Listener
    workload: Workload

    @property
    def key(self) -> str:
        return f"{self.listener.name}@{self.workload.key}"

    @property
    def kind(self) -> Kind:
        return self.listener.kind

    @property
    def expect(self) -> int | None:
        """The status every request must get: None for 2xx (wrk's own count), else exact."""
        if self.workload.name != NONE:
            return None
        return 200 if self.kind.answers == "open" else 401


@dataclass(frozen=True)
class Target:
    text: str
    minimum: float | None = None  # the value must be ≥ minimum …
    maximum: float | None = None  # … or ≤ maximum

    def met(self, value: float) -> bool:
        return (self.minimum is None or value >= self.minimum) and (self.maximum is None or value <= self.maximum)


@dataclass(frozen=True)
class Comparison:
    """`ratio`: req/s of a ÷ req/s of b. `overhead`: the extra time per request of a over b,
    req/s of b ÷ req/s of a − 1 (what a policy adds to authentication alone)."""

    a: str  # kind names within the same table
    b: str
    what: str
    overhead: bool = False
    target: Target | None = None


def _policy_overhead() -> Comparison:
    return Comparison("jwt_guard_policy", "jwt_guard", "policy overhead over authn only", overhead=True,
                      target=Target("jwt_guard_policy ≤ 5 % over jwt_guard", maximum=0.05))


def _targets_new() -> list[Comparison]:
    return [
        Comparison("jwt_guard", "native", "jwt-guard / native jwt_authn",
                   target=Target("jwt_guard ≥ 0.9 × native", minimum=0.9)),
        Comparison("jwt_guard", "native_cached", "jwt-guard / native jwt_authn with cache"),
        Comparison("jwt_guard_policy", "native_rbac", "jwt-guard policy / native jwt_authn + rbac"),
        _policy_overhead(),
        Comparison("native", "baseline", "native jwt_authn / no auth"),
        Comparison("jwt_guard", "baseline", "jwt-guard / no auth"),
        Comparison("jwt_guard_pure_rust", "jwt_guard", "diagnostic: pure_rust / host backend"),
        Comparison("jwt_guard_nocache", "jwt_guard", "diagnostic: no cache / cache (no hits here)"),
        Comparison("jwt_guard_noop", "baseline", "diagnostic: proxy-wasm alone (noop) / no auth"),
    ]


def _targets_cycled() -> list[Comparison]:
    return [
        Comparison("jwt_guard", "native_cached", "jwt-guard / native jwt_authn with cache",
                   target=Target("jwt_guard ≥ 1.0 × native_cached", minimum=1.0)),
        Comparison("jwt_guard", "baseline", "jwt-guard / no auth",
                   target=Target("jwt_guard ≥ 0.85 × baseline (no auth)", minimum=0.85)),
        Comparison("jwt_guard", "native", "jwt-guard / native jwt_authn without cache"),
        Comparison("native_cached", "native", "native: cache / no cache"),
        Comparison("jwt_guard_policy", "native_rbac", "jwt-guard policy / native jwt_authn + rbac"),
        _policy_overhead(),
        Comparison("jwt_guard_nocache", "jwt_guard", "diagnostic: no cache / cache"),
    ]


def _targets_none() -> list[Comparison]:
    return [
        Comparison("jwt_guard", "baseline", "jwt-guard no token / no auth",
                   target=Target("jwt_guard ≥ 0.8 × baseline (no auth)", minimum=0.8)),
        Comparison("native", "baseline", "native jwt_authn no token / no auth"),
        Comparison("jwt_guard", "native", "jwt-guard / native jwt_authn"),
        Comparison("jwt_guard_policy", "native_rbac", "jwt-guard policy / native jwt_authn + rbac"),
        _policy_overhead(),
    ]


def _targets_info() -> list[Comparison]:
    return [Comparison("jwt_guard", "native", "jwt-guard / native jwt_authn (for information)")]


@dataclass
class Table:
    workload: Workload
    rows: list[Row]
    comparisons: list[Comparison]
    info: bool = False  # "for information": no targets

    def row(self, kind: str) -> Row | None:
        return next((r for r in self.rows if r.kind.name == kind), None)


def _table(workload: Workload, kinds: list[str], comparisons: list[Comparison], info: bool = False) -> Table:
    alg = workload.alg or MAIN_ALGS[0]  # no token: the ES256 listeners
    rows = [Row(Listener.of(KINDS[k], alg), workload) for k in kinds]
    present = {k for k in kinds}
    return Table(workload, rows, [c for c in comparisons if c.a in present and c.b in present], info)


def build_tables() -> list[Table]:
    tables = []
    for alg in MAIN_ALGS:
        diagnostics = ["jwt_guard_pure_rust", "jwt_guard_nocache"] + (["jwt_guard_noop"] if alg == "ES256" else [])
        tables.append(_table(Workload(NEW, alg), [*MAIN_KINDS, *diagnostics], _targets_new()))
        tables.append(_table(Workload(CYCLED, alg), [*MAIN_KINDS, "jwt_guard_nocache"], _targets_cycled()))
    tables.append(_table(Workload(NONE, None), ["baseline", "native", "native_rbac", "jwt_guard", "jwt_guard_policy"],
                         _targets_none()))
    for alg in INFO_ALGS:
        tables.append(_table(Workload(NEW, alg), ["native", "jwt_guard"], _targets_info(), info=True))
    return tables


# --------------------------------------------------------------------------- results


@dataclass
class Series:
    """The measurements of one row: saturation runs (one per round) and one paced run."""

    row: Row
    samples: list[WrkResult] = field(default_factory=list)
    cache_hits: int = 0  # jwt_authn's jwt_cache_hit / jwt_cache_miss over the saturation runs
    cache_misses: int = 0
    latency: WrkResult | None = None
    latency_rate: float | None = None  # the paced rate asked for
    latency_own_rate: bool = False  # True: too slow for the table's rate, paced at half its own

    def median_rps(self) -> float:
        return statistics.median(s.rps for s in self.samples)

    def cache_hit_share(self) -> float | None:
        looked = self.cache_hits + self.cache_misses
        return self.cache_hits / looked if looked else None


@dataclass
class Outcome:
    """A comparison worked out: of medians, and per round (runs of the same round paired)."""

    table: Table
    comparison: Comparison
    value: float
    per_round: list[float]

    @property
    def verdict(self) -> str | None:
        t = self.comparison.target
        return None if t is None else ("PASS" if t.met(self.value) else "MISS")


def compare(table: Table, c: Comparison, series: dict[str, Series]) -> Outcome:
    sa, sb = series[table.row(c.a).key], series[table.row(c.b).key]

    def value(a: float, b: float) -> float:
        return b / a - 1 if c.overhead else a / b

    per_round = [value(x.rps, y.rps) for x, y in zip(sa.samples, sb.samples)]
    # The verdict uses the median of the per-round values: each pairs runs made minutes apart at
    # most, so drifts of this shared machine cancel out.
    return Outcome(table, c, statistics.median(per_round), per_round)


def latency_rate(table: Table, series: dict[str, Series]) -> float:
    """Half the saturation rate of the slowest compared (non-diagnostic) row of the table."""
    return 0.5 * min(series[r.key].median_rps() for r in table.rows if not r.kind.diagnostic)


# --------------------------------------------------------------------------- another build (--baseline)


def twins(tables: list[Table], wasm: str) -> dict[str, Row]:
    """Each jwt-guard row's twin, by the row's key: the same listener configuration running
    `wasm` (another jwt_guard.wasm), under the same workload."""
    return {r.key: Row(r.listener.with_wasm(wasm), r.workload) for t in tables for r in t.rows if r.kind.guard}


@dataclass
class Versus:
    """A jwt-guard row against its twin: the median over rounds of req/s (this build) ÷ req/s
    (baseline) of the runs of the same round, as the comparisons do."""

    table: Table
    this: Row
    base: Row
    value: float
    per_round: list[float]


def versus(tables: list[Table], twins: dict[str, Row], series: dict[str, Series]) -> list[Versus]:
    out = []
    for t in tables:
        for r in t.rows:
            if r.key in twins:
                a, b = series[r.key], series[twins[r.key].key]
                per_round = [x.rps / y.rps for x, y in zip(a.samples, b.samples)]
                out.append(Versus(t, r, twins[r.key], statistics.median(per_round), per_round))
    return out


# --------------------------------------------------------------------------- memory and size

RSS_CONCURRENCY = 2
RSS_KINDS = ("baseline", "native", "native_cached", "native_rbac", "jwt_guard", "jwt_guard_policy",
             "jwt_guard_pure_rust", "jwt_guard_nocache", "jwt_guard_noop")
RSS_ALG = "ES256"
# (jwt-guard kind, its native peer): Envoy's RSS with the first within 30 MiB of the second.
RSS_PAIRS = (("jwt_guard", "native"), ("jwt_guard_policy", "native_rbac"))
RSS_TARGET_MIB = 30.0
WASM_TARGET = Target("jwt_guard.wasm ≤ 1 MiB", maximum=1.0)


@dataclass
class Rss:
    kind: str
    kib: int
    requests: int  # sent before reading it (caches full: more than 1,000 distinct tokens per worker)

    @property
    def mib(self) -> float:
        return self.kib / 1024


@dataclass
class Verdict:
    target: str
    measured: str
    passed: bool

    @property
    def word(self) -> str:
        return "PASS" if self.passed else "MISS"


def verdicts(outcomes: list[Outcome], rss: dict[str, Rss], wasm_bytes: int) -> list[Verdict]:
    out = []
    for o in outcomes:
        t = o.comparison.target
        if t is None:
            continue
        shown = f"{100 * o.value:+.1f} %" if o.comparison.overhead else f"{o.value:.3f}"
        out.append(Verdict(f"{o.table.workload.short}: {t.text}", shown, t.met(o.value)))
    for a, b in RSS_PAIRS:
        if a in rss and b in rss:
            delta = rss[a].mib - rss[b].mib
            target = Target(f"RSS, --concurrency {RSS_CONCURRENCY}: {a} ≤ {b} + {RSS_TARGET_MIB:.0f} MiB",
                            maximum=RSS_TARGET_MIB)
            out.append(Verdict(target.text, f"{delta:+.1f} MiB", target.met(delta)))
    size = wasm_bytes / 2**20
    out.append(Verdict(WASM_TARGET.text, f"{size:.3f} MiB ({wasm_bytes:,} bytes)", WASM_TARGET.met(size)))
    return out
