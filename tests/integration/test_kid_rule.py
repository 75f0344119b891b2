"""The `kid` rule (issue #20 item 2) in real Envoy, beside Envoy's own jwt_authn on the same
requests: one Envoy, four listeners, the same key sets:

  guard_inline  jwt-guard, inline `jwks`          authn_inline  jwt_authn, `local_jwks`
  guard_remote  jwt-guard, `remote_jwks`          authn_remote  jwt_authn, `remote_jwks`

the fetched sets served by jwks_server.py. Each path has its key set: /kidless (keys without
`kid`), /mixed (keys with and without), /four (four keys with `kid`, for the bound). Tokens are
minted by PyJWT; each is sent twice (the second time an accepted one comes from jwt-guard's
cache). jwt-guard's answer (status and reason) is asserted exactly, and jwt_authn's status is
compared with it: equal, except in the rows of DIFFERENT, each with its reason
(docs/comparison.md, row "`kid` matching").

A last test rotates a fetched set: a token naming a new `kid` is refused while keys without
`kid` are tried and fail (`bad_signature`), asks for a refetch all the same, and is accepted
once the new key is fetched.
"""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from conftest import expect_401, expect_upstream, start_stack
from harness import listener, static_cluster, wasm_filter
from harness import request as http_get
from jwks_server import JwksServer
from tokens import AUDIENCE, ISSUER

JWT_AUTHN_TYPE = "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication"
OK = "ok"

# Keys by letter: A-E and X P-256 (X is in no set: an attacker's), P P-384, R RSA.
KEYS: dict[str, Any] = {
    **{c: ec.generate_private_key(ec.SECP256R1()) for c in "ABCDEX"},
    "P": ec.generate_private_key(ec.SECP384R1()),
    "R": rsa.generate_private_key(public_exponent=65537, key_size=2048),
}


def jwk(letter: str, kid: str | None, alg: str | None = None) -> dict:
    """A public JWK without `alg` unless given (the type says: ES256, ES384, RS256)."""
    algorithm = RSAAlgorithm if letter == "R" else ECAlgorithm
    out = {k: v for k, v in algorithm.to_jwk(KEYS[letter].public_key(), as_dict=True).items()
           if k not in ("key_ops", "alg")}
    if kid is not None:
        out["kid"] = kid
    if alg is not None:
        out["alg"] = alg
    return out


SETS = {
    "kidless": {"keys": [jwk("B", None), jwk("C", None)]},
    "mixed": {"keys": [jwk("A", "a"), jwk("B", None), jwk("R", "r", "RS256")]},
    "four": {"keys": [jwk(c, c.lower()) for c in "ABCD"]},
}


def mint(letter: str, kid: str | None, alg: str = "ES256") -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 300}
    return jwt.encode(claims, KEYS[letter], algorithm=alg, headers={} if kid is None else {"kid": kid})


# (path, signer, alg, kid, jwt-guard's answer). Every token is well-formed, unexpired, of the
# providers' issuer and audience: only the key decides.
CASES: list[tuple[str, str, str, str | None, str]] = [
    # Keys without kid: candidates for any token, with or without kid.
    ("/kidless", "B", "ES256", "b", OK),
    ("/kidless", "C", "ES256", "zzz", OK),
    ("/kidless", "C", "ES256", None, OK),
    ("/kidless", "X", "ES256", "b", "bad_signature"),
    ("/kidless", "X", "ES256", None, "bad_signature"),
    # ... of the token's alg only.
    ("/kidless", "R", "RS256", "zzz", "unknown_key"),
    ("/kidless", "P", "ES384", None, "unknown_key"),
    # Mixed: the key named by kid, then the keys without kid; never a key with another kid.
    ("/mixed", "A", "ES256", "a", OK),
    ("/mixed", "B", "ES256", "a", OK),
    ("/mixed", "B", "ES256", "zzz", OK),
    ("/mixed", "A", "ES256", None, OK),
    ("/mixed", "A", "ES256", "zzz", "bad_signature"),
    ("/mixed", "X", "ES256", "a", "bad_signature"),
    ("/mixed", "R", "RS256", "r", OK),
    ("/mixed", "R", "RS256", None, OK),
    ("/mixed", "R", "RS256", "a", "unsupported_algorithm"),
    ("/mixed", "R", "RS256", "zzz", "unknown_key"),
    ("/mixed", "P", "ES384", "a", "unsupported_algorithm"),
    # The bound: a token without kid tries at most 3 keys.
    ("/four", "C", "ES256", None, OK),
    ("/four", "D", "ES256", "d", OK),
    ("/four", "D", "ES256", None, "bad_signature"),
]

# (path, signer, alg, kid) -> why jwt_authn's status differs from jwt-guard's.
DIFFERENT = {
    ("/four", "D", "ES256", None):
        "jwt_authn tries every key of a set for a token without kid; jwt-guard at most 3 "
        "(a forged token must not buy one signature check per key)",
}


def guard_config(remote: dict[str, int] | None) -> dict:
    def keys(name: str) -> dict:
        if remote is None:
            return {"jwks": SETS[name]}
        return {"remote_jwks": {"cluster": f"idp_{name}", "uri": f"http://idp-{name}/jwks.json",
                                "refresh_seconds": 300, "min_refetch_seconds": 1}}

    return {
        "realm": "api",
        "providers": {name: {"issuer": ISSUER, "audiences": [AUDIENCE], **keys(name)} for name in SETS},
        "rules": [{"match": {"prefix": f"/{name}"}, "provider": name} for name in SETS],
    }


def authn_filter(remote: dict[str, int] | None) -> dict:
    import json

    def keys(name: str) -> dict:
        if remote is None:
            return {"local_jwks": {"inline_string": json.dumps(SETS[name])}}
        return {"remote_jwks": {"http_uri": {"uri": f"http://idp-{name}/jwks.json", "cluster": f"idp_{name}",
                                             "timeout": "2s"},
                                "cache_duration": {"seconds": 300}}}

    return {"name": "envoy.filters.http.jwt_authn", "typed_config": {
        "@type": JWT_AUTHN_TYPE,
        "providers": {name: {"issuer": ISSUER, "audiences": [AUDIENCE], **keys(name)} for name in SETS},
        "rules": [{"match": {"prefix": f"/{name}"}, "requires": {"provider_name": name}} for name in SETS],
    }}


@pytest.fixture(scope="module")
def idps():
    servers = {name: JwksServer(jwks).start() for name, jwks in SETS.items()}
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture(scope="module")
def stack(request: pytest.FixtureRequest, upstream, wasm: str, idps: dict[str, JwksServer]):
    ports = {name: server.port for name, server in idps.items()}
    s = start_stack(request, upstream, "kid-rule",
                    [listener("guard_inline", http_filters=[wasm_filter(guard_config(None))]),
                     listener("guard_remote", http_filters=[wasm_filter(guard_config(ports))]),
                     listener("authn_inline", http_filters=[authn_filter(None)]),
                     listener("authn_remote", http_filters=[authn_filter(ports)])],
                    extra_clusters=[static_cluster(f"idp_{name}", port) for name, port in ports.items()])
    # jwt-guard fetches in the background: wait until every fetched set serves.
    deadline = time.monotonic() + 10
    for name, probe in (("kidless", mint("B", None)), ("mixed", mint("A", "a")), ("four", mint("A", "a"))):
        while request_status(s, "guard_remote", f"/{name}/x", probe) != 200:
            assert time.monotonic() < deadline, f"the {name} key set was not fetched"
            time.sleep(0.2)
    return s


def request_status(stack, listener_name: str, path: str, token: str) -> int:
    return http_get(stack.ports[listener_name], path, headers=[("authorization", f"Bearer {token}")]).status


@pytest.mark.parametrize("source", ["inline", "remote"])
@pytest.mark.parametrize("path, signer, alg, kid, expect", CASES,
                         ids=[f"{p[1:]}-{s}-{a}-kid-{k}" for p, s, a, k, _ in CASES])
def test_kid_rule_beside_jwt_authn(stack, refused, source: str, path: str, signer: str, alg: str,
                                   kid: str | None, expect: str) -> None:
    token = mint(signer, kid, alg)
    for _ in range(2):  # the second time an accepted token comes from the cache
        resp = http_get(stack.ports[f"guard_{source}"], f"{path}/x",
                       headers=[("authorization", f"Bearer {token}")])
        if expect == OK:
            expect_upstream(resp)
        else:
            with refused():
                expect_401(resp, expect)
    authn = request_status(stack, f"authn_{source}", f"{path}/x", token)
    guard = 200 if expect == OK else 401
    why = DIFFERENT.get((path, signer, alg, kid))
    if why is None:
        assert authn == guard, f"jwt_authn {authn}, jwt-guard {guard}"
    else:
        assert authn != guard, f"documented as different ({why}), but both answer {authn}"


def test_a_new_kid_is_fetched_although_keys_without_kid_failed(request: pytest.FixtureRequest, upstream,
                                                               wasm: str) -> None:
    """IdP rotation with a set mixing keys without and with kid: a token naming the new `kid`
    is first tried against the key without kid (401 bad_signature), which still asks for the
    keys again; once fetched, the token is accepted."""
    idp = JwksServer({"keys": [jwk("A", "a"), jwk("B", None)]}).start()
    request.addfinalizer(idp.stop)
    config = {
        "realm": "api",
        "providers": {"p": {"issuer": ISSUER, "audiences": [AUDIENCE],
                            "remote_jwks": {"cluster": "idp", "uri": "http://idp/jwks.json",
                                            "refresh_seconds": 300, "min_refetch_seconds": 1}}},
        "rules": [{"match": {"prefix": "/"}, "provider": "p"}],
    }
    s = start_stack(request, upstream, "kid-rotation", [listener("guard", http_filters=[wasm_filter(config)])],
                    extra_clusters=[static_cluster("idp", idp.port)])
    old = mint("A", "a")
    deadline = time.monotonic() + 10
    while request_status(s, "guard", "/x", old) != 200:
        assert time.monotonic() < deadline, "the key set was not fetched"
        time.sleep(0.2)
    fetches = idp.count("/jwks.json")
    time.sleep(1.2)  # past min_refetch_seconds since the first fetch
    idp.set(jwks={"keys": [jwk("A", "a"), jwk("B", None), jwk("E", "e")]})
    new = mint("E", "e")
    expect_401(http_get(s.ports["guard"], "/x", headers=[("authorization", f"Bearer {new}")]), "bad_signature")
    deadline = time.monotonic() + 5
    while request_status(s, "guard", "/x", new) != 200:
        assert time.monotonic() < deadline, f"no refetch: {idp.count('/jwks.json') - fetches} fetches"
        time.sleep(0.2)
    assert idp.count("/jwks.json") > fetches
    # A token naming a kid the keys have asks for nothing: no fetch while it is refused.
    settled = idp.count("/jwks.json")
    time.sleep(1.2)
    for _ in range(5):
        assert request_status(s, "guard", "/x", mint("X", "a")) == 401
    time.sleep(1.5)
    assert idp.count("/jwks.json") == settled
