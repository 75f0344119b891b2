#!/usr/bin/env python3
"""make demo: start the real Envoy with envoy/envoy.yaml (jwt-guard loaded from
target/wasm32-wasip1/release/jwt_guard.wasm), the echo upstream and the demo JWKS server (the
public half of the DEMO ONLY key, envoy/demo-keys/demo-jwks.json, which jwt-guard fetches), send
real requests with tokens minted from the DEMO ONLY key, print what Envoy answered, then stop
everything.

    .venv/bin/python scripts/demo.py              # the shipped ports: 10000, admin 9901, upstream 10001,
                                                  # JWKS 10002
    .venv/bin/python scripts/demo.py --free-ports # ports Envoy, the upstream and the JWKS server pick
                                                  # (port 0, read back)
    .venv/bin/python scripts/demo.py --check      # exit 1 unless every answer is the expected one

Exit status: 0 after printing the table (with --check: only if every row is as expected),
1 if Envoy, the upstream or the JWKS server did not start, or the keys were not fetched.
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "scripts"))
sys.path.insert(0, str(REPO_ROOT / "tests" / "integration"))

from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

from harness import WASM_PATH, Envoy, EnvoyStartError, EchoUpstream, for_this_envoy, for_this_runtime, request  # noqa: E402
from jwks_server import JwksServer  # noqa: E402
from mint import claims, dpop_proof, jwk_thumbprint, mint, public_jwk  # noqa: E402

SHIPPED = REPO_ROOT / "envoy" / "envoy.yaml"
DEMO_JWKS = REPO_ROOT / "envoy" / "demo-keys" / "demo-jwks.json"
LISTEN, ADMIN, UPSTREAM, JWKS = 10000, 9901, 10001, 10002
# The gauge of keys in force for the demo provider (remote_jwks), at Envoy's admin /stats.
KEYS_GAUGE = "wasmcustom.jwt_guard.jwks.demo.keys"


@dataclass
class Row:
    what: str
    path: str
    expect: tuple[int, str]
    token: str | None = None
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    # Request headers that must not reach the upstream (checked on a 200 in the echoed request).
    gone: tuple[str, ...] = ()


def b64(obj: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def demo_rows() -> list[Row]:
    now = int(time.time())
    alice = mint(claims("alice", roles=["user"], scope="orders:read"))
    bob = mint(claims("bob", roles=["admin"], email_verified=True, scope="orders:read orders:write"))
    head, _, sig = alice.split(".")
    tampered = f"{head}.{b64(claims('alice', roles=['admin'], scope='orders:read'))}.{sig}"  # role edited
    rogue = ec.generate_private_key(ec.SECP256R1())
    return [
        Row("/public, no token (anonymous rule)", "/public/hello", (200, "-")),
        Row("/healthz, garbage token (disabled rule)", "/healthz", (200, "-"), "not-even-a-jwt"),
        Row("/orders, valid token", "/orders/42", (200, "-"), alice),
        Row("/orders, no token", "/orders/42", (401, "missing")),
        Row("/orders, 'Bearer not-a-jwt'", "/orders/42", (401, "malformed"), "not-a-jwt"),
        Row("/orders, alg none", "/orders/42", (401, "unsupported_algorithm"),
            f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims())}.c2ln"),
        Row("/orders, unknown kid", "/orders/42", (401, "unknown_key"), mint(claims(), kid="rotated-away")),
        Row("/orders, signed by another key", "/orders/42", (401, "bad_signature"), mint(claims(), key=rogue)),
        Row("/orders, claims edited after signing", "/orders/42", (401, "bad_signature"), tampered),
        Row("/orders, expired 10 min ago", "/orders/42", (401, "expired"),
            mint(claims(iat=now - 1200, exp=now - 600))),
        Row("/orders, nbf in 10 min", "/orders/42", (401, "not_yet_valid"), mint(claims(nbf=now + 600))),
        Row("/orders, iat in 10 min", "/orders/42", (401, "issued_in_future"),
            mint(claims(iat=now + 600, exp=now + 900))),
        Row("/orders, no exp", "/orders/42", (401, "missing_expiration"), mint(claims(exp=None))),
        Row("/orders, other issuer", "/orders/42", (401, "bad_issuer"), mint(claims(iss="https://evil.example"))),
        Row("/orders, other audience", "/orders/42", (401, "bad_audience"), mint(claims(aud="billing"))),
        Row("/orders, 2-day token (max 1 day)", "/orders/42", (401, "lifetime_exceeded"),
            mint(claims(iat=now, exp=now + 2 * 86400))),
        Row("/orders, 9 KiB token", "/orders/42", (401, "too_large"), mint(claims(pad="x" * 9000))),
        Row("POST /orders, no orders:write scope", "/orders", (403, "missing_scope"), alice, "POST"),
        Row("POST /orders, scope orders:write", "/orders", (200, "-"), bob, "POST"),
        Row("PATCH /orders, no orders:write scope", "/orders/42", (403, "missing_scope"), alice, "PATCH"),
        Row("/admin, roles [user]", "/admin", (403, "missing_role"), alice),
        Row("/admin, roles [admin], email not verified", "/admin", (403, "claim_mismatch"),
            mint(claims("carol", roles=["admin"], email_verified=False))),
        Row("/admin, roles [admin], email verified", "/admin", (200, "-"), bob),
        Row("/internal from 127.0.0.1", "/internal", (403, "ip_not_allowed"), alice),
        Row("/internal, trusted proxy says 10.1.2.3", "/internal", (200, "-"), alice,
            headers={"X-Forwarded-For": "10.1.2.3"}),
        Row("/internal, spoofed 10.1.2.3 left of the proxy's entry", "/internal", (403, "ip_not_allowed"), alice,
            headers={"X-Forwarded-For": "10.1.2.3, 192.0.2.50"}),
        Row("/internal, trusted proxy says 10.66.0.7 (denied)", "/internal", (403, "ip_denied"), alice,
            headers={"X-Forwarded-For": "10.66.0.7"}),
        Row("/geo, trusted proxy says 81.2.69.160 (GB)", "/geo", (200, "-"), alice, headers={"X-Forwarded-For": "81.2.69.160"}),
        Row("/geo, trusted proxy says 216.160.83.56 (US)", "/geo", (403, "country_not_allowed"), alice,
            headers={"X-Forwarded-For": "216.160.83.56"}),
        Row("/geo, trusted proxy says 175.16.199.1 (CN)", "/geo", (403, "country_denied"), alice,
            headers={"X-Forwarded-For": "175.16.199.1"}),
        Row("/geo from 127.0.0.1, client sends x-geo-country: GB", "/geo", (403, "country_unknown"), alice,
            headers={"x-geo-country": "GB"}),
        Row("/devices, token bound to 10.1.2.3, proxy says 10.1.2.3", "/devices", (200, "-"),
            mint(claims("carol", ip="10.1.2.3")), headers={"X-Forwarded-For": "10.1.2.3"}),
        Row("/devices, token bound to 10.1.2.3, proxy says 10.7.7.7", "/devices", (403, "ip_not_bound"),
            mint(claims("carol", ip="10.1.2.3")), headers={"X-Forwarded-For": "10.7.7.7"}),
        Row("/beta (dry run), roles [user]", "/beta", (200, "(dry run: upstream told '403 missing_role')"),
            alice),
        Row("/unknown (no rule matches)", "/unknown", (403, "no_matching_rule"), alice),
    ]


def dpop_rows(port: int) -> list[Row]:
    """DPoP (RFC 9449) on the demo provider ("dpop": {}): a token bound to alice's client key
    (cnf.jkt), presented as `Authorization: DPoP` with a proof signed by that key for this very
    request; the same proof again; the token stolen and sent as a bearer token; the stolen token
    with a proof from the thief's own key. Proofs name the URL the request goes to (htu), so
    the port is needed. In this order: the replay row repeats the first row's proof."""
    client, thief = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    bound = mint(claims("alice", scope="orders:read", cnf={"jkt": jwk_thumbprint(public_jwk(client))}))
    url = f"http://127.0.0.1:{port}/orders/42"
    proof = dpop_proof(client, "GET", url, bound)
    gone = ("authorization", "dpop")
    return [
        Row("/orders, DPoP-bound token + its proof", "/orders/42", (200, "-"),
            headers={"Authorization": f"DPoP {bound}", "DPoP": proof}, gone=gone),
        Row("/orders, the same DPoP proof again (replay)", "/orders/42", (401, "dpop_proof_replayed"),
            headers={"Authorization": f"DPoP {bound}", "DPoP": proof}),
        Row("/orders, DPoP-bound token stolen, sent as Bearer", "/orders/42", (401, "dpop_bound_as_bearer"), bound),
        Row("/orders, stolen DPoP token + the thief's own proof", "/orders/42", (401, "dpop_key_mismatch"),
            headers={"Authorization": f"DPoP {bound}", "DPoP": dpop_proof(thief, "GET", url, bound)}),
        Row("/orders, DPoP proof made for another URL", "/orders/42", (401, "dpop_proof_mismatch"),
            headers={"Authorization": f"DPoP {bound}",
                     "DPoP": dpop_proof(client, "GET", f"http://127.0.0.1:{port}/admin", bound)}),
    ]


def reason_of(status: int, body: bytes) -> str:
    """The reason column: the JSON reason of a refusal, "-" for an answer from the upstream, or
    what a dry-run rule told the upstream (header x-jwt-guard-dry-run, echoed back)."""
    if status == 200:
        dry_run = json.loads(body)["headers"].get("x-jwt-guard-dry-run")
        return f"(dry run: upstream told {dry_run!r})" if dry_run else "-"
    if status >= 400:
        try:
            return json.loads(body).get("reason", "?")
        except ValueError:
            return f"(non-JSON body: {body[:40]!r})"
    return "-"


def shipped_config_on(workdir: Path, listen: int, admin: int, upstream: int, jwks: int) -> Path:
    """The shipped envoy.yaml with its four ports replaced (and nothing else, but for an older
    Envoy its older spelling, see harness.for_this_envoy). 0 lets Envoy pick the listener or
    admin port itself."""
    text = for_this_envoy(SHIPPED.read_text())
    for old, new in ((LISTEN, listen), (ADMIN, admin), (UPSTREAM, upstream), (JWKS, jwks)):
        needle = f"port_value: {old} "
        assert text.count(needle) == 1, f"{SHIPPED}: expected one '{needle}'"
        text = text.replace(needle, f"port_value: {new} ")
    # JWTG_RUNTIME=native: the same file with the dynamic module in place of the Wasm filter.
    text = for_this_runtime(text)
    path = workdir / "envoy.yaml"
    path.write_text(text)
    return path


def wait_for_keys(port: int, timeout: float = 15.0) -> bool:
    """Whether a valid demo token is accepted on `port` within `timeout`: the demo provider's
    keys were fetched from the JWKS server and the worker's VM has taken them (until then,
    tokens get 401 keys_unavailable). The probe is one GET /orders/keys-probe."""
    token = mint(claims("keys-probe", scope="orders:read"))
    deadline = time.monotonic() + timeout
    while True:
        resp = request(port, "/orders/keys-probe", headers={"Authorization": f"Bearer {token}"})
        if resp.status == 200:
            return True
        if resp.status != 401 or time.monotonic() > deadline:
            return False
        time.sleep(0.1)


def start_jwks_server(port: int) -> JwksServer:
    return JwksServer(json.loads(DEMO_JWKS.read_text()), port=port).start()


def run(listen: int, admin: int, upstream_port: int, jwks_port: int, free_ports: bool, check: bool) -> int:
    """With free_ports, every port is 0: the upstream and the JWKS server bind their own, Envoy
    binds the listener's and admin's, and the real ports are read back, so nothing can race for
    a port."""
    if not WASM_PATH.exists():
        print(f"{WASM_PATH} is missing: run `make build` (make demo does)", file=sys.stderr)
        return 1
    workdir = Path(tempfile.mkdtemp(prefix="jwtg-demo-"))
    try:
        upstream = EchoUpstream(port=upstream_port).start()
    except OSError as e:
        print(f"cannot start the echo upstream on 127.0.0.1:{upstream_port}: {e} (is `make run` running?)",
              file=sys.stderr)
        return 1
    try:
        idp = start_jwks_server(jwks_port)
    except OSError as e:
        upstream.stop()
        print(f"cannot start the JWKS server on 127.0.0.1:{jwks_port}: {e} (is `make run` running?)",
              file=sys.stderr)
        return 1
    config = shipped_config_on(workdir, listen, admin, upstream.port, idp.port)
    envoy = Envoy(config, admin_port=admin or None, workdir=workdir, name="demo")
    try:
        try:
            envoy.start(timeout=30, cwd=REPO_ROOT)
        except EnvoyStartError as e:
            print(f"Envoy did not start with {config}:\n{e}", file=sys.stderr)
            return 1
        if free_ports:
            listen = envoy.listener_ports()["ingress"]
        if not wait_for_keys(listen):
            print(f"jwt-guard did not fetch the demo keys from the JWKS server (127.0.0.1:{idp.port}):\n"
                  f"{envoy.log_tail(20)}", file=sys.stderr)
            return 1
        rows = demo_rows() + dpop_rows(listen)
        print(f"jwt-guard demo: real Envoy ({SHIPPED.relative_to(REPO_ROOT)}, "
              f"port {listen}) + echo upstream; {WASM_PATH.name} {WASM_PATH.stat().st_size // 1024} KiB\n"
              f"keys: {envoy.stats('jwt_guard.jwks').get(KEYS_GAUGE, 0)}, fetched by jwt-guard from the demo JWKS "
              f"server (requests it has seen: {idp.count()})\n")
        width = max(len(r.what) for r in rows) + 2
        print(f"{'request':<{width}} status  reason")
        print(f"{'-' * width} ------  {'-' * 24}")
        bad = 0
        for r in rows:
            headers = dict(r.headers)
            if r.token is not None:
                headers["Authorization"] = f"Bearer {r.token}"
            before = upstream.count
            resp = request(listen, r.path, method=r.method, headers=headers,
                           body=b"{}" if r.method in ("POST", "PUT") else None)
            reason = reason_of(resp.status, resp.body)
            reached = upstream.count > before
            leaked = [h for h in r.gone if resp.status == 200 and h in json.loads(resp.body)["headers"]]
            ok = (resp.status, reason) == r.expect and reached == (resp.status == 200) and not leaked
            bad += not ok
            note = "" if ok else f"   <-- expected {r.expect[0]} {r.expect[1]}" + (
                f", upstream got {', '.join(leaked)}" if leaked else "")
            print(f"{r.what:<{width}} {resp.status:<6}  {reason}{note}")
        print(f"\n{len(rows) - bad}/{len(rows)} answers as expected; refused requests never reached the upstream."
              if bad == 0 else f"\n{bad} of {len(rows)} answers differ from the expected ones (marked <--).")
        print("Mint your own token (make cli builds the tool): target/cli/jwt-guard token "
              "--key envoy/demo-keys/demo-es256.key.pem --kid demo-es256 --iss https://idp.example.com "
              "--aud orders --sub alice --claim roles='[\"admin\"]' --claim email_verified=true\n"
              "DPoP by hand (token --dpop-key, dpop --key): README.md, section DPoP-bound tokens\n"
              "Run Envoy yourself: make run")
        return 1 if (check and bad) else 0
    finally:
        envoy.cleanup()
        upstream.stop()
        idp.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--free-ports", action="store_true",
                    help="let Envoy, the upstream and the JWKS server bind free ports instead of "
                         "10000/9901/10001/10002")
    ap.add_argument("--check", action="store_true", help="exit 1 unless every answer is the expected one")
    args = ap.parse_args()
    if args.free_ports:
        return run(0, 0, 0, 0, True, args.check)
    return run(LISTEN, ADMIN, UPSTREAM, JWKS, False, args.check)


if __name__ == "__main__":
    sys.exit(main())
