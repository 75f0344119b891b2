#!/usr/bin/env python3
"""make soak: jwt-guard in a real Envoy (--concurrency 2) under a steady high rate of mixed
requests for SOAK_SECONDS (default 300), while its identity provider rotates keys and goes
down and up. Every answer is checked; the run fails on any wrong one.

Traffic: wrk with benches/soak.lua, one connection per wrk thread (SOAK_CONNECTIONS, default 6),
so each response is checked against the request that caused it; the listener balances the
connections exactly over Envoy's two workers (two Wasm VMs). Each request belongs to a class
with a known answer (the plan below): valid tokens cycled (token-cache hits) and valid tokens
each used once per pool round (misses), ES256 and RS256; expired, forged, refused by policy
(403), anonymous on a public and on a protected path, a dry-run rule, and tokens of the keys
the IdP rotates. Every class has its own route and its own upstream listener (a second Envoy
answering "upstream <class>"), so the upstream counts by class what reached it.

Key rotation without undecidable answers (the IdP serves the stable keys, and rotating keys
R0, R1, ... two at a time): the wrk script sends "rot_valid" tokens of a key that is certainly
in force, and "rot_retired" tokens of a key that certainly is not (at first, a key never
published). A rotation from {R(k), R(k+1)} to {R(k+1), R(k+2)}: (1) "rot_valid" moves to R(k+1)
(in force since the previous rotation); (2) after GUARD_SECONDS (longer than wrk's timeout plus
the script's 0.1 s phase reload, so no R(k) token is still in flight), the IdP serves
{R(k+1), R(k+2)}; (3) R(k+2) tokens are sent by this driver ("probes": 200 or 401 unknown_key
both right) until one is accepted, which proves the new document is in shared data; (4)
SETTLE_SECONDS later (every VM re-reads shared data every 0.5 s) "rot_retired" moves to R(k).
Outages: the IdP answers 503 for OUTAGE_SECONDS, or stops listening and drops open
connections; one rotation happens while it is unreachable. Nothing the wrk traffic expects
depends on the IdP being up: keys in force stay in force (max_stale_seconds is left at its
default, a day, far longer than any outage here).

Checks (the exit status is 1 if any fails): zero wrong answers and zero 5xx among all
responses (wrk and probes), no socket errors or timeouts; per class, the upstream saw exactly
the 200s the client saw (plus at most the requests in flight when wrk stopped) and nothing for
refused classes; jwt-guard's counters (allowed + dry_run + refused.*) equal Envoy's own count
of requests on the listener, and each counter equals the answers of its class; both workers
served; each outage made the fetches fail and the IdP's return made them succeed; Envoy's RSS
after warm-up stays flat: the median of the last three samples is at most
max(RSS_TOLERANCE_MIB, RSS_TOLERANCE_FRACTION × RSS) over the median of the first three after
warm-up; no Wasm failure in Envoy's log.

    .venv/bin/python benches/soak.py             # SOAK_SECONDS (300), SOAK_CONNECTIONS (6)
    make soak SOAK_SECONDS=30                    # a short run while developing
    make soak SOAK_SECONDS=30 SOAK_MISLABEL=forged   # the checks' own test: must FAIL

Writes benches/SOAK.md (the figures of the run, pass or fail) and build/soak/ (tokens, plan,
phase file, wrk output, Envoy configurations and logs, results.json).
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(REPO_ROOT / "tests" / "integration"))

from harness import (HCM_TYPE, WASM_PATH, Envoy, request, route, router_filter,  # noqa: E402
                     static_cluster, wasm_filter)
from jwks_server import JwksServer  # noqa: E402

from benchlib import report as bench_report  # noqa: E402
from benchlib.envoys import envoy_version  # noqa: E402
from benchlib.wrk import version as wrk_version  # noqa: E402

OUT = REPO_ROOT / "build" / "soak"
SOAK_MD = REPO_ROOT / "benches" / "SOAK.md"
LUA = REPO_ROOT / "benches" / "soak.lua"

ISSUER = "https://idp.example.com"
AUDIENCE = "orders"
REFRESH_SECONDS = 5
MIN_REFETCH_SECONDS = 2
WRK_TIMEOUT_SECONDS = 4
GUARD_SECONDS = WRK_TIMEOUT_SECONDS + 1.5
SETTLE_SECONDS = 2.5
OUTAGE_SECONDS = 6
RSS_TOLERANCE_MIB = 10
RSS_TOLERANCE_FRACTION = 0.10
# Log lines that mean the Wasm filter failed (the integration tests' list, conftest.py).
CRASH_PATTERNS = ("panicked", "wasm trap", "Wasm VM failed", "Function: proxy_on_", "failed to execute",
                  "jwt-guard: cannot")


# --------------------------------------------------------------------------- keys and tokens


@dataclass
class Key:
    kid: str
    alg: str
    private: Any
    jwk: dict


def es256(kid: str) -> Key:
    private = ec.generate_private_key(ec.SECP256R1())
    return Key(kid, "ES256", private, {**ECAlgorithm.to_jwk(private.public_key(), as_dict=True),
                                       "kid": kid, "alg": "ES256", "use": "sig"})


def rs256(kid: str) -> Key:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return Key(kid, "RS256", private, {**RSAAlgorithm.to_jwk(private.public_key(), as_dict=True),
                                       "kid": kid, "alg": "RS256", "use": "sig"})


def mint(key: Key, sub: str, now: int, lifetime: int, *, signer: Key | None = None, **claims: Any) -> str:
    payload = {"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "jti": uuid.uuid4().hex, "iat": now,
               "exp": now + lifetime, "roles": ["user"], **claims}
    return jwt.encode(payload, (signer or key).private, algorithm=key.alg, headers={"kid": key.kid})


def write_tokens(path: Path, tokens: list[str]) -> Path:
    path.write_text("\n".join(tokens) + "\n")
    return path


# --------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class Cls:
    """A class of requests with one known answer. `source`: a token file, None (no token),
    or "rot_valid" / "rot_retired" (the phase file's keys)."""

    name: str
    status: int
    reason: str | None
    source: str | None
    weight: int

    @property
    def path(self) -> str:
        return f"/c/{self.name}/"

    @property
    def upstream(self) -> str:
        return f"up_{self.name}"

    @property
    def passes(self) -> bool:
        return self.status == 200

    def counter(self) -> str:
        """The jwt-guard counter this class's answers increment."""
        if self.name == "dry_run":
            return "jwt_guard.dry_run"
        return "jwt_guard.allowed" if self.passes else f"jwt_guard.refused.{self.status}.{self.reason}"


# The probes of a rotation go to their own route (the driver sends them, not wrk).
PROBE = Cls("probe", 200, None, None, 0)


def plan_classes(tokens: dict[str, Path]) -> list[Cls]:
    t = {k: str(v) for k, v in tokens.items()}
    return [
        Cls("valid_cycled", 200, None, t["cycled"], 26),
        Cls("valid_new", 200, None, t["new"], 12),
        Cls("admin_ok", 200, None, t["admin"], 6),
        Cls("forbidden", 403, "missing_role", t["user_on_admin"], 8),
        Cls("expired", 401, "expired", t["expired"], 8),
        Cls("forged", 401, "bad_signature", t["forged"], 8),
        Cls("public", 200, None, None, 6),
        Cls("anonymous", 401, "missing", None, 8),
        Cls("dry_run", 200, None, t["forged"], 4),
        Cls("rot_valid", 200, None, "rot_valid", 8),
        Cls("rot_retired", 401, "unknown_key", "rot_retired", 6),
    ]


def write_plan(path: Path, classes: list[Cls]) -> None:
    lines = ["\t".join([c.name, c.path, str(c.status), c.reason or "-", c.source or "-", str(c.weight)])
             for c in classes]
    path.write_text("\n".join(lines) + "\n")


def guard_config() -> dict:
    return {
        "realm": "api",
        "providers": {"corp": {
            "issuer": ISSUER, "audiences": [AUDIENCE],
            "remote_jwks": {"cluster": "idp", "uri": "http://idp.example.com/jwks.json",
                            "refresh_seconds": REFRESH_SECONDS, "min_refetch_seconds": MIN_REFETCH_SECONDS,
                            "timeout_ms": 1000},
        }},
        "rules": [
            {"name": "public", "match": {"prefix": "/c/public/"}, "allow_anonymous": True},
            {"name": "admin", "match": {"prefix": "/c/admin_"}, "provider": "corp", "roles": {"any": ["admin"]}},
            {"name": "admin_forbidden", "match": {"prefix": "/c/forbidden/"}, "provider": "corp",
             "roles": {"any": ["admin"]}},
            {"name": "dry", "match": {"prefix": "/c/dry_run/"}, "provider": "corp", "dry_run": True},
            {"name": "api", "match": {"prefix": "/"}, "provider": "corp"},
        ],
    }


# --------------------------------------------------------------------------- Envoys


def upstream_config(classes: list[Cls]) -> dict:
    """One listener per class, answering 200 "upstream <class>" itself, and echoing what a
    check needs: the dry-run header and whether a token reached it."""
    listeners = []
    for c in classes:
        hcm = {
            "@type": HCM_TYPE, "stat_prefix": c.upstream,
            "route_config": {"virtual_hosts": [{
                "name": "all", "domains": ["*"],
                "routes": [{"match": {"prefix": "/"},
                            "direct_response": {"status": 200, "body": {"inline_string": f"upstream {c.name}"}}}],
                "response_headers_to_add": [
                    {"header": {"key": "x-soak-dry-run", "value": "%REQ(x-jwt-guard-dry-run)%"}},
                    {"header": {"key": "x-soak-authorization", "value": "%REQ(authorization)%"}},
                ],
            }]},
            "http_filters": [router_filter()],
        }
        listeners.append({"name": c.upstream,
                          "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
                          "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                                          "typed_config": hcm}]}]})
    return {"admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
            "static_resources": {"listeners": listeners, "clusters": []}}


def soak_config(classes: list[Cls], upstream_ports: dict[str, int], idp_port: int) -> dict:
    hcm = {
        "@type": HCM_TYPE, "stat_prefix": "soak",
        "normalize_path": True, "merge_slashes": True,
        "route_config": {"name": "soak_routes", "virtual_hosts": [{
            "name": "all", "domains": ["*"],
            "routes": [route(c.path, c.name, c.upstream) for c in classes]}]},
        "http_filters": [wasm_filter(guard_config()), router_filter()],
    }
    listener = {
        "name": "soak",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
        # Exact balance: the wrk connections are spread evenly over both workers (both VMs).
        "connection_balance_config": {"exact_balance": {}},
        "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                        "typed_config": hcm}]}],
    }
    clusters = [static_cluster(c.upstream, upstream_ports[c.upstream]) for c in classes]
    clusters.append(static_cluster("idp", idp_port))
    return {"admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
            "static_resources": {"listeners": [listener], "clusters": clusters}}


def rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    m = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
    return int(m.group(1)) if m else 0


def counters(envoy: Envoy) -> dict[str, int]:
    """jwt-guard's counters (without the wasmcustom. prefix) and the listener's request count."""
    out = {k.removeprefix("wasmcustom."): v for k, v in envoy.stats("wasmcustom.jwt_guard").items()}
    out.update(envoy.stats(r"^http\.soak\.downstream_rq_total$"))
    out.update(envoy.stats(r"^listener\..*\.worker_\d+\.downstream_cx_total$"))
    return out


def judged(c: dict[str, int]) -> int:
    """Requests jwt-guard decided: allowed + dry_run + every refused.<status>.<reason>."""
    return (c.get("jwt_guard.allowed", 0) + c.get("jwt_guard.dry_run", 0)
            + sum(v for k, v in c.items() if re.fullmatch(r"jwt_guard\.refused\.\d+\.\w+", k)))


# --------------------------------------------------------------------------- the run


@dataclass
class Sample:
    t: float
    rss_mib: float
    requests: int
    fetch_ok: int
    fetch_failed: int
    idp: str
    rotating: str


@dataclass
class Event:
    t: float
    what: str
    detail: str = ""


@dataclass
class Probes:
    sent: int = 0
    accepted: int = 0
    unknown_key: int = 0
    wrong: list[str] = field(default_factory=list)


class Soak:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.t0 = time.monotonic()
        self.events: list[Event] = []
        self.samples: list[Sample] = []
        self.probes = Probes()
        self.failures: list[str] = []
        self.lock = threading.Lock()
        self.idp_state = "up"
        self.rotating = "R0 in force, R1 published"
        self.stop_sampling = threading.Event()
        self.wrk_started: float | None = None

    def now(self) -> float:
        return time.monotonic() - self.t0

    def event(self, what: str, detail: str = "") -> None:
        """Times are seconds since wrk started, as in the RSS table (events before: "setup")."""
        started = self.wrk_started is not None
        e = Event(round(self.now() - self.wrk_started, 1) if started else -1.0, what, detail)
        self.events.append(e)
        when = f"{e.t:7.1f} s" if started else "  setup  "
        print(f"  [{when}] {what}{': ' + detail if detail else ''}", flush=True)

    def fail(self, message: str) -> None:
        self.failures.append(message)
        print(f"  FAIL: {message}", flush=True)

    # ----------------------------------------------------------------- set-up

    def prepare(self) -> None:
        OUT.mkdir(parents=True, exist_ok=True)
        self.tok_dir = OUT / "tokens"
        self.tok_dir.mkdir(exist_ok=True)
        for old in self.tok_dir.glob("*.txt"):
            old.unlink()
        lifetime = self.args.seconds + 3600
        now = int(time.time())
        t = time.monotonic()
        self.stable_es, self.stable_rs = es256("stable-es"), rs256("stable-rs")
        rogue = es256("stable-es")
        pool = self.args.pool
        new = [mint(self.stable_es if i % 5 else self.stable_rs, f"new-{i}", now, lifetime) for i in range(pool)]
        tokens = {
            "cycled": write_tokens(self.tok_dir / "cycled.txt",
                                   [mint(self.stable_es if i % 4 else self.stable_rs, f"cyc-{i}", now, lifetime)
                                    for i in range(self.args.connections * 40)]),
            "new": write_tokens(self.tok_dir / "new.txt", new),
            "admin": write_tokens(self.tok_dir / "admin.txt",
                                  [mint(self.stable_es, f"adm-{i}", now, lifetime, roles=["admin"])
                                   for i in range(self.args.connections * 10)]),
            "user_on_admin": write_tokens(self.tok_dir / "user.txt",
                                          [mint(self.stable_es, f"usr-{i}", now, lifetime)
                                           for i in range(self.args.connections * 10)]),
            "expired": write_tokens(self.tok_dir / "expired.txt",
                                    [mint(self.stable_es, f"exp-{i}", now - 7200, 3600)
                                     for i in range(self.args.connections * 10)]),
            "forged": write_tokens(self.tok_dir / "forged.txt",
                                   [mint(self.stable_es, f"forged-{i}", now, lifetime, signer=rogue)
                                    for i in range(self.args.connections * 10)]),
        }
        self.lifetime, self.minted_at = lifetime, now
        self.rot_keys: list[Key] = []
        self.rot_files: list[Path] = []
        for _ in range(2):
            self.add_rotating_key()
        self.unpublished = self.rot_token_file(es256("never-published"), "unpublished")
        self.classes = plan_classes(tokens)
        if self.args.mislabel:
            # The checker's own test: one class expected to get the other answer.
            self.classes = [Cls(c.name, 401 if c.passes else 200, None if not c.passes else "missing", c.source,
                                c.weight) if c.name == self.args.mislabel else c for c in self.classes]
        self.plan_path = OUT / "plan.tsv"
        write_plan(self.plan_path, self.classes)
        self.phase_path = OUT / "phase.txt"
        self.set_phase(valid=self.rot_files[0], retired=self.unpublished)
        minted = sum(len(p.read_text().split()) for p in self.tok_dir.glob("*.txt"))
        print(f"  minted {minted:,} tokens in {time.monotonic() - t:.1f} s", flush=True)

    def rot_token_file(self, key: Key, name: str) -> Path:
        tokens = [mint(key, f"{name}-{i}", self.minted_at, self.lifetime) for i in range(50)]
        return write_tokens(self.tok_dir / f"rot-{name}.txt", tokens)

    def add_rotating_key(self) -> None:
        k = len(self.rot_keys)
        key = es256(f"rot-{k}")
        self.rot_keys.append(key)
        self.rot_files.append(self.rot_token_file(key, str(k)))

    def set_phase(self, valid: Path, retired: Path) -> None:
        tmp = self.phase_path.with_suffix(".tmp")
        tmp.write_text(f"rot_valid {valid}\nrot_retired {retired}\n")
        os.replace(tmp, self.phase_path)  # atomic: the script never reads half a file

    def serve(self, first: int) -> None:
        """The IdP serves the stable keys and rotating keys R(first), R(first + 1)."""
        keys = [self.stable_es.jwk, self.stable_rs.jwk, self.rot_keys[first].jwk, self.rot_keys[first + 1].jwk]
        self.idp.set(jwks={"keys": keys})

    def start(self) -> None:
        self.idp = JwksServer().start()
        self.serve(0)
        self.upstream = Envoy(upstream_config(self.classes + [PROBE]), workdir=OUT, name="upstream",
                              log_level="warning", concurrency=1)
        self.upstream.start(timeout=60)
        up_ports = self.upstream.listener_ports()
        self.envoy = Envoy(soak_config(self.classes + [PROBE], up_ports, self.idp.port), workdir=OUT, name="soak",
                           log_level="info", concurrency=2)
        self.envoy.start(timeout=60)
        self.port = self.envoy.listener_ports()["soak"]
        self.event("Envoy ready", f"pid {self.envoy.proc.pid}, --concurrency 2, listener :{self.port}")

    def stop(self) -> None:
        for env in (getattr(self, "envoy", None), getattr(self, "upstream", None)):
            if env is not None:
                env.stop()
        if getattr(self, "idp", None) is not None:
            try:
                self.idp.stop()
            except Exception:  # noqa: BLE001 - already stopped while unreachable
                pass

    # ----------------------------------------------------------------- requests from here

    def send(self, c: Cls, token: str | None) -> tuple[int, bytes, dict[str, str]]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        r = request(self.port, c.path, headers=headers, timeout=WRK_TIMEOUT_SECONDS)
        return r.status, r.body, r.headers

    def check_every_class(self) -> None:
        """Before the run: one request per class, answered as the plan says (fails fast with a
        readable message rather than a count of wrong answers)."""
        first = {"rot_valid": self.rot_files[0], "rot_retired": self.unpublished}
        for c in self.classes:
            if c.name == self.args.mislabel:
                continue
            source = first.get(c.source or "", c.source)
            token = Path(source).read_text().split("\n", 1)[0] if source else None
            status, body, headers = self.send(c, token)
            good = status == c.status and (
                (c.passes and body == f"upstream {c.name}".encode())
                or (not c.passes and f'"reason":"{c.reason}"'.encode() in body))
            if not good:
                raise SystemExit(f"soak: class {c.name}: expected {c.status} {c.reason or ''}, "
                                 f"got {status} {body[:200]!r}")

    def probe_until_accepted(self, key_file: Path, timeout: float) -> float:
        """Sends tokens of a newly published key until one is accepted; returns the seconds it
        took. Until then, 401 unknown_key is the right answer too."""
        tokens = key_file.read_text().split()
        start = time.monotonic()
        i = 0
        while time.monotonic() - start < timeout:
            status, body, headers = self.send(PROBE, tokens[i % len(tokens)])
            i += 1
            with self.lock:
                self.probes.sent += 1
                if status == 200 and body == b"upstream probe":
                    self.probes.accepted += 1
                    return time.monotonic() - start
                if status == 401 and b'"reason":"unknown_key"' in body:
                    self.probes.unknown_key += 1
                else:
                    self.probes.wrong.append(f"probe: got {status} {headers} {body[:300]!r}")
                    print(f"soak: unexpected probe answer: {status} {headers} {body[:300]!r}", flush=True)
                    return -1
            time.sleep(0.2)
        return -1

    def keys_in_force_on_every_worker(self, key_file: Path, timeout: float) -> float:
        """Waits until the VM of each of Envoy's workers accepts tokens of `key_file`'s key (the
        fetched document adopted everywhere: a VM adopts it on its own next tick); returns the
        seconds it took. One kept-alive connection per worker (the listener's exact balance puts
        each new connection on the worker with the fewest, checked in Envoy's per-worker
        counters) carries the probes. Until a VM has adopted the document, 401 keys_unavailable
        (no keys yet) or unknown_key are right too; any other answer, or none in time, ends the
        setup with every answer it got printed (status, headers, body)."""
        tokens = key_file.read_text().split()
        workers = 2
        conns = [http.client.HTTPConnection("127.0.0.1", self.port, timeout=WRK_TIMEOUT_SECONDS)
                 for _ in range(workers)]
        # Per connection, each different answer (status, body) in order: how often, the last headers.
        answers: list[dict[tuple[int, bytes], list[Any]]] = [{} for _ in range(workers)]
        try:
            for conn in conns:
                conn.connect()
            deadline = time.monotonic() + timeout
            while True:  # until Envoy has accepted both (connect() returns on the kernel's accept)
                active = self.envoy.stats(r"worker_\d+\.downstream_cx_active$")
                if sum(active.values()) >= workers or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            if sorted(active.values()) != [1] * workers:
                raise SystemExit(f"soak: the {workers} probe connections are not one per worker: {active}")
            start, pending, i = time.monotonic(), set(range(workers)), 0
            while pending:
                for w in sorted(pending):
                    conns[w].request("GET", PROBE.path, headers={"Authorization": f"Bearer {tokens[i % len(tokens)]}"})
                    i += 1
                    resp = conns[w].getresponse()
                    body = resp.read()
                    seen = answers[w].setdefault((resp.status, body[:300]), [0, {}])
                    seen[0] += 1
                    seen[1] = dict(resp.getheaders())
                    answer = f"{resp.status} {seen[1]} {body[:300]!r}"
                    if resp.status == 200 and body == b"upstream probe":
                        pending.discard(w)
                    elif not (resp.status == 401 and (b'"reason":"keys_unavailable"' in body
                                                       or b'"reason":"unknown_key"' in body)):
                        raise SystemExit(f"soak: setup: worker connection {w} got an unexpected answer: {answer}")
                if pending and time.monotonic() - start > timeout:
                    shown = "\n".join(f"  connection {w}: " + "; then ".join(
                        f"{n} x {status} {headers} {body!r}" for (status, body), (n, headers) in answers[w].items())
                        for w in range(workers))
                    raise SystemExit(f"soak: the first key set is not in force on every worker after {timeout} s; "
                                     f"answers (status, headers, body):\n{shown}")
                if pending:
                    time.sleep(0.1)
            return time.monotonic() - start
        finally:
            for conn in conns:
                conn.close()

    # ----------------------------------------------------------------- IdP events

    def fetch_stats(self) -> tuple[int, int]:
        s = self.envoy.stats("jwt_guard.jwks.corp")
        return (s.get("wasmcustom.jwt_guard.jwks.corp.fetch_ok", 0),
                s.get("wasmcustom.jwt_guard.jwks.corp.fetch_failed", 0))

    def rotate(self, while_down: str | None = None) -> None:
        """{R(k), R(k+1)} -> {R(k+1), R(k+2)}, the protocol of the module docstring."""
        k = len(self.rot_keys) - 2
        self.add_rotating_key()
        label = f"R{k} -> R{k + 2}" + (f" while the IdP is {while_down}" if while_down else "")
        self.set_phase(valid=self.rot_files[k + 1], retired=self.current_retired)
        if while_down:
            self.outage_begin(while_down)
        time.sleep(GUARD_SECONDS)
        self.serve(k + 1)
        self.rotating = f"R{k + 1}, R{k + 2} served; R{k} retiring"
        self.event("rotation", f"{label}: the IdP serves R{k + 1}, R{k + 2}")
        if while_down:
            time.sleep(OUTAGE_SECONDS)
            ok_before, _ = self.fetch_stats()
            self.outage_end(ok_before)
        took = self.probe_until_accepted(self.rot_files[k + 2], timeout=30)
        if took < 0:
            self.fail(f"rotation {label}: R{k + 2} not accepted after 30 s (or a wrong probe answer)")
            return
        time.sleep(SETTLE_SECONDS)
        self.current_retired = self.rot_files[k]
        self.set_phase(valid=self.rot_files[k + 1], retired=self.rot_files[k])
        self.rotating = f"R{k + 1} in force, R{k + 2} published, R{k} retired"
        self.event("rotation done", f"R{k + 2} accepted {took:.1f} s after publication; R{k} tokens now expected 401")

    def outage_begin(self, how: str) -> None:
        self.outage_failed_before = self.fetch_stats()[1]
        if how == "unreachable":
            self.idp.unreachable()
        else:
            self.idp.set(mode="down")
        self.idp_state = how
        self.event("IdP down", "503 to every request" if how == "503" else
                   "port closed (connection refused), open connections dropped")

    def outage_end(self, ok_before: int) -> None:
        failed = self.fetch_stats()[1] - self.outage_failed_before
        if self.idp_state == "unreachable":
            self.idp.reachable()
        else:
            self.idp.set(mode="ok")
        was = self.idp_state
        self.idp_state = "up"
        start = time.monotonic()
        while time.monotonic() - start < 20 and self.fetch_stats()[0] <= ok_before:
            time.sleep(0.2)
        back = self.fetch_stats()[0] > ok_before
        self.event("IdP up", f"{failed} fetches failed while {was}; "
                   + (f"fetched again after {time.monotonic() - start:.1f} s" if back else "no fetch succeeded in 20 s"))
        if failed < 1:
            self.fail(f"the IdP was {was} for {OUTAGE_SECONDS} s and no fetch failed")
        if not back:
            self.fail(f"no successful fetch within 20 s of the IdP coming back ({was})")

    def outage(self, how: str) -> None:
        self.outage_begin(how)
        time.sleep(OUTAGE_SECONDS)
        self.outage_end(self.fetch_stats()[0])

    def orchestrate(self, deadline: float) -> None:
        cycle = ["rotate", "503", "rotate", "unreachable", "rotate_while_down"]
        estimate = {"rotate": GUARD_SECONDS + SETTLE_SECONDS + 4, "503": OUTAGE_SECONDS + 6,
                    "unreachable": OUTAGE_SECONDS + 6,
                    "rotate_while_down": GUARD_SECONDS + OUTAGE_SECONDS + SETTLE_SECONDS + 8}
        i = 0
        time.sleep(min(5.0, self.args.seconds / 10))
        while not self.failures:
            what = cycle[i % len(cycle)]
            if self.now() + estimate[what] > deadline:
                break
            if what == "rotate":
                self.rotate()
            elif what == "rotate_while_down":
                self.rotate(while_down="unreachable")
            else:
                self.outage(what)
            i += 1
            time.sleep(2)

    # ----------------------------------------------------------------- sampling

    def sample(self) -> None:
        pid = self.envoy.proc.pid
        try:
            total = self.envoy.stats(r"^http\.soak\.downstream_rq_total$").get("http.soak.downstream_rq_total", 0)
            ok, failed = self.fetch_stats()
        except OSError:
            return
        s = Sample(round(self.now() - self.wrk_started, 1), rss_kib(pid) / 1024, total, ok, failed,
                   self.idp_state, self.rotating)
        self.samples.append(s)
        rate = ""
        if len(self.samples) > 1:
            p = self.samples[-2]
            rate = f"{(s.requests - p.requests) / max(s.t - p.t, 1e-6):8,.0f}"
        print(f"  {s.t:7.1f}  {s.rss_mib:8.1f}  {s.requests:>11,}  {rate:>8}  {s.fetch_ok:>5}/{s.fetch_failed:<5}"
              f"  {s.idp:<11}  {s.rotating}", flush=True)

    def sampler(self, interval: float) -> None:
        print(f"  {'t (s)':>7}  {'RSS MiB':>8}  {'requests':>11}  {'req/s':>8}  fetch ok/failed  IdP          "
              "rotating keys", flush=True)
        while not self.stop_sampling.wait(interval):
            self.sample()

    # ----------------------------------------------------------------- wrk

    def run_wrk(self) -> tuple[subprocess.Popen, list[str]]:
        n = self.args.connections
        cmd = ["wrk", f"-t{n}", f"-c{n}", f"-d{self.args.seconds}s", "--timeout", f"{WRK_TIMEOUT_SECONDS}s",
               "-s", str(LUA), f"http://127.0.0.1:{self.port}/", "--", str(self.plan_path), str(self.phase_path),
               str(n)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                stdin=subprocess.DEVNULL)
        return proc, cmd

    def run(self) -> dict[str, Any]:
        self.prepare()
        self.current_retired = self.unpublished
        self.start()
        deadline = time.monotonic() + 30
        while self.fetch_stats()[0] < 1:
            if time.monotonic() > deadline:
                raise SystemExit("soak: the first JWKS fetch did not succeed in 30 s")
            time.sleep(0.1)
        # Both rotating keys of the first document in force on every VM before they are used:
        # one document, so a key of it accepted by each worker's VM.
        took = self.keys_in_force_on_every_worker(self.rot_files[1], timeout=10)
        self.event("keys in force", f"every worker's VM accepts the first key set ({took:.1f} s after the first "
                   "good fetch was counted)")
        self.check_every_class()
        self.probes = Probes()
        before = counters(self.envoy)
        up_before = self.upstream_counts()
        self.event("checks passed", f"{len(self.classes)} classes answered as planned; wrk starts")
        interval = max(2.0, min(5.0, self.args.seconds / 30))
        self.wrk_started = self.now()
        proc, cmd = self.run_wrk()
        self.event("wrk started", " ".join(cmd[:6]))
        self.sample()
        sampler = threading.Thread(target=self.sampler, args=(interval,), daemon=True)
        sampler.start()
        try:
            self.orchestrate(deadline=self.wrk_started + self.args.seconds - 3)
            out, err = proc.communicate(timeout=self.args.seconds + 120)
        finally:
            if proc.poll() is None:
                proc.kill()
            self.stop_sampling.set()
            sampler.join()
        self.sample()
        self.event("wrk done", f"exit {proc.returncode}")
        (OUT / "wrk.out").write_text(out + "\n--- stderr\n" + err)
        time.sleep(1.0)  # let Envoy finish what was in flight
        after = counters(self.envoy)
        up_after = self.upstream_counts()
        log = self.envoy.log()
        result = self.evaluate(proc.returncode, out, before, after, up_before, up_after, log)
        result["command"] = " ".join(cmd)
        return result

    def upstream_counts(self) -> dict[str, int]:
        stats = self.upstream.stats(r"^http\.up_\w+\.downstream_rq_total$")
        return {k.split(".")[1]: v for k, v in stats.items()}

    # ----------------------------------------------------------------- verdict

    def evaluate(self, rc: int, out: str, before: dict, after: dict, up_before: dict, up_after: dict,
                 log: str) -> dict[str, Any]:
        if rc != 0 or "requests in" not in out:
            self.fail(f"wrk failed (exit {rc}): {out[-2000:]}")
            return {}
        per_class: dict[str, dict[str, int]] = {c.name: {"ok": 0, "wrong": 0, "s5xx": 0, "pending": 0}
                                                for c in self.classes}
        calls = answered = unmatched = 0
        for m in re.finditer(r"^soak-lua: thread=\d+ calls=(\d+) answered=(\d+) unmatched=(\d+) pending=(\S+)$",
                             out, re.M):
            calls += int(m.group(1))
            answered += int(m.group(2))
            unmatched += int(m.group(3))
            if m.group(4) != "-":
                per_class[m.group(4)]["pending"] += 1
        for m in re.finditer(r"^soak-lua: thread=\d+ class=(\w+) (\d+) (\d+) (\d+)$", out, re.M):
            row = per_class[m.group(1)]
            for key, value in zip(("ok", "wrong", "s5xx"), m.groups()[1:]):
                row[key] += int(value)
        wrong_samples = re.findall(r"^soak-lua: thread=\d+ wrong (.*)$", out, re.M)
        total = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
        wrk_requests = int(total.group(1)) if total else -1
        sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
        socket_errors = sum(int(x) for x in sock.groups()) if sock else 0
        pending = sum(r["pending"] for r in per_class.values())
        wrong = sum(r["wrong"] for r in per_class.values()) + len(self.probes.wrong)
        s5xx = sum(r["s5xx"] for r in per_class.values())
        checked = sum(r["ok"] + r["wrong"] for r in per_class.values())

        if wrong:
            self.fail(f"{wrong} wrong answers: " + "; ".join((wrong_samples + self.probes.wrong)[:10]))
        if s5xx:
            self.fail(f"{s5xx} answers 5xx")
        if socket_errors:
            self.fail(f"wrk socket errors (connect/read/write/timeout): {sock.group(0)}")
        if unmatched:
            self.fail(f"{unmatched} responses without a request in flight")
        if checked != answered or answered != wrk_requests:
            self.fail(f"responses checked {checked}, answered {answered}, wrk counted {wrk_requests}: "
                      "not every response was checked")
        if calls < answered + pending:
            self.fail(f"request() calls {calls} < answered {answered} + in flight at the end {pending}")

        # jwt-guard's counters against Envoy's count and against the answers.
        delta = {k: after.get(k, 0) - before.get(k, 0) for k in set(after) | set(before)}
        judged_delta = judged(after) - judged(before)
        envoy_requests = delta.get("http.soak.downstream_rq_total", 0)
        answered_all = answered + self.probes.sent
        if judged_delta != envoy_requests:
            self.fail(f"jwt-guard judged {judged_delta} requests, Envoy received {envoy_requests}")
        if not answered_all <= judged_delta <= answered_all + pending:
            self.fail(f"jwt-guard judged {judged_delta} requests; answered {answered_all}, "
                      f"{pending} in flight at the end")
        expected_counters: dict[str, int] = {}
        in_flight: dict[str, int] = {}
        for c in self.classes:
            expected_counters[c.counter()] = expected_counters.get(c.counter(), 0) + per_class[c.name]["ok"]
            in_flight[c.counter()] = in_flight.get(c.counter(), 0) + per_class[c.name]["pending"]
        expected_counters["jwt_guard.allowed"] += self.probes.accepted
        expected_counters["jwt_guard.refused.401.unknown_key"] += self.probes.unknown_key
        counter_rows = []
        for name in sorted(k for k in delta if re.fullmatch(r"jwt_guard\.(allowed|dry_run|refused\.\d+\.\w+)", k)):
            got, want, slack = delta[name], expected_counters.get(name, 0), in_flight.get(name, 0)
            if got or want:
                counter_rows.append((name, got, want))
            if not want <= got <= want + slack:
                self.fail(f"counter {name}: {got}, answers of its classes {want} (+{slack} in flight)")

        # What reached the upstream, by class.
        up_rows = []
        for c in self.classes + [PROBE]:
            got = up_after.get(c.upstream, 0) - up_before.get(c.upstream, 0)
            if c is PROBE:
                want, slack = self.probes.accepted, 0
            else:
                want = per_class[c.name]["ok"] if c.passes else 0
                slack = per_class[c.name]["pending"] if c.passes else 0
            up_rows.append((c.name, got, want))
            if not want <= got <= want + slack:
                self.fail(f"upstream of {c.name}: {got} requests, expected {want}"
                          + (f" (+{slack} in flight)" if slack else ""))

        workers = {k.rsplit(".", 2)[-2]: v for k, v in delta.items() if k.endswith(".downstream_cx_total")
                   and ".worker_" in k}
        if len([w for w, v in workers.items() if v > 0]) < 2:
            self.fail(f"not both workers served connections: {workers}")

        crashes = [ln for ln in log.splitlines() if any(p in ln for p in CRASH_PATTERNS)]
        if crashes:
            self.fail("Envoy's log shows the Wasm filter failing: " + " | ".join(crashes[:5]))

        rss = self.rss_verdict()
        hits = delta.get("jwt_guard.token_cache.hit", 0)
        misses = delta.get("jwt_guard.token_cache.miss", 0)
        if misses < per_class["valid_new"]["ok"]:
            self.fail(f"token cache misses {misses} < valid_new answers {per_class['valid_new']['ok']}")
        if hits <= 0:
            self.fail("no token-cache hit")
        seconds = float(total.group(2)) * {"s": 1, "m": 60, "ms": 1e-3}.get(total.group(3), 1) if total else 0
        return {
            "per_class": per_class, "answered": answered, "calls": calls, "pending": pending,
            "wrk_requests": wrk_requests, "socket_errors": socket_errors, "wrong": wrong, "s5xx": s5xx,
            "seconds": seconds, "probes": asdict(self.probes), "judged": judged_delta,
            "envoy_requests": envoy_requests, "counters": counter_rows, "upstream": up_rows,
            "cache": {"hit": hits, "miss": misses}, "workers": workers, "rss": rss,
            "fetch": {"ok": delta.get("jwt_guard.jwks.corp.fetch_ok", 0),
                      "failed": delta.get("jwt_guard.jwks.corp.fetch_failed", 0)},
        }

    def rss_verdict(self) -> dict[str, Any]:
        warm = self.args.warmup
        after = [s for s in self.samples if s.t >= warm]
        if len(after) < 6:
            self.fail(f"only {len(after)} RSS samples after the {warm} s warm-up: run longer")
            return {"warmup": warm}
        start = statistics.median(s.rss_mib for s in after[:3])
        end = statistics.median(s.rss_mib for s in after[-3:])
        limit = max(RSS_TOLERANCE_MIB, RSS_TOLERANCE_FRACTION * start)
        flat = end - start <= limit
        if not flat:
            self.fail(f"RSS grew {end - start:.1f} MiB after warm-up ({start:.1f} -> {end:.1f} MiB; "
                      f"limit {limit:.1f} MiB)")
        return {"warmup": warm, "first": self.samples[0].rss_mib, "start": start, "end": end,
                "max": max(s.rss_mib for s in after), "limit": limit, "flat": flat}


# --------------------------------------------------------------------------- report


def thinned(samples: list[Sample], warmup: int, rows: int = 20) -> list[Sample]:
    """About `rows` samples evenly spread, with the first, the last and the first after the warm-up."""
    if len(samples) <= rows:
        return samples
    step = len(samples) / (rows - 1)
    keep = {0, len(samples) - 1} | {round(i * step) for i in range(rows - 1)}
    keep |= {next((i for i, s in enumerate(samples) if s.t >= warmup), 0)}
    return [s for i, s in enumerate(samples) if i in keep]


def markdown(soak: Soak, result: dict[str, Any], info: dict[str, Any]) -> str:
    ok = not soak.failures
    lines = [
        "# Soak results",
        "",
        f"One `make soak` run ({info['date']}); written by `benches/soak.py` (see docs/benchmarks.md, *Soak*). "
        f"Verdict: **{'PASS' if ok else 'FAIL'}**.",
        "",
        "| | |",
        "|---|---|",
        f"| command | `{info['make']}` |",
        f"| machine | {info['nproc']} cores (`nproc`), {info['cpu_model']}, Linux {info['kernel']}; "
        f"load average {info['loadavg'][0]:.2f} at the start, {os.getloadavg()[0]:.2f} at the end (other work "
        "shares the cores: the rate is what was left for Envoy and wrk) |",
        f"| Envoy | {info['envoy']}, `--concurrency 2` (two workers, two Wasm VMs) |",
        f"| jwt-guard | `{info['wasm']}` ({info['wasm_bytes']:,} bytes) |",
        f"| load | {info['wrk']}, {soak.args.connections} connections (one per wrk thread), as fast as possible |",
    ]
    if result:
        rss = result["rss"]
        total = result["answered"] + result["probes"]["sent"]
        lines += [
            f"| duration | {result['seconds']:.1f} s of traffic |",
            f"| requests | **{total:,}** answered ({result['answered']:,} by wrk, {result['probes']['sent']} "
            f"rotation probes), {total / max(result['seconds'], 1):,.0f} req/s |",
            f"| wrong decisions | **{result['wrong']}** (every response checked: status, reason, upstream body, "
            f"token removed, dry-run header) |",
            f"| 5xx | **{result['s5xx']}**; socket errors and timeouts {result['socket_errors']} |",
            f"| jwt-guard's counters | allowed + dry_run + refused.* = {result['judged']:,}; Envoy's "
            f"`downstream_rq_total` {result['envoy_requests']:,} ({result['pending']} requests in flight when "
            "wrk stopped) |",
            f"| token cache | {result['cache']['hit']:,} hits, {result['cache']['miss']:,} misses |",
            "| connections per worker | " + ", ".join(f"{w} {n}" for w, n in sorted(result["workers"].items()))
            + f" (wrk's {soak.args.connections}, and one per probe) |",
            f"| IdP | {result['fetch']['ok']} fetches succeeded, {result['fetch']['failed']} failed; "
            f"{sum(1 for e in soak.events if e.what == 'rotation done')} rotations, "
            f"{sum(1 for e in soak.events if e.what == 'IdP down')} outages |",
        ]
        if "start" in rss:
            lines.append(f"| Envoy RSS | {rss['first']:.1f} MiB at the start of traffic; {rss['start']:.1f} MiB "
                         f"after the {rss['warmup']} s warm-up, **{rss['end']:.1f} MiB at the end** "
                         f"(max {rss['max']:.1f}); flat = growth ≤ {rss['limit']:.1f} MiB: "
                         f"{'yes' if rss['flat'] else 'NO'} |")
        lines += ["", "## Answers by class", "",
                  "| class | expected | sent | right | wrong | 5xx | reached the upstream |",
                  "|---|---|---:|---:|---:|---:|---:|"]
        ups = {name: got for name, got, _ in result["upstream"]}
        for c in soak.classes:
            r = result["per_class"][c.name]
            expect = f"{c.status} {c.reason}" if c.reason else "200 (upstream)"
            if c.name == "dry_run":
                expect = "200 (dry run: forged token)"
            lines.append(f"| `{c.name}` | {expect} | {r['ok'] + r['wrong'] + r['pending']:,} | {r['ok']:,} | {r['wrong']} | "
                         f"{r['s5xx']} | {ups.get(c.name, 0):,} |")
        p = result["probes"]
        lines.append(f"| `probe` (rotations) | 200 or 401 unknown_key | {p['sent']} | "
                     f"{p['accepted'] + p['unknown_key']} | {len(p['wrong'])} | 0 | {ups.get('probe', 0)} |")
        lines += ["", "## jwt-guard's counters", "", "| counter | increase | answers of its classes |",
                  "|---|---:|---:|"]
        for name, got, want in result["counters"]:
            lines.append(f"| `{name}` | {got:,} | {want:,} |")
    shown = thinned(soak.samples, soak.args.warmup)
    lines += ["", "## Envoy's memory (VmRSS) and the IdP", "",
              f"{len(shown)} of the {len(soak.samples)} samples (all of them in build/soak/results.json and on the "
              f"console); the warm-up ends at {soak.args.warmup} s.", "",
              "| t (s) | RSS MiB | requests | fetch ok / failed | IdP | rotating keys |",
              "|---:|---:|---:|---|---|---|"]
    for s in shown:
        lines.append(f"| {s.t:.0f} | {s.rss_mib:.1f} | {s.requests:,} | {s.fetch_ok} / {s.fetch_failed} | {s.idp} | "
                     f"{s.rotating} |")
    lines += ["", "## Events", "", "Seconds since wrk started.", "", "| t (s) | event |", "|---:|---|"]
    for e in soak.events:
        when = "setup" if e.t < 0 else f"{e.t:.1f}"
        lines.append(f"| {when} | {e.what}{': ' + e.detail if e.detail else ''} |")
    if soak.failures:
        lines += ["", "## Failures", ""] + [f"- {f}" for f in soak.failures]
    return "\n".join(lines) + "\n"


def parse_args() -> argparse.Namespace:
    env = lambda name, default: int(os.environ.get(name, default))  # noqa: E731
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=env("SOAK_SECONDS", 300),
                    help="seconds of traffic (env SOAK_SECONDS, default 300)")
    ap.add_argument("--connections", type=int, default=env("SOAK_CONNECTIONS", 6),
                    help="wrk threads, one connection each (env SOAK_CONNECTIONS, default 6)")
    ap.add_argument("--pool", type=int, default=env("SOAK_POOL", 12000),
                    help="valid tokens of the 'new token' class, split over the threads (env SOAK_POOL)")
    ap.add_argument("--mislabel", metavar="CLASS", default=os.environ.get("SOAK_MISLABEL", ""),
                    help="test the checks: expect the wrong answer for this class (the run must FAIL)")
    args = ap.parse_args()
    if args.seconds < 30:
        ap.error("--seconds must be at least 30 (a rotation and the RSS samples need the time)")
    if args.connections < 2:
        ap.error("--connections must be at least 2 (one per worker)")
    if args.pool < args.connections * 2000:
        ap.error("--pool must give each connection at least 2,000 tokens (two caches of 1,000 entries)")
    args.warmup = int(min(60, max(10, args.seconds / 5)))
    return args


def main() -> int:
    args = parse_args()
    if not WASM_PATH.exists():
        print(f"soak: {WASM_PATH} is missing: run `make build`", file=sys.stderr)
        return 1
    info = {"date": dt.datetime.now().strftime("%Y-%m-%d %H:%M"), "envoy": envoy_version(), "wrk": wrk_version(),
            "wasm": str(WASM_PATH.relative_to(REPO_ROOT)), "wasm_bytes": WASM_PATH.stat().st_size,
            "loadavg": os.getloadavg(), "make": f"make soak SOAK_SECONDS={args.seconds} "
                                                 f"SOAK_CONNECTIONS={args.connections}",
            **bench_report.machine()}
    print(f"soak: {args.seconds} s, {args.connections} connections, Envoy {info['envoy']} --concurrency 2, "
          f"load average {info['loadavg'][0]:.2f}", flush=True)
    soak = Soak(args)
    result: dict[str, Any] = {}
    try:
        result = soak.run()
    except KeyboardInterrupt:
        soak.fail("interrupted")
    except SystemExit as e:
        soak.fail(str(e))
    finally:
        soak.stop()
    SOAK_MD.write_text(markdown(soak, result, info))
    (OUT / "results.json").write_text(json.dumps({"info": info, "result": result, "failures": soak.failures,
                                                 "events": [asdict(e) for e in soak.events],
                                                 "samples": [asdict(s) for s in soak.samples]}, indent=1))
    if result:
        rss = result.get("rss", {})
        print(f"\nsoak: {result['answered'] + result['probes']['sent']:,} requests in {result['seconds']:.1f} s, "
              f"wrong decisions {result['wrong']}, 5xx {result['s5xx']}, "
              + (f"RSS {rss['start']:.1f} -> {rss['end']:.1f} MiB after warm-up" if "start" in rss else ""))
    print(f"soak: wrote {SOAK_MD.relative_to(REPO_ROOT)}")
    if soak.failures:
        print(f"soak: FAIL ({len(soak.failures)} checks)")
        return 1
    print("soak: PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
