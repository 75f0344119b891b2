"""Attack corpus, DPoP part (RFC 9449 §11 security considerations): what an attacker holding a
stolen DPoP-bound token, a captured proof, or only their own key can try, one table, every case
sent through real Envoy (both runtimes), with the verified-token cache on and off. A refused
case asserts its exact reason, body and DPoP challenge and that the upstream saw nothing.

Tokens and proofs are minted by dpop.py / tokens.py (PyJWT, cryptography), never by the Rust
code under test. test_attacks.py holds the bearer-token corpus.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass, field
from typing import Callable

import pytest

from conftest import expect_upstream, start_stack
from dpop import DROP, ClientKey, ath, bound_token, new_client_key, proof
from dpop_envoy import config, dpop_headers, expect_dpop_401, url
from harness import listener, wasm_filter
from tokens import KeySet, b64url, json_members, sign_raw

OK = "ok"


@dataclass
class World:
    keys: KeySet
    port: int = 0
    victim: ClientKey = field(default_factory=lambda: new_client_key("ES256"))
    attacker: ClientKey = field(default_factory=lambda: new_client_key("ES256"))

    def u(self, path: str = "/dp/acct", host: str = "127.0.0.1") -> str:
        return url(self.port, path, host)


@dataclass
class Req:
    """Requests sent in order; `steps` of (expected, headers, method, path)."""

    steps: list[tuple[str, list[tuple[str, str]], str, str]]


def one(expect_: str, token: str, proof_: str | list[str] | None, scheme: str = "DPoP", method: str = "GET",
        path: str = "/dp/acct", extra: list[tuple[str, str]] | None = None) -> Req:
    return Req([(expect_, dpop_headers(token, proof_, scheme, extra), method, path)])


def stolen(w: World) -> str:
    """The victim's bound token, as an attacker who read it from a log would have it."""
    return bound_token(w.keys, w.victim)


def replay(w: World) -> Req:
    token = stolen(w)
    p = proof(w.victim, "GET", w.u(), token)
    return Req([(OK, dpop_headers(token, p), "GET", "/dp/acct"),
                ("dpop_proof_replayed", dpop_headers(token, p), "GET", "/dp/acct")])


def replay_after_refusal_elsewhere(w: World) -> Req:
    """A proof captured from a request to another URL is useless here, before and after."""
    token = stolen(w)
    p = proof(w.victim, "GET", w.u("/dp/other"), token)
    return Req([("dpop_proof_mismatch", dpop_headers(token, p), "GET", "/dp/acct"),
                (OK, dpop_headers(token, p), "GET", "/dp/other"),
                ("dpop_proof_replayed", dpop_headers(token, p), "GET", "/dp/other")])


def hs256_with_public_key_as_secret(w: World) -> Req:
    """Key confusion: HS256 keyed with the text of the public JWK the proof carries."""
    token = stolen(w)
    secret = json_members(w.victim.jwk)
    unsigned_proof = proof(w.victim, "GET", w.u(), token, header={"alg": "HS256"}).rsplit(".", 1)[0]
    # By hand: PyJWT refuses a key that looks like a JWK as an HMAC secret.
    mac = hmac.new(secret, unsigned_proof.encode(), hashlib.sha256).digest()
    return one("dpop_proof_algorithm", token, f"{unsigned_proof}.{b64url(mac)}")


def duplicate_htu(w: World) -> Req:
    """Two htu members: the first for this URL, the last for another; a parser keeping either
    would differ from another one. Refused as malformed (strict JSON, as for tokens)."""
    token = stolen(w)
    claims = json_members([("jti", "dup-" + b64url(str(time.time()))), ("htm", "GET"), ("htu", w.u()),
                           ("htu", w.u("/dp/other")), ("iat", int(time.time())), ("ath", ath(token))])
    header = json_members({"typ": "dpop+jwt", "alg": "ES256", "jwk": w.victim.jwk})
    return one("dpop_proof_malformed", token, sign_raw(header, claims, w.victim.private, "ES256"))


def duplicate_jwk(w: World) -> Req:
    """Two jwk members: the attacker's (matching the signature) and the victim's (matching cnf.jkt)."""
    token = stolen(w)
    claims = json_members({"jti": b64url(str(time.time())), "htm": "GET", "htu": w.u(), "iat": int(time.time()),
                           "ath": ath(token)})
    header = json_members([("typ", "dpop+jwt"), ("alg", "ES256"), ("jwk", w.attacker.jwk), ("jwk", w.victim.jwk)])
    return one("dpop_proof_malformed", token, sign_raw(header, claims, w.attacker.private, "ES256"))


CASES: list[tuple[str, Callable[[World], Req]]] = [
    ("control-good-proof", lambda w: (lambda t: one(OK, t, proof(w.victim, "GET", w.u(), t)))(stolen(w))),
    ("replay-captured-proof", replay),
    ("replay-proof-for-another-url", replay_after_refusal_elsewhere),
    # A stolen token without the victim's key
    ("stolen-token-as-bearer", lambda w: one("dpop_bound_as_bearer", stolen(w), None, scheme="Bearer")),
    ("stolen-token-as-bearer-with-proof",
     lambda w: (lambda t: one("dpop_bound_as_bearer", t, proof(w.victim, "GET", w.u(), t), scheme="Bearer"))(stolen(w))),
    ("stolen-token-attackers-proof",
     lambda w: (lambda t: one("dpop_key_mismatch", t, proof(w.attacker, "GET", w.u(), t)))(stolen(w))),
    ("stolen-token-victims-jwk-attackers-signature",
     lambda w: (lambda t: one("dpop_proof_bad_signature", t,
                              proof(w.victim, "GET", w.u(), t, sign_with=w.attacker.private)))(stolen(w))),
    ("stolen-token-no-proof", lambda w: one("dpop_proof_missing", stolen(w), None)),
    ("stolen-token-access-token-as-proof", lambda w: (lambda t: one("dpop_proof_malformed", t, t))(stolen(w))),
    ("stolen-token-proof-with-kid-not-jwk",
     lambda w: (lambda t: one("dpop_proof_malformed", t,
                              proof(w.victim, "GET", w.u(), t, header={"jwk": DROP, "kid": "k-ES256"})))(stolen(w))),
    ("stolen-token-alg-none",
     lambda w: (lambda t: one("dpop_proof_algorithm", t,
                              proof(w.victim, "GET", w.u(), t, header={"alg": "none"}).rsplit(".", 1)[0] + "."))(
                                  stolen(w))),
    ("stolen-token-hs256-key-confusion", hs256_with_public_key_as_secret),
    ("duplicate-jwk-members", duplicate_jwk),
    # A captured proof used elsewhere
    ("proof-for-another-url",
     lambda w: (lambda t: one("dpop_proof_mismatch", t, proof(w.victim, "GET", w.u("/dp/other"), t)))(stolen(w))),
    ("proof-for-another-host",
     lambda w: (lambda t: one("dpop_proof_mismatch", t,
                              proof(w.victim, "GET", w.u(host="api.other.example"), t)))(stolen(w))),
    ("proof-for-another-method",
     lambda w: (lambda t: one("dpop_proof_mismatch", t, proof(w.victim, "GET", w.u(), t), method="DELETE"))(
         stolen(w))),
    ("proof-method-override-header",
     lambda w: (lambda t: one("dpop_proof_mismatch", t, proof(w.victim, "GET", w.u(), t), method="POST",
                              extra=[("X-HTTP-Method-Override", "GET")]))(stolen(w))),
    ("proof-for-another-token",
     lambda w: (lambda t: one("dpop_proof_mismatch", t, proof(w.victim, "GET", w.u(), stolen(w))))(stolen(w))),
    ("proof-percent-encoded-path",
     lambda w: (lambda t: one("dpop_proof_mismatch", t, proof(w.victim, "GET", w.u("/dp/%61cct"), t)))(stolen(w))),
    ("duplicate-htu-members", duplicate_htu),
    # Proofs made in advance
    ("pre-generated-proof-far-future",
     lambda w: (lambda t: one("dpop_proof_issued_in_future", t,
                              proof(w.victim, "GET", w.u(), t, claims={"iat": int(time.time()) + 3600})))(stolen(w))),
    ("old-proof",
     lambda w: (lambda t: one("dpop_proof_expired", t,
                              proof(w.victim, "GET", w.u(), t, claims={"iat": int(time.time()) - 3600})))(stolen(w))),
    ("proof-typ-at+jwt",
     lambda w: (lambda t: one("dpop_proof_malformed", t, proof(w.victim, "GET", w.u(), t, header={"typ": "at+jwt"})))(
         stolen(w))),
    # An attacker's own key and an unbound token minted for someone else
    ("unbound-token-with-attackers-proof",
     lambda w: (lambda t: one("dpop_key_mismatch", t, proof(w.attacker, "GET", w.u(), t)))(bound_token(w.keys, None))),
    ("unbound-token-as-bearer-on-required",
     lambda w: one("dpop_required", bound_token(w.keys, None), None, scheme="Bearer", path="/req/acct")),
]


@pytest.fixture(scope="module", params=["cache", "nocache"])
def stack(request, upstream, keys, wasm):
    top = {} if request.param == "cache" else {"token_cache_size": 0}
    return start_stack(request, upstream, f"dpop-attacks-{request.param}",
                       [listener("dpop", 0, [wasm_filter(config(keys, **top))])])


@pytest.fixture(scope="module")
def world(keys) -> World:
    return World(keys)


@pytest.mark.parametrize("build", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_dpop_attack(stack, world, upstream, refused, build):
    world.port = stack.ports["dpop"]
    for expected, headers, method, path in build(world).steps:
        if expected == OK:
            before = upstream.count
            echoed = expect_upstream(stack.get("dpop", path, method=method, headers=headers))
            assert upstream.count == before + 1
            assert "authorization" not in echoed["headers"] and "dpop" not in echoed["headers"], echoed
        else:
            with refused():
                resp = stack.get("dpop", path, method=method, headers=headers,
                                 body=b"{}" if method == "POST" else None)
            algs = {"algs": ["ES256", "PS256", "EdDSA"]} if path.startswith("/req") else {}
            expect_dpop_401(resp, expected, **algs)
