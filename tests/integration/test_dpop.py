"""DPoP (RFC 9449) proof checks in real Envoy, both runtimes: a good proof passes and its
headers go (or, with forward: true, stay); then each fault, one at a time, answers its reason
with the DPoP challenge and nothing reaches the upstream.

Client keys, thumbprints, bound tokens and proofs come from dpop.py (PyJWT/cryptography);
every proof is minted per request, with a fresh jti and iat = now. Rules: /dp (dpop {}),
/req (required, algorithms ES256 PS256 EdDSA), /fwd (forward: true), /short (max_age 20 s,
clock skew 5 s), /plain (no dpop), /nonce (nonces, see test_dpop_flows.py).
"""

from __future__ import annotations

import base64
import time

import pytest

from conftest import NotForwarded, expect_401, expect_upstream, start_stack
from dpop import DROP, ClientKey, ath, bound_token, new_client_key, proof, thumbprint
from dpop_envoy import (CACHE_HIT, REQ_ALGS, SHORT_MAX_AGE, SHORT_SKEW, config, dpop_challenge, expect_dpop_401,
                        same_challenges, send, url)
from harness import listener, wasm_filter
from tokens import KeySet, b64url

CLIENT_ALGS = ["ES256", "RS256", "PS256", "EdDSA", "ES384", "ES512"]


@pytest.fixture(scope="module")
def stack(request, upstream, keys, wasm):
    return start_stack(request, upstream, "dpop", [listener("dpop", 0, [wasm_filter(config(keys))])])


@pytest.fixture(scope="module")
def clients() -> dict[str, ClientKey]:
    return {alg: new_client_key(alg) for alg in CLIENT_ALGS}


@pytest.fixture
def alice(clients) -> ClientKey:
    return clients["ES256"]


@pytest.fixture
def mallory() -> ClientKey:
    return new_client_key("ES256")


def port(stack) -> int:
    return stack.ports["dpop"]


def good(stack, keys: KeySet, client: ClientKey, path: str = "/dp/orders", method: str = "GET"):
    """A bound token and a good proof for `method` `path`: (token, proof)."""
    token = bound_token(keys, client)
    return token, proof(client, method, url(port(stack), path), token)


# --------------------------------------------------------------------------- accepted


@pytest.mark.parametrize("alg", CLIENT_ALGS)
def test_a_good_proof_passes_and_neither_header_goes_upstream(stack, keys, clients, alg):
    token, p = good(stack, keys, clients[alg])
    echoed = expect_upstream(send(stack, "/dp/orders", token, p))
    assert "authorization" not in echoed["headers"] and "dpop" not in echoed["headers"], echoed
    assert echoed["path"] == "/dp/orders"


def test_a_required_provider_accepts_a_good_proof(stack, keys, clients):
    for alg in REQ_ALGS:
        token = bound_token(keys, clients[alg])
        echoed = expect_upstream(send(stack, "/req/x", token, proof(clients[alg], "GET", url(port(stack), "/req/x"),
                                                                     token)))
        assert "dpop" not in echoed["headers"], echoed


def test_forward_true_keeps_the_token_and_the_proof(stack, keys, alice):
    token, p = good(stack, keys, alice, "/fwd/a")
    echoed = expect_upstream(send(stack, "/fwd/a", token, p))
    assert echoed["headers"]["authorization"] == f"DPoP {token}"
    assert echoed["headers"]["dpop"] == p


def test_post_with_the_method_in_the_proof(stack, keys, alice):
    token, p = good(stack, keys, alice, "/dp/orders", method="POST")
    expect_upstream(send(stack, "/dp/orders", token, p, method="POST", body=b"{}"))


@pytest.mark.parametrize("htu_suffix, path", [
    ("?a=1", "/dp/q"), ("#frag", "/dp/q"), ("?a=1#frag", "/dp/q"),
    # The request's query is not part of the URI either.
    ("", "/dp/q?b=2"), ("?other=3", "/dp/q?b=2"),
])
def test_query_and_fragment_are_ignored(stack, keys, alice, htu_suffix, path):
    token = bound_token(keys, alice)
    p = proof(alice, "GET", url(port(stack), "/dp/q") + htu_suffix, token)
    expect_upstream(send(stack, path, token, p))


@pytest.mark.parametrize("htu, authority", [
    ("http://127.0.0.1/dp/p", "127.0.0.1:80"),
    ("http://127.0.0.1:80/dp/p", "127.0.0.1"),
    ("HTTP://127.0.0.1:{port}/dp/p", None),
    ("http://LocalHost:{port}/dp/p", "localhost:{port}"),
    ("http://localhost:{port}/dp/p", "LOCALHOST:{port}"),
])
def test_scheme_host_and_default_port_are_normalised(stack, keys, alice, htu, authority):
    p_ = port(stack)
    token = bound_token(keys, alice)
    pr = proof(alice, "GET", htu.format(port=p_), token)
    kw = {"authority": authority.format(port=p_)} if authority else {}
    expect_upstream(send(stack, "/dp/p", token, pr, **kw))


def test_http2_with_one_and_with_two_dpop_fields(stack, keys, alice):
    token, p = good(stack, keys, alice, "/dp/h2")
    echoed = expect_upstream(stack.get_h2("dpop", "/dp/h2", headers=[("authorization", f"DPoP {token}"), ("dpop", p)]))
    assert "authorization" not in echoed["headers"] and "dpop" not in echoed["headers"], echoed
    token, p = good(stack, keys, alice, "/dp/h2")
    other = proof(alice, "GET", url(port(stack), "/dp/h2"), token)
    with NotForwarded(stack.upstream):
        resp = stack.get_h2("dpop", "/dp/h2", headers=[("authorization", f"DPoP {token}"), ("dpop", p), ("dpop", other)])
    expect_dpop_401(resp, "dpop_proof_malformed")


def test_iat_within_the_window_passes(stack, keys, alice):
    for path, iat in (("/dp/w", time.time() - 250), ("/dp/w", time.time() + 40),
                      ("/short/w", time.time() - (SHORT_MAX_AGE - 8)), ("/short/w", time.time() + SHORT_SKEW - 3)):
        token = bound_token(keys, alice)
        expect_upstream(send(stack, path, token, proof(alice, "GET", url(port(stack), path), token,
                                                        claims={"iat": int(iat)})))


def test_an_unbound_bearer_token_passes_where_dpop_is_optional(stack, keys, alice):
    token = bound_token(keys, None)
    echoed = expect_upstream(send(stack, "/dp/b", token, scheme="Bearer"))
    assert "authorization" not in echoed["headers"]
    # A DPoP header beside a Bearer token is ignored, and removed before the upstream.
    junk = proof(alice, "GET", url(port(stack), "/elsewhere"), None)
    echoed = expect_upstream(send(stack, "/dp/b", token, [junk], scheme="Bearer"))
    assert "dpop" not in echoed["headers"], echoed


def test_the_cache_never_skips_the_proof(stack, keys, alice, mallory):
    token = bound_token(keys, alice)
    before = stack.envoy.stats(CACHE_HIT).get(CACHE_HIT, 0)
    for _ in range(4):
        expect_upstream(send(stack, "/dp/c", token, proof(alice, "GET", url(port(stack), "/dp/c"), token)))
    assert stack.envoy.stats(CACHE_HIT).get(CACHE_HIT, 0) - before >= 3, "the token was not served from the cache"
    with NotForwarded(stack.upstream):
        expect_dpop_401(send(stack, "/dp/c", token, proof(alice, "POST", url(port(stack), "/dp/c"), token)),
                        "dpop_proof_mismatch")
        expect_dpop_401(send(stack, "/dp/c", token, proof(mallory, "GET", url(port(stack), "/dp/c"), token)),
                        "dpop_key_mismatch")
        expect_dpop_401(send(stack, "/dp/c", token), "dpop_proof_missing")
    expect_upstream(send(stack, "/dp/c", token, proof(alice, "GET", url(port(stack), "/dp/c"), token)))


# --------------------------------------------------------------------------- proof faults

def _faults(stack, keys: KeySet, alice: ClientKey, mallory: ClientKey, clients: dict[str, ClientKey]):
    """(id, path, reason, algs of the challenge, token, proof lines) - one fault each."""
    u = url(port(stack), "/dp/f")
    token = bound_token(keys, alice)

    def pf(**kw) -> str:
        return proof(alice, "GET", u, token, **kw)

    rsa = clients["RS256"]
    rsa_token = bound_token(keys, rsa)
    secret = b"s" * 32
    now = int(time.time())
    d = "dpop_proof_"
    cases = [
        # 1. header lines
        ("missing", "/dp/f", d + "missing", token, []),
        ("two-lines", "/dp/f", d + "malformed", token, [pf(), pf()]),
        ("comma-list", "/dp/f", d + "malformed", token, [pf() + ", " + pf()]),
        ("not-a-jws", "/dp/f", d + "malformed", token, ["not.a-jws"]),
        # 2. header
        ("typ-jwt", "/dp/f", d + "malformed", token, [pf(header={"typ": "JWT"})]),
        ("typ-prefixed", "/dp/f", d + "malformed", token, [pf(header={"typ": "jwt+dpop"})]),
        ("typ-missing", "/dp/f", d + "malformed", token, [pf(header={"typ": DROP})]),
        ("crit", "/dp/f", d + "malformed", token, [pf(header={"crit": ["exp"]})]),
        ("jwk-missing", "/dp/f", d + "malformed", token, [pf(header={"jwk": DROP})]),
        ("jwk-private-d", "/dp/f", d + "malformed", token, [pf(header={"jwk": alice.private_jwk})]),
        ("jwk-private-rsa", "/dp/f", d + "malformed", rsa_token,
         [proof(rsa, "GET", u, rsa_token, header={"jwk": rsa.private_jwk})]),
        ("jwk-kty-not-alg", "/dp/f", d + "malformed", rsa_token,
         [proof(rsa, "GET", u, rsa_token, header={"jwk": alice.jwk})]),
        ("jwk-crv-not-alg", "/dp/f", d + "malformed", token, [pf(header={"jwk": clients["ES384"].jwk})]),
        ("jwk-p521-short-x", "/dp/f", d + "malformed", None, None),
        ("alg-hs256", "/dp/f", d + "algorithm", token, [pf(sign_with=secret, sign_alg="HS256")]),
        ("alg-none", "/dp/f", d + "algorithm", token,
         [pf(header={"alg": "none"}).rsplit(".", 1)[0] + "."]),
        ("alg-not-configured", "/req/f", d + "algorithm", rsa_token,
         [proof(rsa, "GET", url(port(stack), "/req/f"), rsa_token)]),
        # 3. signature
        ("signed-by-another-key", "/dp/f", d + "bad_signature", token, [pf(sign_with=mallory.private)]),
        ("signature-stripped", "/dp/f", d + "bad_signature", token, [pf().rsplit(".", 1)[0] + "."]),
        # 4. claims
        ("jti-missing", "/dp/f", d + "malformed", token, [pf(claims={"jti": DROP})]),
        ("jti-empty", "/dp/f", d + "malformed", token, [pf(claims={"jti": ""})]),
        ("jti-257", "/dp/f", d + "malformed", token, [pf(claims={"jti": "j" * 257})]),
        ("jti-number", "/dp/f", d + "malformed", token, [pf(claims={"jti": 7})]),
        ("htm-missing", "/dp/f", d + "malformed", token, [pf(claims={"htm": DROP})]),
        ("htu-missing", "/dp/f", d + "malformed", token, [pf(claims={"htu": DROP})]),
        ("iat-missing", "/dp/f", d + "malformed", token, [pf(claims={"iat": DROP})]),
        ("iat-string", "/dp/f", d + "malformed", token, [pf(claims={"iat": str(now)})]),
        # 5. request binding
        ("htm-other", "/dp/f", d + "mismatch", token, [pf(claims={"htm": "POST"})]),
        ("htm-lower-case", "/dp/f", d + "mismatch", token, [pf(claims={"htm": "get"})]),
        ("htu-other-path", "/dp/f", d + "mismatch", token, [pf(claims={"htu": url(port(stack), "/dp/g")})]),
        ("htu-path-case", "/dp/f", d + "mismatch", token, [pf(claims={"htu": url(port(stack), "/dp/F")})]),
        ("htu-path-prefix", "/dp/f", d + "mismatch", token, [pf(claims={"htu": url(port(stack), "/dp/")})]),
        ("htu-other-host", "/dp/f", d + "mismatch", token,
         [pf(claims={"htu": url(port(stack), "/dp/f", host="localhost")})]),
        ("htu-other-port", "/dp/f", d + "mismatch", token, [pf(claims={"htu": url(port(stack) + 1, "/dp/f")})]),
        ("htu-https", "/dp/f", d + "mismatch", token, [pf(claims={"htu": u.replace("http:", "https:")})]),
        ("htu-no-port", "/dp/f", d + "mismatch", token, [pf(claims={"htu": "http://127.0.0.1/dp/f"})]),
        ("ath-missing", "/dp/f", d + "mismatch", token, [pf(claims={"ath": DROP})]),
        ("ath-other-token", "/dp/f", d + "mismatch", token, [pf(claims={"ath": ath(bound_token(keys, alice))})]),
        ("ath-padded", "/dp/f", d + "mismatch", token, [pf(claims={"ath": ath(token) + "="})]),
        # 6. time
        ("iat-expired", "/dp/f", d + "expired", token, [pf(claims={"iat": now - 400})]),
        ("iat-future", "/dp/f", d + "issued_in_future", token, [pf(claims={"iat": now + 180})]),
        ("iat-expired-own-max-age", "/short/f", d + "expired", token,
         [proof(alice, "GET", url(port(stack), "/short/f"), token, claims={"iat": now - SHORT_MAX_AGE - 10})]),
        ("iat-future-own-skew", "/short/f", d + "issued_in_future", token,
         [proof(alice, "GET", url(port(stack), "/short/f"), token, claims={"iat": now + SHORT_SKEW + 15})]),
        # 8. key binding
        ("proof-by-another-key", "/dp/f", "dpop_key_mismatch", token, [proof(mallory, "GET", u, token)]),
        ("token-without-cnf", "/dp/f", "dpop_key_mismatch", None, None),
        ("token-jkt-of-another-key", "/dp/f", "dpop_key_mismatch", None, None),
    ]
    unbound = bound_token(keys, None)
    other = bound_token(keys, None, cnf={"jkt": mallory.thumbprint})
    out = []
    for cid, path, reason, tok, proofs in cases:
        if cid == "token-without-cnf":
            tok, proofs = unbound, [proof(alice, "GET", u, unbound)]
        elif cid == "token-jkt-of-another-key":
            tok, proofs = other, [proof(alice, "GET", u, other)]
        elif cid == "jwk-p521-short-x":
            # The right key and signature, and a token bound to this very spelling of its jwk:
            # only the coordinate's length is wrong.
            client, short = _p521_with_short_x()
            tok = bound_token(keys, None, cnf={"jkt": thumbprint(short)})
            proofs = [proof(client, "GET", u, tok, header={"jwk": short})]
        out.append((cid, path, reason, REQ_ALGS if path.startswith("/req") else None, tok, proofs))
    return out


def _p521_with_short_x() -> tuple[ClientKey, dict]:
    """A P-521 client key whose x starts with a zero octet (half of them do: the first octet
    holds one bit), and its public JWK with that octet dropped (65 octets, the same point)."""
    while True:
        client = new_client_key("ES512")
        x = base64.urlsafe_b64decode(client.jwk["x"] + "==")
        if x[0] == 0:
            return client, {**client.jwk, "x": b64url(x[1:])}


FAULT_IDS = ["missing", "two-lines", "comma-list", "not-a-jws", "typ-jwt", "typ-prefixed", "typ-missing",
             "crit", "jwk-missing", "jwk-private-d", "jwk-private-rsa", "jwk-kty-not-alg", "jwk-crv-not-alg",
             "jwk-p521-short-x", "alg-hs256", "alg-none", "alg-not-configured", "signed-by-another-key",
             "signature-stripped",
             "jti-missing", "jti-empty", "jti-257", "jti-number", "htm-missing", "htu-missing", "iat-missing",
             "iat-string", "htm-other", "htm-lower-case", "htu-other-path", "htu-path-case", "htu-path-prefix",
             "htu-other-host", "htu-other-port", "htu-https", "htu-no-port", "ath-missing", "ath-other-token",
             "ath-padded", "iat-expired", "iat-future", "iat-expired-own-max-age", "iat-future-own-skew",
             "proof-by-another-key", "token-without-cnf", "token-jkt-of-another-key"]


@pytest.mark.parametrize("fault", FAULT_IDS)
def test_each_proof_fault_is_refused(stack, keys, alice, mallory, clients, refused, fault):
    cases = {c[0]: c for c in _faults(stack, keys, alice, mallory, clients)}
    assert list(cases) == FAULT_IDS
    _, path, reason, algs, token, proofs = cases[fault]
    with refused():
        resp = send(stack, path, token, proofs)
    expect_dpop_401(resp, reason, **({"algs": algs} if algs else {}))


def test_typ_is_a_media_type_compared_without_case(stack, keys, alice):
    """RFC 7515 §4.1.9: `typ` is a media type, and media types are case-insensitive; a proof with
    `DPoP+JWT` is the same type as `dpop+jwt`."""
    token = bound_token(keys, alice)
    u = url(port(stack), "/dp/f")
    expect_upstream(send(stack, "/dp/f", token, proof(alice, "GET", u, token, header={"typ": "DPoP+JWT"})))


def test_a_proof_with_d_and_its_public_twin(stack, keys, alice):
    """Control for jwk-private-d: the same proof with the public JWK passes, so it is `d`
    alone that is refused."""
    token = bound_token(keys, alice)
    assert "d" in alice.private_jwk and "d" not in alice.jwk
    expect_upstream(send(stack, "/dp/f", token, proof(alice, "GET", url(port(stack), "/dp/f"), token)))


ORDER = [
    # (id, path, two faults, the reason of the check that comes first)
    ("token-before-proof", "/dp/o", "expired", {"token": {"iat": -1000, "exp": -500}, "proof": None}),
    ("typ-before-alg", "/dp/o", "dpop_proof_malformed", {"header": {"typ": "jwt", "alg": "HS256"}, "hs": True}),
    ("signature-before-htm", "/dp/o", "dpop_proof_bad_signature", {"claims": {"htm": "PUT"}, "rogue": True}),
    ("htm-before-iat", "/dp/o", "dpop_proof_mismatch", {"claims": {"htm": "PUT", "iat": -1000}}),
    ("iat-before-nonce", "/nonce/o", "dpop_proof_expired", {"claims": {"iat": -1000}}),
    ("nonce-before-key", "/nonce/o", "dpop_nonce_required", {"other_key": True}),
    ("iat-before-key", "/dp/o", "dpop_proof_issued_in_future", {"claims": {"iat": 1000}, "other_key": True}),
]


@pytest.mark.parametrize("path, reason, how", [o[1:] for o in ORDER], ids=[o[0] for o in ORDER])
def test_the_first_failing_check_answers(stack, keys, alice, mallory, refused, path, reason, how):
    now = int(time.time())
    token_claims = {k: now + v for k, v in how.get("token", {}).items()}
    signer = mallory if how.get("other_key") else alice
    token = bound_token(keys, alice, **token_claims)
    claims = {k: (now + v if k == "iat" else v) for k, v in how.get("claims", {}).items()}
    kw: dict = {"header": how.get("header"), "claims": claims}
    if how.get("rogue"):
        kw["sign_with"] = mallory.private
    if how.get("hs"):
        kw.update(sign_with=b"h" * 32, sign_alg="HS256")
    p = proof(signer, "GET", url(port(stack), path), token, **kw)
    with refused():
        resp = send(stack, path, token, None if "proof" in how else p)
    expect_dpop_401(resp, reason)


# --------------------------------------------------------------------------- scheme and binding


def test_a_bound_token_sent_as_bearer_is_refused(stack, keys, alice):
    token, p = good(stack, keys, alice)
    with NotForwarded(stack.upstream):
        expect_dpop_401(send(stack, "/dp/orders", token, scheme="Bearer"), "dpop_bound_as_bearer")
        # With its proof beside it, still: the scheme says bearer.
        expect_dpop_401(send(stack, "/dp/orders", token, p, scheme="Bearer"), "dpop_bound_as_bearer")
        expect_dpop_401(send(stack, "/req/x", token, scheme="Bearer"), "dpop_bound_as_bearer", REQ_ALGS)


def test_a_bearer_token_on_a_required_provider_is_refused(stack, keys):
    token = bound_token(keys, None)
    with NotForwarded(stack.upstream):
        expect_dpop_401(send(stack, "/req/x", token, scheme="Bearer"), "dpop_required", REQ_ALGS)


def test_a_provider_without_dpop_reads_no_dpop_scheme(stack, keys, alice):
    token = bound_token(keys, alice)
    p = proof(alice, "GET", url(port(stack), "/plain/x"), token)
    with NotForwarded(stack.upstream):
        expect_401(send(stack, "/plain/x", token, p), "missing")
        # Sent as Bearer it is a bound token this provider cannot check, as before DPoP.
        expect_401(send(stack, "/plain/x", token, scheme="Bearer"), "binding_unchecked")


def test_a_bad_token_with_the_dpop_scheme_gets_the_dpop_challenge(stack, keys, alice):
    expired = bound_token(keys, alice, iat=int(time.time()) - 1000, exp=int(time.time()) - 500)
    forged = bound_token(keys, alice, key=keys.rogue_p256)
    with NotForwarded(stack.upstream):
        for token, reason in ((expired, "expired"), (forged, "bad_signature")):
            resp = send(stack, "/dp/t", token, proof(alice, "GET", url(port(stack), "/dp/t"), token))
            expect_dpop_401(resp, reason)


@pytest.mark.parametrize("lines", [1, 2], ids=["one-line", "two-lines"])
def test_a_dpop_and_a_bearer_credential_together_are_malformed(stack, keys, alice, lines):
    """Two credentials are `malformed` (one token per request); one was presented with the
    DPoP scheme, so the challenge is DPoP's, however the client split the header."""
    token = bound_token(keys, alice)
    other = bound_token(keys, None)
    p = proof(alice, "GET", url(port(stack), "/dp/two"), token)
    auth = ([("Authorization", f"DPoP {token}, Bearer {other}")] if lines == 1 else
            [("Authorization", f"DPoP {token}"), ("Authorization", f"Bearer {other}")])
    with NotForwarded(stack.upstream):
        resp = stack.get("dpop", "/dp/two", headers=auth + [("DPoP", p)])
    expect_dpop_401(resp, "malformed")


# --------------------------------------------------------------------------- challenges and counters


def test_challenges_without_a_token(stack):
    from conftest import REALM
    bearer = f'Bearer realm="{REALM}"'
    with NotForwarded(stack.upstream):
        for path, expected in (("/dp/x", [bearer, dpop_challenge()]), ("/req/x", [dpop_challenge(REQ_ALGS)]),
                               ("/plain/x", [bearer]), ("/mixed/x", [bearer, dpop_challenge(REQ_ALGS)])):
            resp = send(stack, path, None)
            assert resp.status == 401, (path, resp)
            assert resp.json() == {"status": 401, "error": "invalid_token", "reason": "missing"}, (path, resp)
            assert same_challenges(resp.all("www-authenticate"), expected), (path, expected, resp)


def test_a_dpop_refusal_is_counted_by_reason(stack, keys, alice):
    p_ = "wasmcustom.jwt_guard"
    before = stack.envoy.stats("jwt_guard")
    token = bound_token(keys, alice)
    with NotForwarded(stack.upstream):
        for _ in range(2):
            expect_dpop_401(send(stack, "/dp/n", token, proof(alice, "PUT", url(port(stack), "/dp/n"), token)),
                            "dpop_proof_mismatch")
        expect_dpop_401(send(stack, "/dp/n", token), "dpop_proof_missing")
    after = stack.envoy.stats("jwt_guard")
    delta = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
    for name, n in ((f"{p_}.refused.401.dpop_proof_mismatch", 2), (f"{p_}.refused.401.dpop_proof_missing", 1),
                    (f"{p_}.provider.dp.refused.401.dpop_proof_mismatch", 2),
                    (f"{p_}.provider.dp.refused.401.dpop_proof_missing", 1)):
        assert delta.get(name) == n, (name, delta)
