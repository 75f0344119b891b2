"""Authentication (issue #2): every 401 reason, every algorithm family, token locations,
anonymous/disabled rules, forwarding, rule matching and junk input -- all through real Envoy."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from urllib.parse import quote

import pytest

from conftest import (REASONS_401, expect_401, expect_403, expect_upstream, start_stack)
from harness import listener, wasm_filter
from tokens import ALL_ALGS, AUDIENCE, DROP, ISSUER, KeySet, b64url, b64url_json, resign_with, unsigned

FWD_ISSUER = "https://fwd.example.com"
LAX_ISSUER = "https://lax.example.com"


def authn_config(keys: KeySet) -> dict:
    return {
        "realm": "api",
        "providers": {
            # defaults: clock skew 60 s, require_expiration, forward false
            "corp": {
                "issuer": ISSUER,
                "audiences": [AUDIENCE, "billing"],
                "jwks": keys.jwks(),
                "from_headers": [{"name": "Authorization", "value_prefix": "Bearer "}],
                "from_params": ["access_token"],
                "from_cookies": ["session"],
                "max_lifetime_seconds": 3600,
            },
            # JWKS given as a JSON string; token kept upstream
            "fwd": {
                "issuer": FWD_ISSUER,
                "jwks": json.dumps(keys.jwks(["ES256", "EdDSA"])),
                "from_headers": [{"name": "authorization", "value_prefix": "Bearer "}],
                "from_params": ["token"],
                "from_cookies": ["fwd_session"],
                "forward": True,
            },
            "lax": {
                "issuer": LAX_ISSUER,
                "jwks": {"keys": [keys.keys["ES256"].jwk]},
                "require_expiration": False,
                "clock_skew_seconds": 0,
            },
            # from_headers omitted, from_cookies given: CONTRACT.md says from_headers still
            # defaults to Authorization "Bearer " (each field has its own default)
            "cookie": {
                "issuer": ISSUER,
                "jwks": keys.jwks(["ES256"]),
                "from_cookies": ["cookie_token"],
            },
        },
        "rules": [
            {"match": {"prefix": "/public"}, "allow_anonymous": True, "provider": "corp"},
            {"match": {"prefix": "/healthz"}, "disabled": True},
            {"match": {"prefix": "/fwd"}, "provider": "fwd"},
            {"match": {"prefix": "/lax"}, "provider": "lax"},
            {"match": {"path": "/exact"}, "provider": "corp"},
            {"match": {"prefix": "/get-only", "methods": ["GET"]}, "provider": "corp"},
            {"match": {"prefix": "/hosts", "hosts": ["*.example.com", "api.test"]}, "provider": "corp"},
            {"match": {"prefix": "/api"}, "provider": "corp"},
            {"match": {"prefix": "/multi"}, "providers": ["corp", "lax"]},
            {"match": {"prefix": "/cookie-provider"}, "provider": "cookie"},
        ],
    }


# The whole module under both signature backends (Envoy's verify_signature for RS*/ES*, and
# Rust in the VM for everything): the answers must be the same.
@pytest.fixture(scope="module", params=["host", "pure_rust"])
def stack(request, upstream, keys, wasm):
    cfg = dict(authn_config(keys), signature_backend="auto" if request.param == "host" else "pure_rust")
    return start_stack(request, upstream, f"authn-{request.param}", [listener("authn", 0, [wasm_filter(cfg)])])


@pytest.fixture
def get(stack):
    def _get(path: str, token: str | None = None, **kw):
        given = kw.pop("headers", None) or {}
        headers = list(given.items()) if isinstance(given, dict) else list(given)
        if token is not None:
            headers.append(("Authorization", f"Bearer {token}"))
        return stack.get("authn", path, headers=headers, **kw)
    return _get


# --------------------------------------------------------------------------- success paths


@pytest.mark.parametrize("alg", ALL_ALGS)
def test_every_algorithm_is_accepted(get, keys, upstream, alg):
    before = upstream.count
    resp = get("/api/orders", keys.mint(alg))
    echoed = expect_upstream(resp)
    assert upstream.count == before + 1
    assert echoed["path"] == "/api/orders"
    assert "authorization" not in echoed["headers"], "forward=false must remove the token header"


def test_bearer_scheme_is_case_insensitive(get, keys):
    token = keys.mint("ES256")
    for scheme in ("bearer", "BEARER", "BeArEr"):
        resp = get("/api/x", headers={"Authorization": f"{scheme} {token}"})
        expect_upstream(resp)


def test_other_headers_are_forwarded_and_client_dry_run_header_removed(get, keys):
    resp = get("/api/x", keys.mint("ES256"), headers={"x-custom": "kept", "x-jwt-guard-dry-run": "403 forged"})
    h = expect_upstream(resp)["headers"]
    assert h["x-custom"] == "kept"
    assert "x-jwt-guard-dry-run" not in h


def test_array_audience_with_one_accepted_value(get, keys):
    expect_upstream(get("/api/x", keys.mint("ES256", aud=["other", "billing"])))


def test_expiry_within_clock_skew_is_accepted(get, keys):
    now = int(time.time())
    expect_upstream(get("/api/x", keys.mint("ES256", iat=now - 100, exp=now - 30)))
    expect_upstream(get("/api/x", keys.mint("ES256", nbf=now + 30)))
    expect_upstream(get("/api/x", keys.mint("ES256", iat=now + 30)))


def test_token_without_kid_uses_keys_of_its_algorithm(get, keys):
    expect_upstream(get("/lax/x", keys.mint("ES256", kid=None, iss=LAX_ISSUER)))


def test_require_expiration_false_accepts_token_without_exp(get, keys):
    expect_upstream(get("/lax/x", keys.mint("ES256", iss=LAX_ISSUER, exp=DROP)))


def test_rule_with_several_providers(get, keys):
    expect_upstream(get("/multi/x", keys.mint("ES256", iss=LAX_ISSUER)))
    expect_upstream(get("/multi/x", keys.mint("RS256")))


# --------------------------------------------------------------------------- every 401 reason


def test_missing(get, refused):
    with refused():
        expect_401(get("/api/x"), "missing")
    with refused():
        expect_401(get("/api/x", headers={"Authorization": "Basic YWxpY2U6cHc="}), "missing")


def _alg_confusion_token(keys: KeySet) -> str:
    """HS256 signed with the RSA public key (PEM) as HMAC secret, kid of the RS256 key."""
    from cryptography.hazmat.primitives import serialization

    pem = keys.keys["RS256"].private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    signing_input = f"{b64url_json({'alg': 'HS256', 'kid': 'k-RS256'})}.{b64url_json(keys.claims())}"
    sig = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(sig)}"


def _tampered(token: str) -> str:
    h, c, s = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(c + "=" * (-len(c) % 4)))
    claims["sub"] = "mallory"
    return f"{h}.{b64url_json(claims)}.{s}"


def _cases(keys: KeySet) -> list[tuple[str, str, str]]:
    now = int(time.time())
    es = keys.keys["ES256"]
    valid = keys.mint("ES256")
    return [
        ("malformed", "two parts", "abc.def"),
        ("malformed", "five parts (JWE)", "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.a.b.c.d"),
        ("malformed", "header not JSON", f"{b64url('not json')}.{b64url_json(keys.claims())}.c2ln"),
        ("malformed", "padding in base64url", valid.split(".")[0] + "==." + ".".join(valid.split(".")[1:])),
        ("malformed", "crit header", resign_with(valid, keys, "ES256",
                                                header={"alg": "ES256", "kid": es.kid, "crit": ["exp"]})),
        ("malformed", "claims not JSON", resign_with(valid, keys, "ES256", claims_raw=b"{not json")),
        ("malformed", "exp is a string", keys.mint("ES256", exp="tomorrow")),
        ("unsupported_algorithm", "alg none", unsigned({"alg": "none", "typ": "JWT"}, keys.claims())),
        ("unsupported_algorithm", "unknown alg", unsigned({"alg": "XS999", "kid": es.kid}, keys.claims())),
        ("unsupported_algorithm", "ES384 token, kid of the ES256 key",
         keys.mint("ES384", kid=es.kid)),
        ("unsupported_algorithm", "HS256 with the RSA public key as secret", _alg_confusion_token(keys)),
        ("unknown_key", "kid not in JWKS", keys.mint("ES256", kid="nope")),
        ("bad_signature", "signed by another key", keys.mint("ES256", key=keys.rogue_p256)),
        ("bad_signature", "claims changed after signing", _tampered(valid)),
        ("bad_signature", "HMAC with a wrong secret", keys.mint("HS256", key=b"w" * 64)),
        ("expired", "exp 2 minutes ago", keys.mint("ES256", iat=now - 600, exp=now - 120)),
        ("not_yet_valid", "nbf in 5 minutes", keys.mint("ES256", nbf=now + 300)),
        ("issued_in_future", "iat in 5 minutes", keys.mint("ES256", iat=now + 300, exp=now + 600)),
        ("missing_expiration", "no exp", keys.mint("ES256", exp=DROP)),
        ("bad_issuer", "other issuer", keys.mint("ES256", iss="https://evil.example.com")),
        ("bad_issuer", "issuer with trailing slash", keys.mint("ES256", iss=ISSUER + "/")),
        ("bad_audience", "other audience", keys.mint("ES256", aud="other")),
        ("bad_audience", "no aud claim", keys.mint("ES256", aud=DROP)),
        ("lifetime_exceeded", "exp - iat = 2 h > 1 h", keys.mint("ES256", iat=now, exp=now + 7200)),
        ("lifetime_exceeded", "no iat, exp in 2 h", keys.mint("ES256", iat=DROP, exp=now + 7200)),
        ("too_large", "9 KiB token", keys.mint("ES256", pad="x" * 9000)),
        ("binding_unchecked", "DPoP-bound (cnf.jkt), DPoP not checked", keys.mint("ES256", cnf={"jkt": "x" * 43})),
        ("binding_unchecked", "certificate-bound, no certificate_binding",
         keys.mint("ES256", cnf={"x5t#S256": "x" * 43})),
    ]


def test_every_401_reason(get, keys, refused):
    """One request per case; collects all mismatches before failing so one run shows them all."""
    failures = []
    seen = set()
    for reason, desc, token in _cases(keys):
        seen.add(reason)
        with refused():
            resp = get("/api/x", token)
        try:
            expect_401(resp, reason)
        except AssertionError as e:
            failures.append(f"[{reason}] {desc}: {e}")
    # keys_unavailable needs a provider with remote_jwks and no keys yet: test_remote_jwks.py; the
    # client-certificate reasons need certificate_binding and TLS: test_cert_binding.py; the DPoP
    # reasons need a provider with dpop and proofs: test_dpop.py.
    certificate = {"certificate_missing", "certificate_mismatch", "certificate_binding_required"}
    dpop = {reason for reason in REASONS_401 if reason.startswith("dpop_")}
    assert seen | {"missing", "keys_unavailable"} | certificate | dpop == set(REASONS_401)
    assert not failures, "\n".join(failures)


def test_unknown_key_without_kid(get, keys, refused):
    # lax only has an ES256 key: an ES384 token without kid has no key of its algorithm
    with refused():
        expect_401(get("/lax/x", keys.mint("ES384", kid=None, iss=LAX_ISSUER)), "unknown_key")


def test_two_different_tokens_are_malformed(get, keys, refused):
    a, b = keys.mint("ES256"), keys.mint("EdDSA")
    with refused():
        expect_401(get("/api/x", a, headers={"Cookie": f"session={b}"}), "malformed")
    with refused():
        expect_401(get(f"/api/x?access_token={b}", a), "malformed")
    with refused():  # two Authorization headers
        expect_401(get("/api/x", headers=[("Authorization", f"Bearer {a}"), ("Authorization", f"Bearer {b}")]),
                   "malformed")
    # the same token in two places is one token
    expect_upstream(get(f"/api/x?access_token={a}", a))


def test_401_happens_before_policy_and_on_every_method(get, keys, refused):
    with refused():
        expect_401(get("/api/x", method="POST", body=b"{}"), "missing")
    with refused():
        expect_401(get("/api/x", keys.mint("ES256", iss="https://evil.example.com"), method="DELETE"), "bad_issuer")


# --------------------------------------------------------------------------- token locations


def test_token_from_query_parameter_is_removed_upstream(get, keys):
    t = keys.mint("ES256")
    assert expect_upstream(get(f"/api/p?access_token={t}&keep=1"))["path"] == "/api/p?keep=1"
    assert expect_upstream(get(f"/api/p?keep=1&access_token={t}&b=2"))["path"] == "/api/p?keep=1&b=2"
    assert expect_upstream(get(f"/api/p?access_token={t}"))["path"] == "/api/p"


def test_bad_token_in_query_parameter(get, keys, refused):
    with refused():
        expect_401(get(f"/api/p?access_token={keys.mint('ES256', key=keys.rogue_p256)}"), "bad_signature")


def test_token_from_cookie_is_removed_upstream(get, keys):
    t = keys.mint("EdDSA")
    h = expect_upstream(get("/api/c", headers={"Cookie": f"a=1; session={t}; b=2"}))["headers"]
    assert h["cookie"] == "a=1; b=2"
    h = expect_upstream(get("/api/c", headers={"Cookie": f"session={t}"}))["headers"]
    assert "session" not in h.get("cookie", "")


def test_bad_token_in_cookie(get, keys, refused):
    with refused():
        expect_401(get("/api/c", headers={"Cookie": f"a=1; session={keys.mint('ES256', aud='x')}"}), "bad_audience")


def test_forward_true_keeps_token_everywhere(get, keys):
    t = keys.mint("ES256", iss=FWD_ISSUER, aud=DROP)
    e = expect_upstream(get("/fwd/h", t))
    assert e["headers"]["authorization"] == f"Bearer {t}"
    e = expect_upstream(get(f"/fwd/q?token={t}&x=1"))
    assert e["path"] == f"/fwd/q?token={t}&x=1"
    e = expect_upstream(get("/fwd/c", headers={"Cookie": f"a=1; fwd_session={t}"}))
    assert e["headers"]["cookie"] == f"a=1; fwd_session={t}"


def test_from_headers_default_applies_when_only_cookies_are_configured(get, keys):
    t = keys.mint("ES256")
    expect_upstream(get("/cookie-provider/x", headers={"Cookie": f"cookie_token={t}"}))
    expect_upstream(get("/cookie-provider/x", t))


def test_provider_locations_are_per_provider(get, keys, refused):
    # corp reads ?access_token, fwd reads ?token: a corp token in ?token on /api is no token
    with refused():
        expect_401(get(f"/api/x?token={keys.mint('ES256')}"), "missing")


# --------------------------------------------------------------------------- anonymous / disabled


def test_anonymous_rule(get, keys, refused):
    e = expect_upstream(get("/public/page"))
    assert "authorization" not in e["headers"]
    with refused():
        expect_401(get("/public/page", keys.mint("ES256", key=keys.rogue_p256)), "bad_signature")
    with refused():
        expect_401(get("/public/page", "garbage"), "malformed")
    e = expect_upstream(get("/public/page", keys.mint("ES256")))
    assert "authorization" not in e["headers"], "a valid token on an anonymous rule is still removed"


def test_disabled_rule_leaves_request_untouched(get):
    for value in ("Bearer a.b", "Bearer " + "x" * 9000, "Basic Zm9vOmJhcg=="):
        e = expect_upstream(get("/healthz", headers={"Authorization": value}))
        assert e["headers"]["authorization"] == value
    assert expect_upstream(get("/healthz?access_token=junk"))["path"] == "/healthz?access_token=junk"


# --------------------------------------------------------------------------- rule matching


def test_no_matching_rule(get, keys, refused):
    with refused():
        expect_403(get("/nothing", keys.mint("ES256")), "no_matching_rule")
    with refused():
        expect_403(get("/"), "no_matching_rule")


def test_exact_path_rule(get, keys, refused):
    with refused():
        expect_401(get("/exact"), "missing")
    with refused():
        expect_401(get("/exact?q=1"), "missing")  # query is not part of the path
    with refused():
        expect_403(get("/exact/more"), "no_matching_rule")
    expect_upstream(get("/exact", keys.mint("ES256")))


def test_method_rule(get, refused):
    with refused():
        expect_401(get("/get-only/x"), "missing")
    with refused():
        expect_403(get("/get-only/x", method="POST", body=b""), "no_matching_rule")


def test_host_rule(get, refused):
    with refused():
        expect_401(get("/hosts/x", authority="svc.example.com"), "missing")
    with refused():
        expect_401(get("/hosts/x", authority="API.Test:8443"), "missing")
    with refused():
        expect_403(get("/hosts/x", authority="example.com"), "no_matching_rule")
    with refused():
        expect_403(get("/hosts/x", authority="evil.com"), "no_matching_rule")


def test_path_is_normalized_before_matching(get, refused):
    # normalize_path + merge_slashes in the HCM: no way around a rule with dot segments
    for path in ("/public/../api/x", "/public/%2e%2e/api/x", "//api/x", "/public/./../api/x"):
        with refused():
            expect_401(get(path), "missing")
    # escaped slashes: Envoy redirects to the unescaped path (path_with_escaped_slashes_action)
    for path in ("/public/..%2Fapi/x", "/public%2F..%2Fapi/x", "/public/..%5Capi/x"):
        with refused():
            resp = get(path)
        assert (resp.status, resp.header("location")) == (307, "/api/x"), (path, resp)


# --------------------------------------------------------------------------- junk: exact answers, never 5xx
# Each case names its exact answer: a 401 reason, or an HTTP status that Envoy's own HTTP/1
# codec answers before any filter runs (then the body is Envoy's, not jwt-guard's JSON).
ENVOY_400 = 400  # Envoy's codec: invalid character in a header value
ENVOY_431 = 431  # Envoy's codec: request headers over max_request_headers_kb (60 KiB)


def _junk(keys: KeySet) -> list[tuple[str, bytes | str, str | int]]:
    claims = keys.claims()
    return [
        ("empty", "", "missing"),
        # Envoy strips trailing whitespace from header values, so the filter sees "Bearer": the
        # scheme with an empty token, malformed like an empty ?access_token= or session=.
        ("only scheme", "Bearer ", "malformed"),
        ("scheme and spaces", "Bearer     ", "malformed"),
        ("3 dots", "Bearer ...", "malformed"),
        ("2 dots", "Bearer ..", "malformed"),
        ("huge", "Bearer " + "A" * 60000, "too_large"),
        ("huge three parts", "Bearer " + ".".join(["A" * 20000] * 3), "too_large"),
        ("over Envoy's header limit", "Bearer " + "A" * 70000, ENVOY_431),
        ("NUL byte", b"Bearer a\x00b.c.d", ENVOY_400),
        ("control character", b"Bearer a\x01b.c.d", ENVOY_400),
        ("non-UTF8 bytes", b"Bearer \xff\xfe\xfd.\xc3\x28.\x80", "malformed"),
        ("base64 of junk JSON", f"Bearer {b64url('[1,2')}.{b64url('{{')}.{b64url('x')}", "malformed"),
        ("JSON array header", f"Bearer {b64url('[]')}.{b64url_json(claims)}.c2ln", "malformed"),
        ("alg none, empty signature", f"Bearer {unsigned({'alg': 'none'}, claims, b'')}", "unsupported_algorithm"),
        ("alg none, uppercase", f"Bearer {unsigned({'alg': 'NONE'}, claims)}", "unsupported_algorithm"),
        ("alg number", f"Bearer {unsigned({'alg': 256}, claims)}", "malformed"),
        ("kid object", f"Bearer {unsigned({'alg': 'ES256', 'kid': {'a': 1}}, claims)}", "malformed"),
        ("JWE-like 5 parts", "Bearer " + ".".join(b64url(p) for p in
                                                  ['{"alg":"dir","enc":"A128GCM"}', "", "iv", "ct", "tag"]),
         "malformed"),
        ("unicode", "Bearer tök.én.sig", "malformed"),
        ("whitespace inside", "Bearer a. b.c", "malformed"),
        ("tab inside", "Bearer a.\tb.c", "malformed"),
        ("percent-encoded", "Bearer %41.%42.%43", "malformed"),
        # 5000 levels base64url-encode to more than 8 KiB: refused for size before parsing.
        # Nesting under the size limit: test_contract.py test_signed_deeply_nested_claims.
        ("deeply nested JSON", f"Bearer {b64url_json({'alg': 'ES256'})}.{b64url('[' * 5000 + ']' * 5000)}.c2ln",
         "too_large"),
        # json.dumps(1e400) writes Infinity, which is not JSON. A real huge number:
        # test_contract.py test_signed_huge_numeric_date.
        ("exp Infinity (not JSON)",
         f"Bearer {unsigned({'alg': 'ES256', 'kid': 'k-ES256'}, dict(claims, exp=1e400))}", "malformed"),
        ("negative exp", f"Bearer {unsigned({'alg': 'ES256', 'kid': 'k-ES256'}, dict(claims, exp=-1))}", "malformed"),
    ]


def _check_answer(resp, expected: str | int) -> None:
    if isinstance(expected, int):  # answered by Envoy before the filter: no jwt-guard JSON
        assert resp.status == expected, resp
        assert resp.header("www-authenticate") is None and b"invalid_token" not in resp.body, resp
    else:
        expect_401(resp, expected)


def test_junk_authorization_never_5xx(get, keys, refused):
    failures = []
    for desc, value, expected in _junk(keys):
        with refused():
            resp = get("/api/x", headers={"Authorization": value})
        try:
            _check_answer(resp, expected)
        except AssertionError as e:
            failures.append(f"{desc}: expected {expected}: {e}")
    assert not failures, "\n".join(failures)


def test_junk_in_query_and_cookie_never_5xx(get, refused):
    failures = []
    for path, headers, expected in [
        ("/api/x?access_token=", {}, "malformed"),  # present but empty
        ("/api/x?access_token=%ff%fe", {}, "malformed"),  # decodes to non-UTF-8
        ("/api/x?access_token=a.b.c&access_token=d.e.f", {}, "malformed"),  # two different tokens
        ("/api/x?access_token", {}, "malformed"),  # no "=": present with an empty value
        ("/api/x", {"Cookie": "session="}, "malformed"),  # present but empty
        ("/api/x", {"Cookie": "session"}, "malformed"),  # no "=": session with an empty value, as Go reads it
        ("/api/x", {"Cookie": ";;;=;session=a.b.c;;"}, "malformed"),
        ("/api/x?" + "&".join(f"p{i}={i}" for i in range(500)), {}, "missing"),
        ("/api/x?access_token=" + quote("a b.c d.e"), {}, "malformed"),
    ]:
        with refused():
            resp = get(path, headers=headers)
        try:
            _check_answer(resp, expected)
        except AssertionError as e:
            failures.append(f"{path[:60]} {headers}: expected {expected}: {e}")
    assert not failures, "\n".join(failures)


# The same junk gets the same answer wherever the token was looked for. Envoy strips the
# trailing space of "Authorization: Bearer ", so the filter sees "Bearer": the scheme with an
# empty token, malformed like an empty ?access_token= or session= cookie.
def test_empty_token_same_reason_everywhere(get, refused):
    answers = {}
    for where, path, headers in [
        ("Authorization: Bearer ", "/api/x", {"Authorization": "Bearer "}),
        ("?access_token=", "/api/x?access_token=", {}),
        ("Cookie: session=", "/api/x", {"Cookie": "session="}),
    ]:
        with refused():
            resp = get(path, headers=headers)
        assert resp.status == 401, resp
        answers[where] = resp.json()["reason"]
    assert set(answers.values()) == {"malformed"}, answers
