#!/usr/bin/env python3
"""make compose-test: envoy/docker-compose.yml for real, with the images `make images` built.

  1. brings the stack up (Envoy with envoy/envoy.yaml and the built .wasm, echo upstream, JWKS
     server, clients), waits for Envoy's /ready and for jwt-guard to have fetched the keys;
  2. sends the demo's requests (scripts/demo.py) from containers: those that do not depend on the
     client's address from `client` (10.67.0.10, its own address on the compose network), those
     about addresses and countries from `lb` (in Envoy's network namespace: peer 127.0.0.1, the
     trusted proxy, as for `make demo`); then requests from clients at real peer addresses
     (`client` 10.67.0.10, `client-denied` 10.66.0.7, `client-outside` 198.18.66.10) to the
     source-address rules, including X-Forwarded-For that Envoy must ignore from them;
     asserts every status, reason, the address each request left from, what the upstream saw
     (method, path, headers) and, from the echo's log, that exactly the allowed requests reached
     it; one request goes through the port published on 127.0.0.1;
  3. stops the JWKS server: tokens keep working on the cached keys until max_stale_seconds, then
     get 401 keys_unavailable; starts it again: tokens work again. Prints the timeline;
  4. tears everything down (also on failure or Ctrl-C), printing the services' logs on failure.

    .venv/bin/python scripts/compose_test.py --envoy-image jwt-guard/envoy:local \\
        --demo-image jwt-guard/demo:latest

The compose command is `docker compose` when that works, else `docker-compose` (JWTG_COMPOSE
overrides, e.g. JWTG_COMPOSE=docker-compose). Exit status 0 only if every check passed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "scripts"))
sys.path.insert(0, str(REPO_ROOT / "tests" / "integration"))

import jwt  # noqa: E402

from demo import SHIPPED, demo_rows, reason_of  # noqa: E402
from harness import WASM_PATH, GEO_DB_PATH, request  # noqa: E402
from mint import claims, mint  # noqa: E402

COMPOSE_FILE = REPO_ROOT / "envoy" / "docker-compose.yml"
PROJECT = "jwtg-compose-test"
# Fixed addresses of envoy/docker-compose.yml.
ADDRESSES = {"client": "10.67.0.10", "client-denied": "10.66.0.7", "client-outside": "198.18.66.10",
             "lb": "127.0.0.1"}
# The demo's rows about the client's address or country: sent from lb (peer 127.0.0.1, the
# trusted proxy, as for make demo); every other row from client.
SOURCE_DEPENDENT = ("/internal", "/geo", "/devices")
STAT_PREFIX = "wasmcustom.jwt_guard.jwks.demo."


class Failed(Exception):
    pass


# ----------------------------------------------------------------------------- compose


def compose_command() -> list[str]:
    if os.environ.get("JWTG_COMPOSE"):
        return shlex.split(os.environ["JWTG_COMPOSE"])
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise Failed("neither `docker compose` nor `docker-compose` is installed")


class Compose:
    def __init__(self, env: dict[str, str]):
        self.base = compose_command() + ["-f", str(COMPOSE_FILE), "-p", PROJECT]
        self.env = {**os.environ, **env}
        self._ids: dict[str, str] = {}

    def run(self, *args: str, timeout: float = 180, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(self.base + list(args), env=self.env, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise Failed(f"{' '.join(self.base[:2])} {' '.join(args)} failed ({proc.returncode}):\n"
                         f"{proc.stdout}{proc.stderr}")
        return proc

    def container(self, service: str) -> str:
        if service not in self._ids:
            cid = self.run("ps", "-q", service).stdout.strip()
            if not cid:
                raise Failed(f"no container for service {service}")
            self._ids[service] = cid
        return self._ids[service]

    def running(self, service: str) -> bool:
        proc = subprocess.run(["docker", "inspect", "-f", "{{.State.Running}}", self.container(service)],
                              capture_output=True, text=True)
        return proc.stdout.strip() == "true"

    def exec(self, service: str, *args: str, stdin: str | None = None, timeout: float = 120
             ) -> subprocess.CompletedProcess:
        return subprocess.run(["docker", "exec", "-i", self.container(service), *args], input=stdin or "",
                              capture_output=True, text=True, timeout=timeout)

    def logs(self, service: str) -> str:
        proc = subprocess.run(["docker", "logs", self.container(service)], capture_output=True, text=True)
        return proc.stdout + proc.stderr

    def published_port(self, service: str, port: int) -> int:
        out = self.run("port", service, str(port)).stdout.strip()  # "127.0.0.1:49153"
        host, _, p = out.rpartition(":")
        if host != "127.0.0.1" or not p.isdigit():
            raise Failed(f"port {port} of {service} is published as {out!r}, not on 127.0.0.1")
        return int(p)


# ----------------------------------------------------------------------------- requests


@dataclass
class Check:
    what: str
    client: str
    path: str
    expect: tuple[int, str]
    token: str | None = None
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    # Headers the upstream must have seen with these values (None: must not have seen it).
    upstream: dict[str, str | None] = field(default_factory=dict)


def target(client: str) -> str:
    return "127.0.0.1:10000" if client == "lb" else "envoy:10000"


def send(compose: Compose, client: str, checks: list[Check], ids: list[int]) -> list[dict[str, Any]]:
    """Sends the checks from `client` in one `docker exec` (one connection each); each request
    carries x-demo-request: <its id> so the echo's log tells which reached the upstream."""
    reqs = []
    for n, c in zip(ids, checks, strict=True):
        headers = [[k, v] for k, v in c.headers.items()] + [["x-demo-request", str(n)]]
        if c.token is not None:
            headers.append(["authorization", f"Bearer {c.token}"])
        req: dict[str, Any] = {"method": c.method, "path": c.path, "headers": headers}
        if c.method in ("POST", "PUT"):
            req["body"] = "{}"
        reqs.append(req)
    proc = compose.exec(client, "jwtg-demo", "client", "--target", target(client), stdin=json.dumps(reqs))
    if proc.returncode != 0:
        raise Failed(f"jwtg-demo client in {client} failed ({proc.returncode}): {proc.stderr}")
    answers = json.loads(proc.stdout)
    if len(answers) != len(checks):
        raise Failed(f"{client}: {len(answers)} answers to {len(checks)} requests")
    return answers


def judge(c: Check, a: dict[str, Any]) -> list[str]:
    """What is wrong with answer `a` to check `c` (nothing: [])."""
    if "error" in a:
        return [f"no answer: {a['error']}"]
    problems = []
    local_ip = a["local"].rpartition(":")[0]
    if local_ip != ADDRESSES[c.client]:
        problems.append(f"sent from {local_ip}, not {ADDRESSES[c.client]}")
    body = a["body"].encode()
    try:
        got = (a["status"], reason_of(a["status"], body))
    except (ValueError, KeyError) as e:
        return [f"status {a['status']}, unreadable body {a['body'][:80]!r} ({e})"]
    if got != c.expect:
        problems.append(f"expected {c.expect[0]} {c.expect[1]}")
    if a["status"] == 200:
        echoed = json.loads(body)
        seen = echoed["headers"]
        if (echoed["method"], echoed["path"]) != (c.method, c.path):
            problems.append(f"upstream saw {echoed['method']} {echoed['path']}")
        # Envoy appends a peer it does not trust to X-Forwarded-For, so the upstream sees the
        # client's real address last; from lb (trusted) X-Forwarded-For goes on as it came.
        # No token goes upstream (forward: false) unless a check says otherwise.
        sent_xff = c.headers.get("X-Forwarded-For")
        if c.client == "lb":
            xff = sent_xff
        else:
            xff = f"{sent_xff},{ADDRESSES[c.client]}" if sent_xff else ADDRESSES[c.client]
        wanted: dict[str, str | None] = {"authorization": None, "x-forwarded-for": xff, **c.upstream}
        for name, value in wanted.items():
            if seen.get(name) != value:
                problems.append(f"upstream saw {name}: {seen.get(name)!r}, expected {value!r}")
        if "x-request-id" not in seen:
            problems.append("upstream saw no x-request-id: not through Envoy?")
    return problems


def identity(token: str | None) -> dict[str, str | None]:
    """The identity headers envoy.yaml's claim_to_headers sends upstream for an allowed request
    with this (verified) token: x-jwt-sub and x-jwt-roles (roles joined with ",")."""
    if token is None:
        return {"x-jwt-sub": None, "x-jwt-roles": None}
    payload = jwt.decode(token, options={"verify_signature": False})
    roles = payload.get("roles")
    return {"x-jwt-sub": payload.get("sub"), "x-jwt-roles": ",".join(roles) if roles else None}


def demo_checks() -> list[Check]:
    """The rows of `make demo`, each sent from the client whose situation matches the demo's."""
    out = []
    for r in demo_rows():
        client = "lb" if r.path.startswith(SOURCE_DEPENDENT) else "client"
        upstream: dict[str, str | None] = {}
        if r.path.startswith("/geo") and r.expect[0] == 200:
            upstream["x-geo-country"] = "GB"  # set by Envoy's geoip filter from the trusted XFF
        if r.expect[0] != 200:
            pass
        elif r.path.startswith("/healthz") or r.expect[1].startswith("(dry run"):
            # A disabled rule touches nothing; a dry run changes nothing but its header
            # (docs/configuration.md, *Dry run*): the token stays, and no identity headers are added.
            upstream["authorization"] = f"Bearer {r.token}"
            upstream.update(identity(None))
        else:
            upstream.update(identity(r.token))
        out.append(Check(r.what, client, r.path, r.expect, r.token, r.method, dict(r.headers), upstream))
    return out


def peer_checks() -> list[Check]:
    """Source-address rules against real peers: the address is the TCP peer's, and an
    X-Forwarded-For from a peer that is not a trusted proxy is ignored."""
    alice = mint(claims("alice", roles=["user"], scope="orders:read"))
    bound = mint(claims("dave", ip=ADDRESSES["client"]))
    xff = "X-Forwarded-For"
    return [
        Check("/internal from 10.67.0.10 (in 10/8)", "client", "/internal", (200, "-"), alice,
              upstream=identity(alice)),
        Check("/internal from 10.66.0.7 (10.66/16 denied)", "client-denied", "/internal", (403, "ip_denied"), alice),
        Check("/internal from 198.18.66.10 (not in 10/8)", "client-outside", "/internal",
              (403, "ip_not_allowed"), alice),
        Check("/internal from 198.18.66.10, says XFF 10.1.2.3 (ignored)", "client-outside", "/internal",
              (403, "ip_not_allowed"), alice, headers={xff: "10.1.2.3"}),
        Check("/internal from 10.66.0.7, says XFF 10.67.0.10 (ignored)", "client-denied", "/internal",
              (403, "ip_denied"), alice, headers={xff: "10.67.0.10"}),
        Check("/internal from 10.67.0.10, says XFF 10.66.0.7 (ignored)", "client", "/internal",
              (200, "-"), alice, headers={xff: "10.66.0.7"}, upstream=identity(alice)),
        Check("/devices, token bound to 10.67.0.10, from 10.67.0.10", "client", "/devices", (200, "-"), bound,
              upstream=identity(bound)),
        Check("/devices, token bound to 10.67.0.10, from 10.66.0.7", "client-denied", "/devices",
              (403, "ip_not_bound"), bound),
        Check("/devices, token bound to 10.67.0.10, from 198.18.66.10 saying XFF 10.67.0.10", "client-outside",
              "/devices", (403, "ip_not_bound"), bound, headers={xff: "10.67.0.10"}),
        Check("/geo from 10.67.0.10 (no country for it)", "client", "/geo", (403, "country_unknown"), alice),
        Check("/geo from 10.67.0.10, says XFF 81.2.69.160 (GB; ignored)", "client", "/geo",
              (403, "country_unknown"), alice, headers={xff: "81.2.69.160"}),
        Check("/geo from 10.67.0.10, sends x-geo-country: GB", "client", "/geo", (403, "country_unknown"), alice,
              headers={"x-geo-country": "GB"}),
        Check("/public from 10.67.0.10, sends x-geo-country: KP (removed)", "client", "/public/x", (200, "-"),
              headers={"x-geo-country": "KP"}, upstream={"x-geo-country": None}),
        Check("/public from 10.67.0.10, sends x-jwt-sub: root (removed)", "client", "/public/y", (200, "-"),
              headers={"x-jwt-sub": "root", "x-jwt-roles": "admin"}, upstream=identity(None)),
        Check("/orders as alice from 10.67.0.10, sends x-jwt-sub: root (replaced)", "client", "/orders/7",
              (200, "-"), alice, headers={"x-jwt-sub": "root"}, upstream=identity(alice)),
        Check("/geo via lb, XFF 89.160.20.112 (SE: not allowed)", "lb", "/geo", (403, "country_not_allowed"),
              alice, headers={xff: "89.160.20.112"}),
        Check("/internal via lb, XFF 10.1.2.3, 198.18.66.10 (rightmost untrusted)", "lb", "/internal",
              (403, "ip_not_allowed"), alice, headers={xff: "10.1.2.3, 198.18.66.10"}),
    ]


def run_checks(compose: Compose, checks: list[Check]) -> int:
    """Sends every check (grouped per client), prints the table; returns the number that failed."""
    by_client: dict[str, list[int]] = {}
    for i, c in enumerate(checks):
        by_client.setdefault(c.client, []).append(i)
    answers: list[dict[str, Any]] = [{}] * len(checks)
    for client, idx in by_client.items():
        for i, a in zip(idx, send(compose, client, [checks[i] for i in idx], [1000 + i for i in idx])):
            answers[i] = a
    bad = 0
    width = max(len(c.what) for c in checks) + 2
    print(f"{'client':<15} {'request':<{width}} status  reason")
    print(f"{'-' * 15} {'-' * width} ------  {'-' * 24}")
    for c, a in zip(checks, answers):
        problems = judge(c, a)
        bad += bool(problems)
        status = a.get("status", "-")
        reason = reason_of(a["status"], a["body"].encode()) if "status" in a else "-"
        note = f"   <-- {'; '.join(problems)}" if problems else ""
        print(f"{c.client:<15} {c.what:<{width}} {status!s:<6}  {reason}{note}")
    # Exactly the allowed requests reached the upstream (the echo logs one JSON line each).
    reached = set()
    for line in compose.logs("echo").splitlines():
        if line.startswith("{"):
            n = json.loads(line)["headers"].get("x-demo-request")
            if n is not None:
                reached.add(int(n))
    ids = {1000 + i: c for i, c in enumerate(checks)}
    allowed = {n for n, c in ids.items() if c.expect[0] == 200}
    if reached & set(ids) != allowed:
        bad += 1
        wrong = sorted((reached & set(ids)) ^ allowed)
        print(f"<-- the upstream's log differs from the allowed requests for: "
              f"{[ids[n].what for n in wrong]}")
    else:
        print(f"\nThe echo upstream's log shows exactly the {len(allowed)} allowed requests; "
              f"the {len(checks) - len(allowed)} refused ones never reached it.")
    return bad


# ----------------------------------------------------------------------------- waiting


def stats(compose: Compose) -> dict[str, int]:
    proc = compose.exec("lb", "jwtg-demo", "get", "http://127.0.0.1:9901/stats?filter=jwt_guard.jwks", timeout=20)
    if proc.returncode != 0:
        raise Failed(f"admin /stats: {proc.stderr.strip()}")
    out = {}
    for line in proc.stdout.splitlines():
        name, sep, value = line.rpartition(": ")
        if sep and value.strip().lstrip("-").isdigit():
            out[name.strip().removeprefix(STAT_PREFIX)] = int(value)
    return out


KEYS_PROBE = mint(claims("keys-probe", ttl=600, scope="orders:read"))


def wait_until_ready(compose: Compose, timeout: float = 90.0) -> float:
    start = time.monotonic()
    while True:
        if not compose.running("envoy"):
            raise Failed("the envoy container exited:\n" + compose.logs("envoy")[-4000:])
        ready = compose.exec("lb", "jwtg-demo", "get", "http://127.0.0.1:9901/ready", timeout=20).returncode == 0
        if ready and stats(compose).get("keys", 0) > 0 and probe(compose, KEYS_PROBE)[0] == 200:
            # One worker's VM took the keys; the other takes them within its next tick (0.5 s).
            time.sleep(1.0)
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise Failed(f"Envoy not ready with keys after {timeout:.0f} s:\n" + compose.logs("envoy")[-4000:])
        time.sleep(0.5)


# ----------------------------------------------------------------------------- JWKS server down


def remote_jwks_settings() -> dict[str, Any]:
    """The demo provider's remote_jwks from envoy/envoy.yaml (the jwt-guard JSON in it)."""
    text = SHIPPED.read_text()
    m = re.search(r"^( *)value: \|\n((?:\1  .*\n|\s*\n)+)", text, re.M)
    if not m:
        raise Failed(f"{SHIPPED}: no jwt-guard configuration block")
    return json.loads(m.group(2))["providers"]["demo"]["remote_jwks"]


def probe(compose: Compose, token: str) -> tuple[int, str]:
    a = send(compose, "client", [Check("probe", "client", "/orders/1", (200, "-"), token)], [0])[0]
    if "error" in a:
        raise Failed(f"probe: {a['error']}")
    return a["status"], reason_of(a["status"], a["body"].encode())


def jwks_down(compose: Compose) -> int:
    """Stops the JWKS server, follows a valid token until the cached keys are dropped, starts the
    server again; prints the timeline; returns the number of failed checks."""
    cfg = remote_jwks_settings()
    refresh, max_stale = cfg["refresh_seconds"], cfg["max_stale_seconds"]
    token = mint(claims("alice", ttl=600, scope="orders:read"))
    bad = 0
    before = stats(compose)
    print(f"\nJWKS server stopped (remote_jwks: refresh_seconds {refresh}, max_stale_seconds {max_stale}):")
    t0 = time.monotonic()  # the server may stop any time after this
    compose.run("stop", "-t", "5", "jwks")
    stop_took = time.monotonic() - t0
    print(f"{'t (s)':>6}  answer to a valid token     fetch_ok fetch_failed age_seconds")
    timeline = []
    deadline = t0 + max_stale + 10
    while time.monotonic() < deadline:
        t = time.monotonic() - t0
        status, reason = probe(compose, token)
        s = stats(compose)
        timeline.append((t, status, reason))
        print(f"{t:6.1f}  {status} {reason:<24} {s.get('fetch_ok', 0):8} {s.get('fetch_failed', 0):12} "
              f"{s.get('age_seconds', 0):11}")
        if status != 200:
            break
        time.sleep(1.0)
    # The last good fetch was at most refresh_seconds (plus a 0.5 s tick and the fetch) before the
    # server stopped, and keys are good for max_stale_seconds after it: within this many seconds
    # of t0 a valid token must pass.
    guaranteed = max_stale - refresh - 2
    early = [(t, st, r) for t, st, r in timeline if t < guaranteed and st != 200]
    if early:
        bad += 1
        print(f"<-- refused within {guaranteed} s of the stop, while the cached keys were good: {early}")
    last_t, last_status, last_reason = timeline[-1]
    if (last_status, last_reason) != (401, "keys_unavailable"):
        bad += 1
        print(f"<-- expected 401 keys_unavailable by {max_stale + 10} s, last answer {last_status} {last_reason}")
    elif last_t > max_stale + stop_took + 3:
        bad += 1
        print(f"<-- the keys were dropped only after {last_t:.1f} s (max_stale_seconds {max_stale})")
    after = stats(compose)
    if after.get("fetch_failed", 0) <= before.get("fetch_failed", 0):
        bad += 1
        print("<-- no failed fetch counted while the JWKS server was down")
    if "keys older than max_stale_seconds dropped" not in compose.logs("envoy"):
        bad += 1
        print("<-- Envoy's log has no 'keys older than max_stale_seconds dropped' line")
    else:
        print("Envoy logged: " + next(line.split("]", 3)[-1].strip() for line in compose.logs("envoy").splitlines()
                                      if "keys older than max_stale_seconds dropped" in line))
    # Back: the retry (backoff up to refresh_seconds) fetches the keys again.
    compose.run("start", "jwks")
    t1 = time.monotonic()
    while True:
        status, reason = probe(compose, token)
        if status == 200:
            print(f"JWKS server started again: a valid token is accepted after {time.monotonic() - t1:.1f} s "
                  f"(fetch_ok {stats(compose).get('fetch_ok', 0)})")
            break
        if time.monotonic() - t1 > refresh + 10:
            bad += 1
            print(f"<-- still {status} {reason} {refresh + 10} s after the JWKS server came back")
            break
        time.sleep(0.5)
    return bad


# ----------------------------------------------------------------------------- main


def through_published_port(compose: Compose) -> int:
    port = compose.published_port("envoy", 10000)
    pub = request(port, "/public/hello")
    refused = request(port, "/orders/1")
    ok = pub.status == 200 and refused.status == 401 and refused.json().get("reason") == "missing"
    peer = pub.json()["headers"].get("x-forwarded-for") if pub.status == 200 else "?"
    print(f"\nFrom the host through 127.0.0.1:{port} (published): /public {pub.status} (Envoy's peer: {peer}, "
          f"Docker's gateway), /orders without a token {refused.status} "
          f"{refused.json().get('reason') if refused.status == 401 else ''}"
          + ("" if ok else "   <-- expected 200 and 401 missing"))
    return 0 if ok else 1


def _stop_on_signal(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--envoy-image", required=True)
    ap.add_argument("--demo-image", required=True)
    ap.add_argument("--keep", action="store_true", help="leave the stack running (tear down: docker compose "
                    f"-p {PROJECT} -f envoy/docker-compose.yml down)")
    ap.add_argument("--down-only", action="store_true",
                    help="only tear the stack down (make compose-test's trap: whatever the test run left)")
    args = ap.parse_args()
    env = {"JWTG_ENVOY_IMAGE": args.envoy_image, "JWTG_DEMO_IMAGE": args.demo_image, "JWTG_HTTP_PORT": "0"}
    if args.down_only:
        Compose(env).run("down", "-v", "--remove-orphans", "-t", "5", check=False)
        return 0
    for path in (WASM_PATH, GEO_DB_PATH):
        if not path.exists():
            print(f"{path} is missing: run `make build setup` (make compose-test does)", file=sys.stderr)
            return 1
    signal.signal(signal.SIGTERM, _stop_on_signal)
    signal.signal(signal.SIGHUP, _stop_on_signal)
    started = time.monotonic()
    bad = 0
    compose = None
    ok = False
    try:
        compose = Compose(env)
        print(f"compose: {' '.join(compose.base[:-4])}; images {args.envoy_image}, {args.demo_image}")
        compose.run("down", "-v", "--remove-orphans", "-t", "5")  # what an interrupted run left
        compose.run("up", "-d", "--no-build")
        waited = wait_until_ready(compose)
        print(f"stack up; Envoy ready and the keys fetched from the JWKS server after {waited:.1f} s\n")
        checks = demo_checks() + peer_checks()
        bad += run_checks(compose, checks)
        bad += through_published_port(compose)
        bad += jwks_down(compose)
        ok = bad == 0
    except Failed as e:
        print(f"\ncompose-test: {e}", file=sys.stderr)
        bad += 1
    finally:
        if compose is not None:
            if not ok:
                logs = compose.run("logs", "--no-color", "--tail", "40", check=False)
                print(f"\n--- service logs (last lines) ---\n{logs.stdout}{logs.stderr}", file=sys.stderr)
            if args.keep:
                print(f"left running: docker compose -p {PROJECT} -f envoy/docker-compose.yml down")
            else:
                compose.run("down", "-v", "--remove-orphans", "-t", "5", check=False)
    took = time.monotonic() - started
    print(f"\ncompose-test: {'passed' if ok else f'FAILED ({bad} failed checks)'} in {took:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
