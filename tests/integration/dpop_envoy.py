"""What the DPoP test files share: the filter configuration, how a DPoP request is sent (on a
fresh connection or on one kept open), and the answers docs/dpop contract fixes (status, body,
WWW-Authenticate, DPoP-Nonce)."""

from __future__ import annotations

import http.client
import json
import re
from typing import Any

from conftest import DESCRIPTIONS, REALM
from dpop import DEFAULT_ALGS
from harness import Response, Stack
from tokens import AUDIENCE, ISSUER, KeySet

CACHE_HIT = "wasmcustom.jwt_guard.token_cache.hit"
# Algorithms of provider `req` (and of `mixed`'s DPoP challenge): not the default list, so a
# challenge that prints the defaults, or a check that ignores the list, shows.
REQ_ALGS = ["ES256", "PS256", "EdDSA"]
NONCE_SECRET = "an-integration-test-nonce-secret-0123456789"
# Provider `short`: its own max_age_seconds and clock_skew_seconds, far from the defaults.
SHORT_MAX_AGE, SHORT_SKEW = 20, 5

ERRORS = {
    **{r: "invalid_dpop_proof" for r in (
        "dpop_proof_missing", "dpop_proof_malformed", "dpop_proof_algorithm", "dpop_proof_bad_signature",
        "dpop_proof_mismatch", "dpop_proof_expired", "dpop_proof_issued_in_future", "dpop_proof_replayed",
        "dpop_replay_unavailable")},
    "dpop_nonce_required": "use_dpop_nonce",
}


def error_of(reason: str) -> str:
    """The `error` of a 401 reason: DPoP proof failures, the nonce, or invalid_token."""
    return ERRORS.get(reason, "invalid_token")


def config(keys: KeySet, nonce_secret: str = NONCE_SECRET, **top: Any) -> dict:
    def provider(**extra: Any) -> dict:
        return {"issuer": ISSUER, "audiences": [AUDIENCE], "jwks": keys.jwks(["ES256", "RS256"]), **extra}

    providers = {
        "dp": provider(dpop={}),
        "req": provider(dpop={"required": True, "algorithms": REQ_ALGS}),
        "fwd": provider(dpop={}, forward=True),
        "nonce": provider(dpop={"nonce": {"secret": nonce_secret, "lifetime_seconds": 300}}),
        # Nonces of 1 s windows: one is good in its window and the next, then never again.
        "quick": provider(dpop={"nonce": {"secret": nonce_secret, "lifetime_seconds": 1}}),
        "short": provider(dpop={"max_age_seconds": SHORT_MAX_AGE}, clock_skew_seconds=SHORT_SKEW),
        "plain": provider(),
        # The smallest replay store (64 buckets of 16): test_dpop_flows.py fills it.
        "full": provider(dpop={"replay_capacity": 1024}),
    }
    rules = [{"match": {"prefix": f"/{name}"}, "provider": name} for name in providers]
    # A bearer-only provider beside a DPoP-required one: both challenges when there is no token.
    rules.append({"match": {"prefix": "/mixed"}, "providers": ["plain", "req"]})
    return {"realm": REALM, "providers": providers, "rules": rules, **top}


def url(port: int, path: str, host: str = "127.0.0.1") -> str:
    """The htu a client would use for the harness's requests: the harness sends Host
    127.0.0.1:PORT, and the filter builds the URI from :scheme and :authority."""
    return f"http://{host}:{port}{path}"


def dpop_headers(token: str | None, proofs: list[str] | str | None = None, scheme: str = "DPoP",
                 extra: list[tuple[str, str]] | None = None) -> list[tuple[str, str]]:
    """Authorization `<scheme> <token>` and one `DPoP` header line per proof, in order."""
    out: list[tuple[str, str]] = []
    if token is not None:
        out.append(("Authorization", f"{scheme} {token}"))
    for p in [proofs] if isinstance(proofs, str) else (proofs or []):
        out.append(("DPoP", p))
    return out + list(extra or [])


def send(stack: Stack, path: str, token: str | None, proofs: list[str] | str | None = None, *,
         method: str = "GET", scheme: str = "DPoP", listener: str = "dpop", **kw: Any) -> Response:
    return stack.get(listener, path, method=method, headers=dpop_headers(token, proofs, scheme), **kw)


class Conn:
    """One HTTP/1.1 connection kept open, for several requests (Envoy's worker stays the same)."""

    def __init__(self, port: int):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.conn.connect()

    def send(self, path: str, headers: list[tuple[str, str]], method: str = "GET") -> Response:
        self.conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        self.conn.putheader("Host", f"127.0.0.1:{self.port}")
        for k, v in headers:
            self.conn.putheader(k, v)
        self.conn.endheaders()
        resp = self.conn.getresponse()
        data = resp.read()
        pairs = [(k.lower(), v) for k, v in resp.getheaders()]
        joined: dict[str, str] = {}
        for k, v in pairs:
            joined[k] = v if k not in joined else joined[k] + ", " + v
        return Response(resp.status, joined, pairs, data)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "Conn":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def dpop_challenge(algs: list[str] = DEFAULT_ALGS, reason: str | None = None, realm: str = REALM) -> str:
    if reason is None:
        return f'DPoP realm="{realm}", algs="{" ".join(algs)}"'
    return (f'DPoP realm="{realm}", error="{error_of(reason)}", error_description="{DESCRIPTIONS[reason]}", '
            f'algs="{" ".join(algs)}"')


_ALGS_RE = re.compile(r'^(?P<head>DPoP .*), algs="(?P<algs>[^"]*)"$')


def same_challenges(got: list[str], expected: list[str]) -> bool:
    """The WWW-Authenticate lines are these challenges, in any order; in a DPoP challenge the
    algorithms of `algs` may come in any order (the contract fixes the set, not the order)."""
    def canonical(line: str) -> str:
        m = _ALGS_RE.match(line)
        if not m:
            return line
        algs = m["algs"].split(" ")
        return f'{m["head"]}, algs="{" ".join(sorted(algs)) if len(set(algs)) == len(algs) else m["algs"]}"'
    return sorted(map(canonical, got)) == sorted(map(canonical, expected))


def expect_dpop_401(resp: Response, reason: str, algs: list[str] = DEFAULT_ALGS, realm: str = REALM) -> None:
    """A 401 for `reason` with the DPoP challenge (DPoP failures, dpop_required,
    dpop_bound_as_bearer, and any failure of a token presented with the DPoP scheme)."""
    assert resp.status == 401, f"expected 401 {reason}, got {resp!r}"
    assert resp.header("content-type") == "application/json", resp
    assert json.loads(resp.body) == {"status": 401, "error": error_of(reason), "reason": reason}, resp
    expected = [dpop_challenge(algs, reason, realm)]
    assert same_challenges(resp.all("www-authenticate"), expected), (expected, resp)
    if reason != "dpop_nonce_required":
        assert resp.all("dpop-nonce") == [], resp


def expect_nonce_401(resp: Response, algs: list[str] = DEFAULT_ALGS) -> str:
    """use_dpop_nonce: the DPoP challenge and exactly one DPoP-Nonce header; returns the nonce."""
    expect_dpop_401(resp, "dpop_nonce_required", algs)
    nonces = resp.all("dpop-nonce")
    assert len(nonces) == 1 and nonces[0], resp
    # RFC 9449 §8.1: nonce = 1*NQCHAR (printable ASCII without `"` and `\`).
    assert all(0x21 <= ord(c) <= 0x7E and c not in '"\\' for c in nonces[0]), nonces
    return nonces[0]
