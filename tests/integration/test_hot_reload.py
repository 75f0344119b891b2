"""Hot reload under load (issue #11 item 3): Envoy takes jwt-guard's filter configuration from a
file (ECDS, `config_discovery` with a `path_config_source` whose directory Envoy watches), and
the file is replaced atomically (written beside it, then renamed over it) while clients keep
sending requests — the way a control plane that writes files, or Istio's WasmPlugin (ECDS over
xDS), changes a running filter.

The new configuration changes the policy (the admin rule wants role `ops` instead of `admin`, a
new anonymous `/beta` rule) and rotates the inline key (key A retired, key B added; key C in
both). Each request kind has one answer under the old configuration and one under the new;
every answer must be one of the two, no request may fail or get a 5xx, each connection must
see the old answers then the new ones and never the old after the new, and every request sent
some time after the swap must get the new answer. Then two bad updates arrive under the same
load — a configuration jwt-guard refuses and a .wasm that is not a module — and Envoy must
reject both and keep the new configuration serving, with no request misjudged.
"""

from __future__ import annotations

import http.client
import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from harness import WASM_TYPE, Envoy, bootstrap, listener, native_filter, runtime, wasm_filter
from tokens import AUDIENCE, ISSUER

SWAP_SETTLE_SECONDS = 2.0  # a request sent this long after the swap must get the new answer


class Key:
    def __init__(self, kid: str) -> None:
        self.kid = kid
        self.private = ec.generate_private_key(ec.SECP256R1())
        self.jwk = {**ECAlgorithm.to_jwk(self.private.public_key(), as_dict=True), "kid": kid, "alg": "ES256"}

    def mint(self, kid: str | None = None, **claims: Any) -> str:
        now = int(time.time())
        payload = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 600, **claims}
        return jwt.encode(payload, self.private, algorithm="ES256", headers={"kid": kid or self.kid})


def guard_config(keys: list[Key], admin_role: str, beta: bool) -> dict:
    rules: list[dict] = [{"match": {"prefix": "/public"}, "allow_anonymous": True},
                         {"match": {"prefix": "/admin"}, "provider": "corp", "roles": {"any": [admin_role]}}]
    if beta:
        rules.append({"match": {"prefix": "/beta"}, "allow_anonymous": True})
    rules.append({"match": {"prefix": "/"}, "provider": "corp"})
    return {"realm": "api", "rules": rules, "providers": {"corp": {
        "issuer": ISSUER, "audiences": [AUDIENCE], "jwks": {"keys": [k.jwk for k in keys]}}}}


@dataclass(frozen=True)
class Kind:
    """A request and its answer under the old and the new configuration: (status, reason)."""

    name: str
    path: str
    token: str | None
    old: tuple[int, str | None]
    new: tuple[int, str | None]


@dataclass
class Answer:
    kind: str
    sent: float  # monotonic seconds
    status: int
    verdict: str  # old | new | both | wrong: <what>


@dataclass
class Client:
    """One thread sending the kinds in turn, on one kept-alive connection or a new one each time."""

    port: int
    kinds: list[Kind]
    keep_alive: bool
    answers: list[Answer] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def run(self, stop: threading.Event) -> None:
        conn = None
        i = 0
        while not stop.is_set():
            kind = self.kinds[i % len(self.kinds)]
            i += 1
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            headers = {"Authorization": f"Bearer {kind.token}"} if kind.token else {}
            sent = time.monotonic()
            try:
                conn.request("GET", kind.path, headers=headers)
                resp = conn.getresponse()
                body = resp.read()
            except (OSError, http.client.HTTPException) as e:
                self.errors.append(f"{kind.name}: {type(e).__name__}: {e}")
                conn.close()
                conn = None
                continue
            self.answers.append(Answer(kind.name, sent, resp.status, judge(kind, resp.status, body)))
            if not self.keep_alive or resp.getheader("connection", "").lower() == "close":
                conn.close()
                conn = None
        if conn is not None:
            conn.close()


def judge(kind: Kind, status: int, body: bytes) -> str:
    def matches(expected: tuple[int, str | None]) -> bool:
        want_status, reason = expected
        if status != want_status:
            return False
        if status == 200:
            return set(json.loads(body)) == {"method", "path", "headers"}  # the echo upstream
        return json.loads(body).get("reason") == reason

    old, new = matches(kind.old), matches(kind.new)
    if old and new:
        return "both"
    if old or new:
        return "old" if old else "new"
    return f"wrong: {status} {body[:120]!r}"


class EcdsFile:
    """The ECDS resource file Envoy watches for the HTTP filter `name`; `swap` writes the next
    version beside it and renames it over the old one (atomic: Envoy never reads half a file)."""

    def __init__(self, directory: Path, name: str = "jwt_guard") -> None:
        self.dir = directory
        self.name = name
        self.path = directory / f"{name}.json"
        self.version = 0
        self.type_url = WASM_TYPE

    def swap(self, http_filter: dict) -> None:
        """`http_filter`: an http_filters entry (harness.wasm_filter); its typed_config is used."""
        self.version += 1
        # The filter's type: the Wasm filter, or the dynamic module under JWTG_RUNTIME=native.
        self.type_url = http_filter["typed_config"]["@type"]
        doc = {"version_info": str(self.version), "resources": [{
            "@type": "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig",
            "name": self.name, "typed_config": http_filter["typed_config"]}]}
        tmp = self.dir / ".next.json"
        tmp.write_text(json.dumps(doc))
        os.replace(tmp, self.path)

    def filter(self) -> dict:
        """The HCM's http_filters entry: the filter's configuration from this file."""
        return {"name": self.name, "config_discovery": {
            "config_source": {"path_config_source": {"path": str(self.path), "watched_directory": {"path": str(self.dir)}},
                              "resource_api_version": "V3"},
            "type_urls": [self.type_url]}}

    def bootstrap(self, upstream_port: int, **listener_fields: Any) -> dict:
        """A bootstrap with one listener `main` whose only filter before the router is this one."""
        lst = listener("main", 0, [self.filter()])
        lst.update(listener_fields)
        config = bootstrap([lst], upstream_port)
        config["node"] = {"id": "jwt-guard-test", "cluster": "jwt-guard-test"}  # ECDS needs a node
        return config


def ecds_stat(envoy: Envoy, name: str, filter_name: str = "jwt_guard") -> int:
    prefix = f"extension_config_discovery.http_filter.{filter_name}."
    return envoy.stats("^" + prefix.replace(".", r"\.")).get(prefix + name, 0)


@pytest.fixture
def reloadable(request, upstream, tmp_path):
    ecds = EcdsFile(tmp_path)
    a, b, c = Key("a"), Key("b"), Key("c")
    old = guard_config([a, c], admin_role="admin", beta=False)
    new = guard_config([b, c], admin_role="ops", beta=True)
    ecds.swap(wasm_filter(old))
    # Kept-alive connections spread evenly over both workers (each has its own VM to switch).
    config = ecds.bootstrap(upstream.port, connection_balance_config={"exact_balance": {}})
    envoy = Envoy(config, name="hot-reload", concurrency=2)
    request.addfinalizer(envoy.cleanup)
    envoy.start()
    kinds = [
        Kind("key_a", "/orders", a.mint(), (200, None), (401, "unknown_key")),
        Kind("key_b", "/orders", b.mint(), (401, "unknown_key"), (200, None)),
        Kind("admin_role_admin", "/admin", c.mint(roles=["admin"]), (200, None), (403, "missing_role")),
        Kind("admin_role_ops", "/admin", c.mint(roles=["ops"]), (403, "missing_role"), (200, None)),
        Kind("beta_anonymous", "/beta", None, (401, "missing"), (200, None)),
        Kind("key_c", "/orders", c.mint(), (200, None), (200, None)),
        Kind("public", "/public/x", None, (200, None), (200, None)),
        Kind("forged", "/orders", a.mint(kid="c"), (401, "bad_signature"), (401, "bad_signature")),
    ]
    return envoy, ecds, old, new, kinds


def test_a_new_policy_and_key_apply_under_load_and_bad_updates_are_rejected(reloadable, upstream, tmp_path):
    envoy, ecds, old, new, kinds = reloadable
    port = envoy.listener_ports()["main"]
    # Each client starts at another kind, so every kind is in flight at any moment.
    clients = [Client(port, kinds[i * 2:] + kinds[:i * 2], keep_alive=True) for i in range(4)]
    clients.append(Client(port, kinds[1:] + kinds[:1], keep_alive=False))
    stop = threading.Event()
    threads = [threading.Thread(target=c.run, args=(stop,), daemon=True) for c in clients]
    up_before = upstream.count
    for t in threads:
        t.start()
    try:
        time.sleep(1.5)
        reloads = ecds_stat(envoy, "config_reload")
        swapped = time.monotonic()
        ecds.swap(wasm_filter(new))
        deadline = time.monotonic() + 10
        while ecds_stat(envoy, "config_reload") == reloads:
            assert time.monotonic() < deadline, "Envoy did not load the new configuration in 10 s"
            time.sleep(0.05)
        time.sleep(SWAP_SETTLE_SECONDS + 1.5)
        # Two bad updates under load: refused by jwt-guard's on_configure, and not a module.
        bad_wasm = tmp_path / "not.wasm"
        bad_wasm.write_bytes(b"\0asm\x01\0\0\0not a module")
        rejected_from = time.monotonic()
        fails = ecds_stat(envoy, "config_fail")
        ecds.swap(wasm_filter({**new, "rules": [{"match": {"prefix": "/"}, "provider": "nobody"}]}))
        deadline = time.monotonic() + 10
        while ecds_stat(envoy, "config_fail") == fails:
            assert time.monotonic() < deadline, "the refused configuration was not rejected in 10 s"
            time.sleep(0.05)
        time.sleep(1.0)
        if runtime() == "native":
            # The module's counterpart of a broken .wasm: a library that is not there.
            broken = native_filter(new)
            broken["typed_config"]["dynamic_module_config"]["name"] = "jwt_guard_not_built"
            ecds.swap(broken)
        else:
            ecds.swap(wasm_filter(new, bad_wasm))
        deadline = time.monotonic() + 10
        while ecds_stat(envoy, "config_fail") == fails + 1:
            assert time.monotonic() < deadline, "the bad .wasm was not rejected in 10 s"
            time.sleep(0.05)
        time.sleep(1.5)
    finally:
        stop.set()
        for t in threads:
            t.join(15)

    answers = [a for c in clients for a in c.answers]
    olds = [a.sent - swapped for a in answers if a.verdict == "old"]
    news = [a.sent - swapped for a in answers if a.verdict == "new"]
    print(f"hot reload: {len(answers)} answers; last old answer sent {max(olds):+.3f} s from the swap, "
          f"first new {min(news):+.3f} s")
    errors = [e for c in clients for e in c.errors]
    wrong = [a for a in answers if a.verdict.startswith("wrong")]
    assert not errors, f"requests failed (dropped): {errors[:10]}"
    assert not wrong, f"{len(wrong)} answers neither the old nor the new configuration's: {wrong[:10]}"
    assert not [a for a in answers if a.status >= 500]
    # Before the swap, only old answers; some time after it, only new ones.
    assert not [a for a in answers if a.verdict == "new" and a.sent < swapped], "a new answer before the swap"
    late_old = [a for a in answers if a.verdict == "old" and a.sent >= swapped + SWAP_SETTLE_SECONDS]
    assert not late_old, f"old answers {SWAP_SETTLE_SECONDS} s after the swap: {late_old[:5]}"
    # Per connection: old, then new, never old again (a connection stays on one worker).
    for c in clients[:4]:
        verdicts = [a.verdict for a in c.answers if a.verdict in ("old", "new")]
        first_new = verdicts.index("new")
        assert "old" not in verdicts[first_new:], verdicts
    # Each kind was judged both ways, and many requests were made across the reloads.
    for kind in kinds:
        seen = {a.verdict for a in answers if a.kind == kind.name}
        assert seen == ({"both"} if kind.old == kind.new else {"old", "new"}), (kind.name, seen)
    after_swap = [a for a in answers if a.sent >= swapped]
    assert len([a for a in answers if a.sent < swapped]) > 20 and len(after_swap) > 100, len(answers)
    # The bad updates changed nothing: the new configuration answered throughout.
    assert all(a.verdict in ("new", "both") for a in answers if a.sent >= rejected_from)
    assert ecds_stat(envoy, "config_fail") == 2
    assert ecds_stat(envoy, "update_rejected") == 2
    if runtime() == "native":
        assert envoy.wait_for_log("Filesystem config update rejected: Failed to create filter config: "
                                  "Failed to initialize dynamic module")
        assert envoy.wait_for_log("libjwt_guard_not_built.so not found")
    else:
        assert envoy.wait_for_log("Filesystem config update rejected: Unable to create Wasm plugin jwt_guard")
    log = envoy.log()
    assert "jwt-guard: invalid configuration: rules[0].provider: unknown provider" in log
    assert "Function: proxy_on_" not in log and "panicked" not in log, "a VM failed while serving"
    # Exactly the 200s reached the upstream, and jwt-guard judged every request Envoy received.
    assert upstream.count - up_before == len([a for a in answers if a.status == 200])
    stats = envoy.stats("jwt_guard|downstream_rq_total")
    judged = stats["wasmcustom.jwt_guard.allowed"] + sum(
        v for k, v in stats.items() if k.startswith("wasmcustom.jwt_guard.refused."))
    assert judged == stats["http.main.downstream_rq_total"] == len(answers)
    # Both workers (both VMs) served kept-alive connections through the swap.
    per_worker = envoy.stats(r"worker_\d+\.downstream_cx_total$")
    assert len(per_worker) == 2 and min(per_worker.values()) >= 2, per_worker
