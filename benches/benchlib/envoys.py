"""Envoy processes for the bench and the checks every listener must pass before it is measured.

The harness's Envoy always runs with --concurrency 1; BenchEnvoy chooses (the RSS figures are
taken with 2 workers). Envoy is stopped by the harness's own guards too (atexit, PDEATHSIG).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from harness import Envoy, envoy_binary, request

from .dpop import DPOP_HOST, DpopPool
from .filters import OPEN, POLICY, POLICY_ANSWERS, Listener, envoy_config
from .tokens import CheckTokens, SigningKey, TokenPool


class CheckFailed(RuntimeError):
    pass


class BenchEnvoy(Envoy):
    def __init__(self, *args, concurrency: int = 1, **kw) -> None:
        super().__init__(*args, **kw)
        self.concurrency = concurrency

    def command(self) -> list[str]:
        cmd = super().command()
        cmd[cmd.index("--concurrency") + 1] = str(self.concurrency)
        return cmd

    def rss_kib(self) -> int:
        """VmRSS of the Envoy process (/proc/<pid>/status), in KiB."""
        assert self.proc is not None
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.M).group(1))


def start_envoy(listeners: list[Listener], keys: dict[str, SigningKey], workdir: Path, name: str,
                concurrency: int) -> tuple[BenchEnvoy, dict[str, int]]:
    """An Envoy serving these listeners, ready, and the port of each listener by name."""
    envoy = BenchEnvoy(envoy_config(listeners, keys), workdir=workdir, name=name, log_level="info",
                       concurrency=concurrency)
    envoy.start(timeout=60)
    return envoy, envoy.listener_ports()


def envoy_version() -> str:
    out = subprocess.run([envoy_binary(), "--version"], capture_output=True, text=True, timeout=30).stdout
    m = re.search(r"version:\s*\S+?/(\d+\.\d+\.\d+)(/\S+)?", out)
    return f"{m.group(1)}{m.group(2) or ''}" if m else out.strip()


# --------------------------------------------------------------------------- answers


@dataclass(frozen=True)
class Probe:
    what: str
    token: str | None
    expect: int
    country: str | None = POLICY.client_country
    source: str | None = None


def probes(listener: Listener, pool: TokenPool, check: CheckTokens) -> list[Probe]:
    """What this listener must answer. Cached tokens are sent twice: the second answer comes
    from the cache where there is one, and must be the same."""
    answers = listener.kind.answers
    denied = 200 if answers == OPEN else 401
    forbidden = 403 if answers == POLICY_ANSWERS else 200
    out = [
        Probe("valid token (fresh[0])", pool.fresh[0], 200),
        Probe("valid token (fresh[-1])", pool.fresh[-1], 200),
        Probe("valid token (cycled[0])", pool.cycled[0], 200),
        Probe("valid token (cycled[0]) again", pool.cycled[0], 200),
        Probe("no token", None, denied),
        Probe("token signed by another key", check.forged, denied),
        Probe("valid token, roles [user]", check.no_role, forbidden),
        Probe("valid token, roles [user] again", check.no_role, forbidden),
    ]
    if answers == POLICY_ANSWERS:
        out += [
            Probe(f"valid token from {POLICY.denied_source}", pool.fresh[1], 403, source=POLICY.denied_source),
            Probe("valid token, country KP", pool.fresh[2], 403, country="KP"),
            Probe("valid token, no country header", pool.fresh[3], 403, country=None),
        ]
    return out


def dpop_probes(dpop: DpopPool) -> list[tuple[str, dict[str, str], int, str | None]]:
    """A DPoP listener's own checks: (what, headers, status, the 401's reason). The proofs are
    not the rotation's: its lines stay unsent."""
    bound = f"DPoP {dpop.token}"
    return [
        ("DPoP: bound token and a proof", {"Authorization": bound, "DPoP": dpop.probe}, 200, None),
        ("DPoP: the same proof again", {"Authorization": bound, "DPoP": dpop.probe}, 401, "dpop_proof_replayed"),
        ("DPoP: a proof by another key", {"Authorization": bound, "DPoP": dpop.foreign_probe}, 401,
         "dpop_key_mismatch"),
        ("DPoP: the bound token as Bearer", {"Authorization": f"Bearer {dpop.token}"}, 401, "dpop_bound_as_bearer"),
    ]


def _reason(body: bytes) -> str | None:
    try:
        return json.loads(body).get("reason")
    except (ValueError, AttributeError):
        return None


def check_listener(listener: Listener, port: int, pool: TokenPool, check: CheckTokens,
                   dpop: DpopPool | None = None) -> str:
    """Sends every probe (and a DPoP listener's, with `dpop`); CheckFailed on the first unexpected
    answer. Returns a summary such as "11 probes: 200 ×6, 401 ×2, 403 ×3"."""
    sent = probes(listener, pool, check)
    for p in sent:
        headers = {POLICY.country_header: p.country} if p.country else {}
        if p.token:
            headers["Authorization"] = f"Bearer {p.token}"
        r = request(port, "/", headers=headers, source=p.source)
        if r.status != p.expect:
            raise CheckFailed(f"{listener.name}: {p.what}: expected {p.expect}, got {r.status} {r.body[:200]!r}")
    statuses = [p.expect for p in sent]
    if listener.kind.dpop:
        if dpop is None:
            raise CheckFailed(f"{listener.name}: a DPoP listener without DPoP tokens to check it with")
        for what, headers, expect, reason in dpop_probes(dpop):
            r = request(port, "/", headers={POLICY.country_header: POLICY.client_country, **headers},
                        authority=DPOP_HOST)
            if r.status != expect or (reason and _reason(r.body) != reason):
                raise CheckFailed(f"{listener.name}: {what}: expected {expect} {reason or ''}, got {r.status} "
                                  f"{r.body[:200]!r}")
            statuses.append(expect)
    counts = Counter(statuses)
    return f"{len(statuses)} probes: " + ", ".join(f"{s} ×{n}" for s, n in sorted(counts.items()))


def prime(port: int, tokens: list[str], timeout: float = 60) -> None:
    """One request per token on one keep-alive connection, each answered 200: afterwards every
    token is in the listener's cache (1,000 tokens, caches of 1,000)."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        for t in tokens:
            conn.request("GET", "/", headers={"Authorization": f"Bearer {t}",
                                              POLICY.country_header: POLICY.client_country})
            r = conn.getresponse()
            r.read()
            if r.status != 200:
                raise CheckFailed(f"priming the cache on :{port}: answer {r.status}")
    finally:
        conn.close()


# --------------------------------------------------------------------------- jwt-guard's start-up line


def guard_settings_expected(listener: Listener) -> list[str]:
    """What jwt-guard's start-up line must say for this listener (empty: not a jwt-guard one)."""
    kind, alg = listener.kind.name, listener.alg
    if listener.kind.runtime != "wasm" or kind == "jwt_guard_noop":
        return []
    host_algs = {"ES256", "RS256"}  # what Envoy's verify_signature serves among the bench's algorithms
    if kind == "jwt_guard_pure_rust" or alg not in host_algs:
        backend = f"in Rust: [{alg}]"
    else:
        backend = f"signatures by the host (verify_signature): [{alg}], in Rust: []"
    cache = "token cache: 0 entries" if kind == "jwt_guard_nocache" else "token cache: 1000 entries"
    return [backend, cache]


MODULE_LINE = re.compile(r"jwt-guard \S+ \(native\): configured: 1 providers, 1 rules; signatures natively "
                         r"\(ring\); token cache: 1000 entries per worker")


def check_module_settings(envoy: Envoy, listeners: list[Listener]) -> str | None:
    """The dynamic module's start-up lines: one per listener of the module, each with ring and a
    cache of 1,000 per worker. Its line names no listener, so they are counted (every module
    listener of the bench has one provider and one rule)."""
    expected = sum(1 for l in listeners if l.kind.runtime == "module")
    if not expected:
        return None
    deadline = time.monotonic() + 10  # the log file is flushed on an interval
    while True:
        lines = [line for line in envoy.log().splitlines() if "(native): configured:" in line]
        if len(lines) >= expected or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    good = [line for line in lines if MODULE_LINE.search(line)]
    if len(good) != expected or len(lines) != expected:
        raise CheckFailed(f"{expected} module listeners, {len(lines)} start-up lines of the module, "
                          f"{len(good)} as expected:\n" + "\n".join(lines))
    return MODULE_LINE.search(good[0]).group(0)


def check_guard_settings(envoy: Envoy, listener: Listener) -> str | None:
    """The start-up line of this listener's VM, checked against guard_settings_expected."""
    expected = guard_settings_expected(listener)
    if not expected:
        return None
    line = envoy.wait_for_log(f"wasm log jwt_guard {listener.name}: jwt-guard: configured:", timeout=10)
    text = line.split("jwt-guard: configured: ", 1)[1]
    missing = [e for e in expected if e not in text]
    if missing:
        raise CheckFailed(f"{listener.name}: start-up line lacks {missing}: {text}")
    return text
