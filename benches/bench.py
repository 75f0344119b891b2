#!/usr/bin/env python3
"""make bench: requests per second through one Envoy worker with and without JWT checking.

One Envoy (--concurrency 1) serves several listeners, each answering 200 from a
`direct_response` route (no upstream), so only the HTTP filters differ:

    baseline          no auth filter
    native            envoy.filters.http.jwt_authn, one ES256 provider (local_jwks), no cache
    native_cached     the same plus jwt_cache_config {jwt_cache_size: 1000} (if Envoy accepts it)
    jwt_guard         target/wasm32-wasip1/release/jwt_guard.wasm, the equivalent configuration
    jwt_guard_policy  jwt-guard with roles, scopes and source_ips on the rule
    jwt_guard_noop    diagnostic: jwt-guard whose only rule is `disabled` (the filter runs and
                      reads the headers, nothing is verified): the proxy-wasm cost alone

Tokens: a pool of distinct valid ES256 tokens (different sub/jti, valid for an hour). The
"rotating" wrk script sends each request with the next token of the pool, and each run of a
listener continues where its previous run stopped, so with a pool larger than the cache every
token is new to a cache of that size. The "same" script sends one token on every request.

wrk -t1 -c8 runs the listeners interleaved in rounds (the order rotates each round) so the noise
of this shared machine hits all of them alike; the table shows the median per listener. Before
measuring, every listener must answer 200 with a valid token and 401 without one (baseline and
jwt_guard_noop: 200), and every measured request must have been answered 2xx: a broken
configuration cannot produce a fast wrong number.

    .venv/bin/python benches/bench.py                # BENCH_SECONDS (5), BENCH_ROUNDS (3)
    BENCH_SECONDS=2 BENCH_ROUNDS=1 .venv/bin/python benches/bench.py   # quick look

Writes build/bench/results.json (and the wrk scripts, tokens and the Envoy config/logs under
build/bench/). Envoy is always stopped at the end, also on Ctrl-C or an error.
Exit status: 0 on success, 1 if a check failed or Envoy did not start, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests" / "integration"))

import jwt  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from jwt.algorithms import ECAlgorithm  # noqa: E402

from harness import WASM_PATH, Envoy, EnvoyStartError, envoy_binary, free_port, listener, request, wasm_filter  # noqa: E402

OUT_DIR = REPO_ROOT / "build" / "bench"
ISSUER = "https://idp.example.com"
AUDIENCE = "orders"
KID = "bench-es256"
JWT_AUTHN_TYPE = "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication"
NATIVE_CACHE_SIZE = 1000

# (listener, token mode) in the order of one round; the order rotates from round to round.
ROTATING, SAME = "rotating", "same"


class CheckFailed(RuntimeError):
    pass


# --------------------------------------------------------------------------- keys and tokens


@dataclass
class Keys:
    private: Any
    jwks: dict
    rogue: Any  # a key not in the JWKS: its tokens must be refused


def make_keys() -> Keys:
    private = ec.generate_private_key(ec.SECP256R1())
    jwk = ECAlgorithm.to_jwk(private.public_key(), as_dict=True)
    jwk = {k: v for k, v in jwk.items() if k != "key_ops"}
    jwk.update({"kid": KID, "alg": "ES256", "use": "sig"})
    return Keys(private, {"keys": [jwk]}, ec.generate_private_key(ec.SECP256R1()))


def token(keys: Keys, sub: str, now: int, *, key: Any = None, **extra: Any) -> str:
    claims = {
        "iss": ISSUER, "aud": AUDIENCE, "sub": sub, "jti": str(uuid.uuid4()),
        "iat": now, "exp": now + 3600,
        "roles": ["admin"], "scope": "orders:read orders:write",
    }
    claims.update(extra)
    return jwt.encode(claims, key or keys.private, algorithm="ES256", headers={"kid": KID})


def mint_pool(keys: Keys, n: int) -> list[str]:
    now = int(time.time())
    pool = [token(keys, f"user-{i:05d}", now) for i in range(n)]
    assert len(set(pool)) == n
    return pool


# --------------------------------------------------------------------------- Envoy config


def direct_200() -> list[dict]:
    return [{"name": "default", "match": {"prefix": "/"},
             "direct_response": {"status": 200, "body": {"inline_string": "ok\n"}}}]


def native_filter(jwks: dict, cache: bool) -> dict:
    provider: dict[str, Any] = {
        "issuer": ISSUER,
        "audiences": [AUDIENCE],
        "local_jwks": {"inline_string": json.dumps(jwks)},
        "from_headers": [{"name": "authorization", "value_prefix": "Bearer "}],
        "forward": False,
        "require_expiration": True,  # jwt-guard's default; jwt_authn's is false
    }
    if cache:
        provider["jwt_cache_config"] = {"jwt_cache_size": NATIVE_CACHE_SIZE}
    return {
        "name": "envoy.filters.http.jwt_authn",
        "typed_config": {
            "@type": JWT_AUTHN_TYPE,
            "providers": {"p": provider},
            "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "p"}}],
        },
    }


def guard_config(jwks: dict, policy: bool = False, noop: bool = False) -> dict:
    rule: dict[str, Any] = {"match": {"prefix": "/"}, "provider": "p"}
    if noop:
        rule = {"match": {"prefix": "/"}, "disabled": True}
    if policy:
        rule.update({
            "roles": {"any": ["admin", "ops"]},
            "scopes": {"all": ["orders:read"]},
            "source_ips": {"allow": ["127.0.0.0/8"], "deny": ["127.66.0.0/16"]},
        })
    return {
        "realm": "bench",
        "providers": {"p": {"issuer": ISSUER, "audiences": [AUDIENCE], "jwks": jwks, "forward": False}},
        "rules": [rule],
    }


def listener_filters(name: str, jwks: dict) -> list[dict]:
    return {
        "baseline": lambda: [],
        "native": lambda: [native_filter(jwks, cache=False)],
        "native_cached": lambda: [native_filter(jwks, cache=True)],
        "jwt_guard": lambda: [wasm_filter(guard_config(jwks, policy=False), name="jwt_guard")],
        "jwt_guard_policy": lambda: [wasm_filter(guard_config(jwks, policy=True), name="jwt_guard_policy")],
        "jwt_guard_noop": lambda: [wasm_filter(guard_config(jwks, noop=True), name="jwt_guard_noop")],
    }[name]()


def envoy_config(names: list[str], ports: dict[str, int], admin: int, jwks: dict) -> dict:
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {
            "listeners": [listener(n, ports[n], listener_filters(n, jwks), routes=direct_200()) for n in names],
        },
    }


def envoy_accepts(names: list[str], jwks: dict, workdir: Path) -> tuple[bool, str]:
    """envoy --mode validate of a bootstrap with just these listeners."""
    config = envoy_config(names, {n: free_port() for n in names}, free_port(), jwks)
    probe = Envoy(config, workdir=workdir, name="probe", log_level="error")
    rc = probe.run_to_exit(timeout=60, extra_args=["--mode", "validate"])
    return rc == 0, probe.log_tail(5)


def envoy_version() -> str:
    out = subprocess.run([envoy_binary(), "--version"], capture_output=True, text=True, timeout=30).stdout
    m = re.search(r"version:\s*\S+?/(\d+\.\d+\.\d+)(/\S+)?", out)
    return f"{m.group(1)}{m.group(2) or ''}" if m else out.strip()


# --------------------------------------------------------------------------- wrk

LUA = r"""-- Generated by benches/bench.py. Mode: %(mode)s.
-- %(what)s
-- Arguments after `--`: the pool index of the first token (rotating mode).
local tokens = {}
for line in io.lines("%(tokens)s") do tokens[#tokens + 1] = line end
local n = #tokens
local same = %(same)s
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  pos = tonumber(args[1] or "0") or 0   -- globals: read back in done() with thread:get
  calls = 0
end

function request()
  calls = calls + 1
  local t
  if same then
    t = tokens[1]
  else
    t = tokens[(pos %% n) + 1]
    pos = pos + 1
  end
  return wrk.format(nil, nil, {["Authorization"] = "Bearer " .. t})
end

function done(summary, latency, requests)
  for _, thread in ipairs(threads) do
    io.write(string.format("bench-lua: calls=%%d pos=%%d tokens=%%d\n", thread:get("calls"), thread:get("pos"), n))
  end
end
"""


def write_lua(tokens_path: Path) -> dict[str, Path]:
    scripts = {}
    for mode, same, what in (
        (ROTATING, "false", "Each request carries the next token of the pool (new to any cache smaller than the pool)."),
        (SAME, "true", "Every request carries the same token (pool[1])."),
    ):
        path = OUT_DIR / f"wrk-{mode}.lua"
        path.write_text(LUA % {"mode": mode, "what": what, "tokens": tokens_path, "same": same})
        scripts[mode] = path
    return scripts


@dataclass
class WrkResult:
    rps: float
    requests: int
    seconds: float
    non_2xx: int
    socket_errors: int
    p50_ms: float | None
    p99_ms: float | None
    calls: int
    end_pos: int
    raw: str


def _ms(value: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value)
    if not m:
        return float("nan")
    x = float(m.group(1))
    return {"us": x / 1000, "ms": x, "s": x * 1000, "m": x * 60000}[m.group(2)]


def wrk_cmd(script: Path, port: int, seconds: int, start: int, connections: int) -> list[str]:
    return ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s", "--latency",
            "-s", str(script), f"http://127.0.0.1:{port}/", "--", str(start)]


def run_wrk(cmd: list[str], seconds: int) -> WrkResult:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30)
    out = proc.stdout
    if proc.returncode != 0 or "Requests/sec" not in out:
        raise CheckFailed(f"wrk failed ({proc.returncode}): {' '.join(cmd)}\n{out}\n{proc.stderr}")
    rps = float(re.search(r"Requests/sec:\s*([\d.]+)", out).group(1))
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    requests = int(m.group(1))
    secs = _ms(m.group(2) + m.group(3)) / 1000
    non = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.M))
    lua = re.search(r"bench-lua: calls=(\d+) pos=(\d+)", out)
    return WrkResult(
        rps=rps, requests=requests, seconds=secs,
        non_2xx=int(non.group(1)) if non else 0,
        socket_errors=sum(int(x) for x in sock.groups()) if sock else 0,
        p50_ms=_ms(lat["50"]) if "50" in lat else None,
        p99_ms=_ms(lat["99"]) if "99" in lat else None,
        calls=int(lua.group(1)) if lua else 0,
        end_pos=int(lua.group(2)) if lua else 0,
        raw=out,
    )


# --------------------------------------------------------------------------- checks


def check_listeners(names: list[str], ports: dict[str, int], keys: Keys, pool: list[str]) -> list[str]:
    """Each listener must answer as its configuration says before it is measured."""
    now = int(time.time())
    forged = token(keys, "mallory", now, key=keys.rogue)
    no_role = token(keys, "bob", now, roles=["user"])
    lines = []
    for name in names:
        expect: list[tuple[str, str | None, int]] = [
            ("valid token (pool[0])", pool[0], 200),
            ("valid token (pool[-1])", pool[-1], 200),
            ("no token", None, 200 if name in ("baseline", "jwt_guard_noop") else 401),
            ("token signed by another key", forged, 200 if name in ("baseline", "jwt_guard_noop") else 401),
        ]
        if name == "jwt_guard_policy":
            expect.append(("valid token, roles [user]", no_role, 403))
        elif name not in ("baseline", "jwt_guard_noop"):
            expect.append(("valid token, roles [user]", no_role, 200))
        got = []
        for what, tok, status in expect:
            headers = {"Authorization": f"Bearer {tok}"} if tok else None
            r = request(ports[name], "/", headers=headers)
            if r.status != status:
                raise CheckFailed(f"{name}: {what}: expected {status}, got {r.status} {r.body[:200]!r}")
            got.append(f"{status}")
        lines.append(f"  {name:<17} " + ", ".join(f"{w} → {s}" for (w, _, _), s in zip(expect, got)))
    return lines


def jwt_authn_stats(envoy: Envoy) -> dict[str, int]:
    return envoy.stats(r"jwt_authn\.")


def stat_delta(before: dict[str, int], after: dict[str, int], listener_name: str, stat: str) -> int:
    key = f"http.{listener_name}.jwt_authn.{stat}"
    return after.get(key, 0) - before.get(key, 0)


# --------------------------------------------------------------------------- report


@dataclass
class Series:
    listener: str
    mode: str
    samples: list[WrkResult] = field(default_factory=list)
    cache_hits: int = 0
    cache_misses: int = 0

    @property
    def key(self) -> str:
        return f"{self.listener}/{self.mode}"

    def median_rps(self) -> float:
        return statistics.median(s.rps for s in self.samples)


def fmt_rate(x: float) -> str:
    return f"{x:,.0f}"


def print_table(series: list[Series], base: float) -> list[dict]:
    rows = []
    hdr = (f"{'listener':<17} {'tokens':<9} {'median req/s':>12} {'min–max req/s':>17} {'× baseline':>10} "
           f"{'+µs/req':>8} {'p50 ms':>7} {'p99 ms':>7} {'cache hit':>9} {'non-2xx':>7}")
    print(hdr)
    print("-" * len(hdr))
    for s in series:
        med = s.median_rps()
        lo, hi = min(x.rps for x in s.samples), max(x.rps for x in s.samples)
        p50 = statistics.median(x.p50_ms for x in s.samples if x.p50_ms is not None)
        p99 = statistics.median(x.p99_ms for x in s.samples if x.p99_ms is not None)
        added = 1e6 / med - 1e6 / base
        looked = s.cache_hits + s.cache_misses
        hit = f"{100 * s.cache_hits / looked:.1f}%" if looked else "-"
        non2xx = sum(x.non_2xx for x in s.samples)
        print(f"{s.listener:<17} {s.mode:<9} {fmt_rate(med):>12} {fmt_rate(lo) + '–' + fmt_rate(hi):>17} "
              f"{med / base:>10.3f} {added if s.listener != 'baseline' else 0:>8.1f} {p50:>7.2f} {p99:>7.2f} "
              f"{hit:>9} {non2xx:>7}")
        rows.append({
            "listener": s.listener, "tokens": s.mode, "median_rps": round(med, 1),
            "min_rps": lo, "max_rps": hi, "samples_rps": [x.rps for x in s.samples],
            "requests": [x.requests for x in s.samples],
            "vs_baseline": round(med / base, 4),
            "added_us_per_request": None if s.listener == "baseline" else round(added, 1),
            "p50_ms_median": p50, "p99_ms_median": p99,
            "native_cache_hits": s.cache_hits if looked else None,
            "native_cache_misses": s.cache_misses if looked else None,
            "non_2xx": non2xx, "socket_errors": sum(x.socket_errors for x in s.samples),
        })
    return rows


def ratios(by_key: dict[str, Series], rounds: int) -> list[dict]:
    pairs = [
        ("jwt_guard/rotating", "native/rotating", "jwt-guard vs native jwt_authn, every token new"),
        ("jwt_guard/same", "native/same", "jwt-guard vs native jwt_authn, one repeated token"),
        ("jwt_guard/rotating", "native_cached/rotating", "jwt-guard vs native + cache, every token new"),
        ("jwt_guard/same", "native_cached/same", "jwt-guard vs native + cache, one repeated token (cache hits)"),
        ("jwt_guard_policy/rotating", "jwt_guard/rotating", "jwt-guard with policy vs without"),
        ("native_cached/rotating", "native/rotating", "native: cache vs no cache, every token new"),
        ("native_cached/same", "native/same", "native: cache vs no cache, one repeated token"),
        ("native/rotating", "baseline/rotating", "native jwt_authn vs no filter"),
        ("jwt_guard/rotating", "baseline/rotating", "jwt-guard vs no filter"),
        ("jwt_guard_noop/rotating", "baseline/rotating", "jwt-guard with nothing to verify vs no filter"),
    ]
    out = []
    for a, b, what in pairs:
        if a not in by_key or b not in by_key:
            continue
        sa, sb = by_key[a], by_key[b]
        per_round = [sa.samples[r].rps / sb.samples[r].rps for r in range(rounds)]
        out.append({"a": a, "b": b, "what": what,
                    "ratio_of_medians": round(sa.median_rps() / sb.median_rps(), 4),
                    "median_of_round_ratios": round(statistics.median(per_round), 4),
                    "round_ratios": [round(x, 4) for x in per_round]})
    return out


# --------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=int(os.environ.get("BENCH_SECONDS", "5")),
                    help="seconds per wrk run (env BENCH_SECONDS, default 5)")
    ap.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", "3")),
                    help="rounds over all listeners (env BENCH_ROUNDS, default 3)")
    ap.add_argument("--pool", type=int, default=int(os.environ.get("BENCH_POOL", "4000")),
                    help="distinct tokens in the rotating pool (env BENCH_POOL, default 4000)")
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=1, help="seconds of unmeasured load per listener first")
    args = ap.parse_args()
    if args.seconds < 1 or args.rounds < 1 or args.pool < 2:
        ap.error("--seconds and --rounds must be ≥ 1, --pool ≥ 2")
    if not shutil.which("wrk"):
        print("wrk is not installed: `make bench` installs it (apt-get install -y wrk)", file=sys.stderr)
        return 1
    if not WASM_PATH.exists():
        print(f"{WASM_PATH} is missing: run `make build` (make bench does)", file=sys.stderr)
        return 1

    # SIGTERM behaves like Ctrl-C: unwind, so the finally below stops Envoy.
    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)

    OUT_DIR.mkdir(parents=True, exist_ok=True)
    envoy_dir = OUT_DIR / "envoy"
    shutil.rmtree(envoy_dir, ignore_errors=True)
    envoy_dir.mkdir()
    started = time.monotonic()
    envoy: Envoy | None = None
    try:
        keys = make_keys()
        t0 = time.monotonic()
        pool = mint_pool(keys, args.pool)
        tokens_path = OUT_DIR / "tokens.txt"
        tokens_path.write_text("\n".join(pool) + "\n")
        scripts = write_lua(tokens_path)
        print(f"minted {len(pool)} distinct ES256 tokens (sub/jti differ, valid 1 h) in {time.monotonic() - t0:.1f}s"
              f" → {tokens_path.relative_to(REPO_ROOT)}")

        names = ["baseline", "native", "native_cached", "jwt_guard", "jwt_guard_policy", "jwt_guard_noop"]
        ok, why = envoy_accepts(["native_cached"], keys.jwks, envoy_dir / "probe")
        if ok:
            print(f"Envoy accepts jwt_cache_config {{jwt_cache_size: {NATIVE_CACHE_SIZE}}}: native_cached included")
        else:
            names.remove("native_cached")
            print(f"Envoy refused jwt_cache_config, native_cached left out:\n{why}")

        ports = {n: free_port() for n in names}
        admin = free_port()
        config = envoy_config(names, ports, admin, keys.jwks)
        envoy = Envoy(config, admin_port=admin, workdir=envoy_dir, name="bench", log_level="warning")
        try:
            envoy.start(timeout=60)
        except EnvoyStartError as e:
            print(f"Envoy did not start:\n{e}", file=sys.stderr)
            return 1

        version = envoy_version()
        wasm_bytes = WASM_PATH.stat().st_size
        print(f"Envoy {version} ({envoy_binary()}), --concurrency 1; "
              f"{WASM_PATH.relative_to(REPO_ROOT)} {wasm_bytes:,} bytes ({wasm_bytes / 1024:.0f} KiB), V8")
        print("listeners: " + ", ".join(f"{n} :{ports[n]}" for n in names))
        print("checks before measuring:")
        for line in check_listeners(names, ports, keys, pool):
            print(line)

        runs = [(n, ROTATING) for n in names] + [
            (n, SAME) for n in ("native", "native_cached", "jwt_guard") if n in names]
        series = {f"{n}/{m}": Series(n, m) for n, m in runs}
        pos = {n: 0 for n in names}  # where each listener's rotating sequence continues
        example = wrk_cmd(scripts[ROTATING], ports["jwt_guard"], args.seconds, 0, args.connections)
        print(f"\nwrk command (per run; the last argument is the pool index to start at):\n  {' '.join(example)}")
        est = len(runs) * args.rounds * args.seconds + len(names) * args.warmup
        print(f"{len(runs)} runs × {args.rounds} rounds × {args.seconds}s (+ {len(names)}×{args.warmup}s warm-up) "
              f"≈ {est}s of load")
        print(f"tokens 'rotating': each request carries the next of {len(pool)} distinct tokens and every run "
              f"continues the listener's sequence, so each token is new to any cache of fewer than {len(pool)} "
              f"entries (native_cached holds {NATIVE_CACHE_SIZE}); 'same': one token on every request.\n")

        if args.warmup > 0:
            for n in names:
                r = run_wrk(wrk_cmd(scripts[ROTATING], ports[n], args.warmup, pos[n], args.connections), args.warmup)
                pos[n] = r.end_pos % len(pool)
                if r.non_2xx or r.socket_errors:
                    raise CheckFailed(f"warm-up {n}: {r.non_2xx} non-2xx, {r.socket_errors} socket errors\n{r.raw}")

        for rnd in range(args.rounds):
            order = runs[rnd % len(runs):] + runs[:rnd % len(runs)]
            for n, mode in order:
                start = pos[n] if mode == ROTATING else 0
                before = jwt_authn_stats(envoy)
                r = run_wrk(wrk_cmd(scripts[mode], ports[n], args.seconds, start, args.connections), args.seconds)
                after = jwt_authn_stats(envoy)
                if mode == ROTATING:
                    pos[n] = r.end_pos % len(pool)
                s = series[f"{n}/{mode}"]
                s.samples.append(r)
                s.cache_hits += stat_delta(before, after, n, "jwt_cache_hit")
                s.cache_misses += stat_delta(before, after, n, "jwt_cache_miss")
                flag = "" if not (r.non_2xx or r.socket_errors) else f"  !! {r.non_2xx} non-2xx, {r.socket_errors} socket errors"
                print(f"  round {rnd + 1}/{args.rounds}  {n + '/' + mode:<26} {fmt_rate(r.rps):>8} req/s"
                      f"  ({r.requests:,} requests){flag}", flush=True)

        ordered = [series[f"{n}/{m}"] for n, m in runs]
        base = series["baseline/rotating"].median_rps()
        print(f"\nmedian of {args.rounds} runs of {args.seconds}s, wrk -t1 -c{args.connections}, one Envoy worker "
              f"(this machine: {os.cpu_count()} cores, shared). "
              "+µs/req = 1e6/req_s − 1e6/baseline: the filter's cost per request if the worker is the bottleneck.")
        rows = print_table(ordered, base)
        rats = ratios(series, args.rounds)
        print("\nratios (same Envoy, same run; per-round ratios pair the runs of one round):")
        for x in rats:
            print(f"  {x['a']:<26} / {x['b']:<24} = {x['ratio_of_medians']:.3f}  "
                  f"(per round {', '.join(f'{v:.3f}' for v in x['round_ratios'])})  {x['what']}")

        bad = [r for r in rows if r["non_2xx"] or r["socket_errors"]]
        # One counter shared by the three jwt-guard listeners (the noop one counts as allowed too).
        allowed = envoy.stats(r"jwt_guard\.allowed").get("wasmcustom.jwt_guard.allowed")
        result = {
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "envoy_version": version,
            "envoy_concurrency": 1,
            "wasm_path": str(WASM_PATH.relative_to(REPO_ROOT)),
            "wasm_bytes": wasm_bytes,
            "wrk_command": " ".join(example),
            "wrk_version": subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout.split("\n")[0],
            "seconds_per_run": args.seconds,
            "rounds": args.rounds,
            "connections": args.connections,
            "token_pool": len(pool),
            "native_cache_size": NATIVE_CACHE_SIZE if "native_cached" in names else None,
            "cpu_count": os.cpu_count(),
            "loadavg_at_end": os.getloadavg(),
            "listeners": names,
            "rows": rows,
            "ratios": rats,
            "wasmcustom_jwt_guard_allowed_all_wasm_listeners": allowed,
            "ok": not bad,
            "wall_seconds": round(time.monotonic() - started, 1),
        }
        out = OUT_DIR / "results.json"
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"\nwrote {out.relative_to(REPO_ROOT)}; wall time {result['wall_seconds']}s; "
              f"load average now {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
        if bad:
            print("FAILED: some runs had non-2xx answers or socket errors: "
                  + ", ".join(f"{r['listener']}/{r['tokens']}" for r in bad), file=sys.stderr)
            return 1
        return 0
    except CheckFailed as e:
        print(f"FAILED: {e}", file=sys.stderr)
        if envoy is not None:
            print(envoy.log_tail(20), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted: stopping Envoy", file=sys.stderr)
        return 130
    finally:
        if envoy is not None:
            envoy.stop()


if __name__ == "__main__":
    sys.exit(main())
