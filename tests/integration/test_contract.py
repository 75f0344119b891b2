"""Promises of the documentation (README.md and docs/, the contract) that the other test files
did not pin yet, in real Envoy with tokens from PyJWT. Every refusal is checked for its exact
status, WWW-Authenticate and JSON body, and for never reaching the upstream.

One Envoy, started with `--component-log-level wasm:debug` (for the refusal log line), three
listeners:
  main     realm "api", client address from the peer; most rules below
  norealm  no "realm" in the configuration: the default realm
  xff      client_ip {"from": "xff", "trusted_hops": 2}: a client address that can be unknown
Counters are shared by every listener of one Envoy, so the counter tests compare snapshots
around a single request (the tests of a module run one at a time).
"""

from __future__ import annotations

import re
import time
from typing import Any, Callable

import pytest

from conftest import (DESCRIPTIONS, REASONS_401, REASONS_403, TOKEN_403, expect_401, expect_403, expect_upstream,
                      start_stack)
from harness import REPO_ROOT, filter_log_component, listener, wasm_filter
from tokens import AUDIENCE, DROP, ISSUER, KeySet, resign_with, unsigned

NOALG_ISSUER = "https://noalg.example.com"
CUSTOM_ISSUER = "https://custom-header.example.com"
RAW_ISSUER = "https://raw.example.com"
SKEW0_ISSUER = "https://skew0.example.com"
SKEW300_ISSUER = "https://skew300.example.com"
EVIL = "https://evil.example.com"


def without_alg(jwk: dict, kid: str) -> dict:
    """The key's public JWK as PyJWT's to_jwk writes it, with no "alg": the filter must infer it."""
    out = {k: v for k, v in jwk.items() if k != "alg"}
    out["kid"] = kid
    return out


def main_config(keys: KeySet) -> dict:
    es256 = keys.jwks(["ES256"])
    return {
        "realm": "api",
        "providers": {
            # defaults: clock skew 60 s, require_expiration, forward false, Authorization: Bearer
            "corp": {"issuer": ISSUER, "audiences": [AUDIENCE], "jwks": keys.jwks(["ES256", "RS256"]),
                     "max_lifetime_seconds": 3600},
            "noalg": {"issuer": NOALG_ISSUER, "jwks": {"keys": [
                without_alg(keys.keys["RS256"].jwk, "rsa"),
                without_alg(keys.keys["ES256"].jwk, "ec"),
                without_alg(keys.keys["HS256"].jwk, "oct"),
            ]}},
            # from_headers given: it replaces the default Authorization: Bearer
            "custom": {"issuer": CUSTOM_ISSUER, "jwks": es256,
                         "from_headers": [{"name": "x-api-token", "value_prefix": "Token "}]},
            "rawheader": {"issuer": RAW_ISSUER, "jwks": es256,
                          "from_headers": [{"name": "x-raw-token", "value_prefix": ""}]},
            "skew0": {"issuer": SKEW0_ISSUER, "jwks": es256, "clock_skew_seconds": 0},
            "skew300": {"issuer": SKEW300_ISSUER, "jwks": es256, "clock_skew_seconds": 300},
        },
        "rules": [
            {"match": {"prefix": "/api"}, "provider": "corp"},
            {"match": {"prefix": "/admin"}, "provider": "corp", "roles": {"any": ["admin"]}},
            {"match": {"prefix": "/dry"}, "provider": "corp", "dry_run": True, "roles": {"any": ["admin"]}},
            {"match": {"prefix": "/noalg"}, "provider": "noalg"},
            {"match": {"prefix": "/anon/scopes"}, "provider": "corp", "allow_anonymous": True,
             "scopes": {"any": ["orders:read"]}},
            {"match": {"prefix": "/anon/claims"}, "provider": "corp", "allow_anonymous": True,
             "claims": [{"name": "tenant", "values": ["acme"]}]},
            {"match": {"prefix": "/anon/bind"}, "provider": "corp", "allow_anonymous": True, "bind_ip_claim": "ip"},
            {"match": {"prefix": "/custom-header"}, "provider": "custom"},
            {"match": {"prefix": "/raw"}, "provider": "rawheader"},
            {"match": {"prefix": "/skew0"}, "provider": "skew0"},
            {"match": {"prefix": "/skew300"}, "provider": "skew300"},
            # no catch-all: anything else is 403 no_matching_rule
        ],
    }


def norealm_config(keys: KeySet) -> dict:
    return {
        "providers": {"corp": {"issuer": ISSUER, "jwks": keys.jwks(["ES256"])}},
        "rules": [{"match": {"prefix": "/"}, "provider": "corp", "roles": {"any": ["admin"]}}],
    }


def xff_config(keys: KeySet) -> dict:
    # The listener has use_remote_address: Envoy appends the TCP peer to X-Forwarded-For before
    # filters run, so a request without X-Forwarded-For has one entry, fewer than trusted_hops 2.
    corp = {"issuer": ISSUER, "jwks": keys.jwks(["ES256"])}
    return {
        "realm": "api",
        "client_ip": {"from": "xff", "trusted_hops": 2},
        "providers": {"corp": corp},
        "rules": [
            {"match": {"prefix": "/bind"}, "provider": "corp", "bind_ip_claim": "ip"},
            {"match": {"prefix": "/allow"}, "provider": "corp", "source_ips": {"allow": ["127.0.0.0/8"]}},
            {"match": {"prefix": "/deny"}, "provider": "corp", "source_ips": {"deny": ["10.0.0.0/8"]}},
        ],
    }


@pytest.fixture(scope="module")
def stack(request, upstream, keys, wasm):
    return start_stack(request, upstream, "contract", [
        listener("main", 0, [wasm_filter(main_config(keys))]),
        listener("norealm", 0, [wasm_filter(norealm_config(keys))]),
        listener("xff", 0, [wasm_filter(xff_config(keys))]),
    ], envoy_args=["--component-log-level", f"{filter_log_component()}:debug"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def get(stack) -> Callable[..., Any]:
    """GET on the main listener, with the token (if any) as Authorization: Bearer."""
    def _get(path: str, token: str | None = None, headers: dict | None = None, **kw: Any):
        h = dict(headers or {})
        if token is not None:
            h.update(bearer(token))
        return stack.get("main", path, headers=h, **kw)
    return _get


# --------------------------------------------------------------------------- order of checks
# docs/evaluation.md "Evaluation order" step 3: size, structure (malformed), alg (unsupported_algorithm), key
# (unknown_key), signature (bad_signature), exp (missing_expiration, expired), nbf, iat, iss,
# aud, lifetime. A token with two faults gets the reason of the earlier check (src/token/jws.rs parse,
# then src/authn/verify.rs check_signature, then check_claims in exactly this order).


def _two_faults(keys: KeySet) -> list[tuple[str, str, str]]:
    now = int(time.time())
    old = {"iat": now - 600, "exp": now - 120}  # expired 2 minutes ago, beyond the 60 s skew
    return [
        ("bad_signature", "forged + expired", keys.mint("ES256", key=keys.rogue_p256, **old)),
        ("expired", "expired + wrong issuer", keys.mint("ES256", iss=EVIL, **old)),
        ("not_yet_valid", "nbf in 5 min + bad audience", keys.mint("ES256", nbf=now + 300, aud="other")),
        ("bad_issuer", "bad issuer + bad audience", keys.mint("ES256", iss=EVIL, aud="other")),
        ("unknown_key", "unknown kid + expired", keys.mint("ES256", kid="nope", **old)),
        ("unsupported_algorithm", "alg none + expired", unsigned({"alg": "none"}, keys.claims(**old))),
        ("malformed", "exp is a string + forged", keys.mint("ES256", key=keys.rogue_p256, exp="tomorrow")),
        ("missing_expiration", "no exp + bad issuer", keys.mint("ES256", exp=DROP, iss=EVIL)),
        ("issued_in_future", "iat in 5 min + bad issuer",
         keys.mint("ES256", iat=now + 300, exp=now + 600, iss=EVIL)),
        ("bad_audience", "bad audience + lifetime 2 h > 1 h",
         keys.mint("ES256", aud="other", iat=now, exp=now + 7200)),
        # more pairs along the same order
        ("too_large", "9 KiB + alg none", unsigned({"alg": "none"}, keys.claims(pad="x" * 9000))),
        ("malformed", "crit header + alg none", unsigned({"alg": "none", "crit": ["exp"]}, keys.claims())),
        ("unsupported_algorithm", "alg none + unknown kid", unsigned({"alg": "none", "kid": "nope"}, keys.claims())),
        ("unsupported_algorithm", "ES384 token with the ES256 key's kid + expired",
         keys.mint("ES384", kid=keys.keys["ES256"].kid, **old)),
        ("expired", "expired + nbf in the future", keys.mint("ES256", nbf=now + 300, **old)),
        ("not_yet_valid", "nbf + iat in the future", keys.mint("ES256", nbf=now + 300, iat=now + 300, exp=now + 600)),
        ("bad_issuer", "bad issuer + lifetime exceeded", keys.mint("ES256", iss=EVIL, iat=now, exp=now + 7200)),
    ]


def test_two_faults_get_the_earlier_reason(get, keys, refused):
    failures = []
    for reason, desc, token in _two_faults(keys):
        with refused():
            resp = get("/api/x", token)
        try:
            expect_401(resp, reason)
        except AssertionError as e:
            failures.append(f"[{reason}] {desc}: {e}")
    assert not failures, "\n".join(failures)


# --------------------------------------------------------------------------- algorithm from a JWK without alg
# docs/configuration.md "Keys": RSA -> RS256 only, EC P-256 -> ES256, oct -> HS256 only. The token names the key
# by kid, so only the algorithm can be the problem.


def test_key_algorithm_is_inferred_from_a_jwk_without_alg(get, keys, refused):
    assert all("alg" not in k for k in main_config(keys)["providers"]["noalg"]["jwks"]["keys"])
    hs_secret = keys.keys["HS256"].private  # 64 bytes: long enough for HS512 too
    accepted = [
        ("RSA key, RS256", keys.mint("RS256", kid="rsa", iss=NOALG_ISSUER)),
        ("EC P-256 key, ES256", keys.mint("ES256", kid="ec", iss=NOALG_ISSUER)),
        ("oct key, HS256", keys.mint("HS256", kid="oct", iss=NOALG_ISSUER)),
    ]
    for desc, token in accepted:
        assert expect_upstream(get("/noalg/x", token)), desc
    refused_algs = [
        ("RSA key, PS256", keys.mint("PS256", kid="rsa", iss=NOALG_ISSUER)),
        ("RSA key, RS512", keys.mint("RS512", kid="rsa", iss=NOALG_ISSUER)),
        ("oct key, HS512", keys.mint("HS512", kid="oct", key=hs_secret, iss=NOALG_ISSUER)),
        ("oct key, HS384", keys.mint("HS384", kid="oct", key=hs_secret, iss=NOALG_ISSUER)),
    ]
    for desc, token in refused_algs:
        with refused():
            resp = get("/noalg/x", token)
        expect_401(resp, "unsupported_algorithm")


# --------------------------------------------------------------------------- anonymous rules needing a token
# docs/evaluation.md "Evaluation order" step 2: allow_anonymous with roles, scopes, claims or
# bind_ip_claim answers 401 missing without a token (roles: test_policy.py). A token that meets
# the requirement still passes.


@pytest.mark.parametrize("path, good_claims", [
    ("/anon/scopes", {"scope": "orders:read"}),
    ("/anon/claims", {"tenant": "acme"}),
    ("/anon/bind", {"ip": "127.0.0.1"}),
], ids=["scopes", "claims", "bind_ip_claim"])
def test_anonymous_rule_with_token_requirement_needs_a_token(get, keys, refused, path, good_claims):
    with refused():
        expect_401(get(path), "missing")
    expect_upstream(get(path, keys.mint("ES256", **good_claims)))


# --------------------------------------------------------------------------- custom token headers


def test_custom_from_headers_replaces_the_default(get, keys, refused):
    t = keys.mint("ES256", iss=CUSTOM_ISSUER)
    e = expect_upstream(get("/custom-header/x", headers={"X-Api-Token": f"Token {t}", "x-other": "kept"}))
    assert "x-api-token" not in e["headers"], "forward=false removes the custom header too"
    assert e["headers"]["x-other"] == "kept"
    expect_upstream(get("/custom-header/x", headers={"X-Api-Token": f"token {t}"}))  # prefix case-insensitive
    with refused():  # Authorization: Bearer is not a location of this provider any more
        expect_401(get("/custom-header/x", t), "missing")
    with refused():  # the header without its prefix is ignored
        expect_401(get("/custom-header/x", headers={"X-Api-Token": t}), "missing")


def test_empty_value_prefix_takes_the_whole_header_value(get, keys, refused):
    t = keys.mint("ES256", iss=RAW_ISSUER)
    e = expect_upstream(get("/raw/x", headers={"X-Raw-Token": t}))
    assert "x-raw-token" not in e["headers"]
    with refused():  # "Bearer <t>" is the token now, and a space is no base64url
        expect_401(get("/raw/x", headers={"X-Raw-Token": f"Bearer {t}"}), "malformed")


# --------------------------------------------------------------------------- clock skew


@pytest.mark.parametrize("path, issuer, skew", [("/skew0", SKEW0_ISSUER, 0), ("/skew300", SKEW300_ISSUER, 300)],
                         ids=["skew0", "skew300"])
def test_clock_skew_seconds(get, keys, refused, path, issuer, skew):
    now = int(time.time())
    cases = [  # (seconds past exp / before nbf, claims)
        (30, {"iat": now - 600, "exp": now - 30}),  # expired 30 s ago
        (120, {"nbf": now + 120}),  # valid in 2 minutes
        (400, {"iat": now - 600, "exp": now - 400}),  # beyond either skew
        (400, {"nbf": now + 400}),
    ]
    for off_by, claims in cases:
        token = keys.mint("ES256", iss=issuer, **claims)
        if off_by <= skew:
            expect_upstream(get(f"{path}/x", token))
        else:
            with refused():
                expect_401(get(f"{path}/x", token), "expired" if "exp" in claims else "not_yet_valid")


# --------------------------------------------------------------------------- realm, paths


def test_default_realm(stack, keys, refused):
    now = int(time.time())
    with refused():
        expect_401(stack.get("norealm", "/x"), "missing", realm="jwt-guard")
    with refused():
        expect_401(stack.get("norealm", "/x", headers=bearer(keys.mint("ES256", iat=now - 600, exp=now - 120))),
                   "expired", realm="jwt-guard")
    with refused():
        expect_403(stack.get("norealm", "/x", headers=bearer(keys.mint("ES256"))), "missing_role", realm="jwt-guard")


def test_paths_match_case_sensitively(get, keys, refused):
    user = keys.mint("ES256", roles=["user"])
    with refused():  # the /admin rule does match /admin...
        expect_403(get("/admin/x", user), "missing_role")
    for path in ("/Admin/x", "/ADMIN", "/aDmin"):  # ...and nothing else matches these
        with refused():
            expect_403(get(path, user), "no_matching_rule")
    expect_upstream(get("/admin/x", keys.mint("ES256", roles=["admin"])))


# --------------------------------------------------------------------------- unknown client address
# docs/configuration.md "Client address": an address that cannot be determined never passes an address check.


def test_unknown_client_address_never_passes(stack, keys, refused):
    # Requests come from 127.0.0.5, which Envoy (use_remote_address) appends to X-Forwarded-For.
    # Not from 127.0.0.1: for a peer of exactly 127.0.0.1 Envoy appends its own non-loopback
    # address instead. Without a client-sent entry the filter sees one entry, fewer than 2 hops.
    bound = keys.mint("ES256", ip="127.0.0.1")
    for path, reason in (("/bind", "ip_not_bound"), ("/allow", "ip_not_allowed"), ("/deny", "ip_not_allowed")):
        with refused():
            expect_403(stack.get("xff", path, headers=bearer(bound), source="127.0.0.5"), reason)
        # control: with a client entry the address is known (127.0.0.1) and passes
        e = expect_upstream(stack.get("xff", path, headers={**bearer(bound), "X-Forwarded-For": "127.0.0.1"},
                                      source="127.0.0.5"))
        assert e["headers"]["x-forwarded-for"] == "127.0.0.1,127.0.0.5"


# --------------------------------------------------------------------------- counters
# docs/operations.md "Logs and stats": wasmcustom.jwt_guard.allowed, .dry_run, .refused.<status>.<reason>,
# overall, per rule and per provider.


def _jwt_guard_stats(stack) -> dict[str, int]:
    return stack.envoy.stats("jwt_guard")


def _outcome_counters(prefix: str, no_rule: bool) -> set[str]:
    names = {f"{prefix}.allowed", f"{prefix}.dry_run"}
    names |= {f"{prefix}.refused.401.{r}" for r in REASONS_401}
    names |= {f"{prefix}.refused.403.{r}" for r in REASONS_403 if no_rule or r != "no_matching_rule"}
    return names


def test_counter_names(stack, keys):
    """Overall, per rule (its name, or rule_<index>) and per provider: nothing else, and
    nothing from requests (the stack has three listeners, each with its own configuration)."""
    names = {n for n in _jwt_guard_stats(stack) if n.startswith("wasmcustom.")}
    p = "wasmcustom.jwt_guard"
    expected = _outcome_counters(p, no_rule=True)
    expected |= {f"{p}.token_cache.hit", f"{p}.token_cache.miss", f"{p}.route_rule_unknown"}
    for config in (main_config(keys), norealm_config(keys), xff_config(keys)):
        for i, rule in enumerate(config["rules"]):
            expected |= _outcome_counters(f"{p}.rule.{rule.get('name', f'rule_{i}')}", no_rule=False)
        for name in config["providers"]:
            expected |= _outcome_counters(f"{p}.provider.{name}", no_rule=False)
    assert names == expected


COUNTER_CASES = ["allow", "401", "401 missing", "403", "403 no rule", "dry run"]


def _counter_case(keys: KeySet, cid: str) -> tuple[str, dict, int, str, str | None, str | None]:
    """(path, headers, expected status, the outcome counter that must go up by exactly 1 —
    overall, under the rule and under the provider, when there is one)."""
    now = int(time.time())
    return {
        "allow": ("/api/x", bearer(keys.mint("ES256")), 200, "allowed", "rule_0", "corp"),
        "401": ("/api/x", bearer(keys.mint("ES256", iat=now - 600, exp=now - 120)), 401, "refused.401.expired",
                "rule_0", "corp"),
        # no token: no provider judged it
        "401 missing": ("/api/x", {}, 401, "refused.401.missing", "rule_0", None),
        "403": ("/admin/x", bearer(keys.mint("ES256", roles=["user"])), 403, "refused.403.missing_role",
                "rule_1", "corp"),
        "403 no rule": ("/nothing", {}, 403, "refused.403.no_matching_rule", None, None),
        # a dry run counts as dry_run only: not as the refusal, not as allowed
        "dry run": ("/dry/x", bearer(keys.mint("ES256", roles=["user"])), 200, "dry_run", "rule_2", "corp"),
    }[cid]


@pytest.mark.parametrize("cid", COUNTER_CASES)
def test_one_request_moves_one_counter_by_one(stack, keys, cid):
    path, headers, status, counter, rule, provider = _counter_case(keys, cid)
    p = "wasmcustom.jwt_guard"
    outcome = {f"{p}.{counter}": 1}
    if rule:
        outcome[f"{p}.rule.{rule}.{counter}"] = 1
    if provider:
        outcome[f"{p}.provider.{provider}.{counter}"] = 1
    before = _jwt_guard_stats(stack)
    resp = stack.get("main", path, headers=headers)
    assert resp.status == status, resp
    after = _jwt_guard_stats(stack)
    changed = {n: after.get(n, 0) - before.get(n, 0) for n in set(before) | set(after)
               if after.get(n, 0) != before.get(n, 0)}
    expected = dict(outcome)
    if headers:  # a token never seen before: one cache miss too
        expected[f"{p}.token_cache.miss"] = 1
    assert changed == expected
    if headers and status == 200:  # the same token again: a hit, and the same decision
        before = _jwt_guard_stats(stack)
        assert stack.get("main", path, headers=headers).status == status
        after = _jwt_guard_stats(stack)
        changed = {n: after[n] - before.get(n, 0) for n in after if after[n] != before.get(n, 0)}
        assert changed == {**outcome, f"{p}.token_cache.hit": 1}


# --------------------------------------------------------------------------- log lines
# docs/operations.md "Logs and stats": dry-run refusals at info; every refusal at debug with the wasm log
# component at debug. Only the path is logged, never the query string (tokens can be there).


def test_dry_run_is_logged_at_info(stack, keys):
    since = stack.envoy.log_size()
    e = expect_upstream(stack.get("main", "/dry/x?note=not-logged", headers=bearer(keys.mint("ES256", roles=["user"]))))
    assert e["headers"]["x-jwt-guard-dry-run"] == "403 missing_role"
    line = stack.envoy.wait_for_log("jwt-guard dry run: would refuse 403 missing_role on /dry/x", since=since)
    assert "[info]" in line, line
    assert line.endswith("jwt-guard dry run: would refuse 403 missing_role on /dry/x"), line


def test_refusal_is_logged_at_debug(stack, keys, refused):
    now = int(time.time())
    since = stack.envoy.log_size()
    with refused():
        expect_401(stack.get("main", "/api/x?q=not-logged",
                             headers=bearer(keys.mint("ES256", iat=now - 600, exp=now - 120))), "expired")
    line = stack.envoy.wait_for_log("jwt-guard: 401 expired for GET /api/x", since=since)
    assert "[debug]" in line, line
    assert line.endswith("jwt-guard: 401 expired for GET /api/x"), line
    since = stack.envoy.log_size()
    with refused():
        expect_403(stack.get("main", "/admin/y", method="DELETE", headers=bearer(keys.mint("ES256"))), "missing_role")
    stack.envoy.wait_for_log("jwt-guard: 403 missing_role for DELETE /admin/y", since=since)


# --------------------------------------------------------------------------- junk that is well signed
# Parsing limits that only a correctly signed token can show: the claims are checked for
# structure before the signature, but a refusal here must not depend on the signature failing.


def _claims_json(extra: str) -> bytes:
    """Valid claims for corp as JSON text written by hand, `extra` (raw JSON members) appended:
    Python's json module cannot write what these tests need."""
    now = int(time.time())
    return (f'{{"iss":"{ISSUER}","aud":"{AUDIENCE}","sub":"alice","iat":{now},{extra}}}').encode()


def test_signed_deeply_nested_claims(get, keys, refused):
    now = int(time.time())

    def nested(depth: int) -> str:
        raw = _claims_json(f'"exp":{now + 300},"a":' + "[" * depth + "]" * depth)
        return resign_with(keys.mint("ES256"), keys, "ES256", claims_raw=raw)

    # 100 levels (+1 for the claims object) is within serde_json's recursion limit of 128
    e = expect_upstream(get("/api/x", nested(100)))
    assert "authorization" not in e["headers"]
    deep = nested(200)
    assert len(deep) < 8192, "must stay under the size limit: this is about nesting, not size"
    with refused():
        expect_401(get("/api/x", deep), "malformed")


def test_signed_huge_numeric_date(get, keys, refused):
    """exp = 123456789012345678901234567890: valid JSON, but no u64 holds it; serde_json reads it
    as the float 1.2e29 and src/token/jws.rs numeric_date refuses floats from 1e18 on -> malformed.
    (exp = 1e400 cannot be made with json.dumps, which writes Infinity, not JSON.)"""
    raw = _claims_json('"exp":123456789012345678901234567890')
    token = resign_with(keys.mint("ES256"), keys, "ES256", claims_raw=raw)
    with refused():
        expect_401(get("/api/x", token), "malformed")
    # control: the same hand-written claims with an ordinary exp are accepted
    ok = resign_with(keys.mint("ES256"), keys, "ES256", claims_raw=_claims_json(f'"exp":{int(time.time()) + 300}'))
    expect_upstream(get("/api/x", ok))


# --------------------------------------------------------------------------- one source for reason codes
# conftest.py reads the codes and descriptions from src/reason.rs; docs/evaluation.md (where the
# responses and the evaluation order are documented) must list the same.

EVALUATION = (REPO_ROOT / "docs" / "evaluation.md").read_text()


def _section(start: str, end: str) -> str:
    a = EVALUATION.index(start)
    return EVALUATION[a:EVALUATION.index(end, a)]


def test_docs_401_reason_list_matches_the_code():
    text = _section("`reason` ∈", "Descriptions are fixed texts")
    assert re.findall(r"`([a-z_]+)`", text)[1:] == REASONS_401  # [0] is `reason` itself


def test_docs_403_table_matches_the_code():
    table = _section("| reason | error | `WWW-Authenticate` |", "A refused request never reaches")
    rows = [ln for ln in table.splitlines()[2:] if ln.startswith("|")]
    seen: dict[str, tuple[str, str]] = {}
    for row in rows:
        reasons, error, challenge = [cell.strip() for cell in row.strip("|").split("|")]
        for code in re.findall(r"`([a-z_]+)`", reasons):
            assert code not in seen, f"{code} is in two rows"
            seen[code] = (error.strip("`"), challenge)
    assert sorted(seen) == sorted(REASONS_403)
    for code, (error, challenge) in seen.items():
        about_token = code in TOKEN_403
        assert error == ("insufficient_scope" if about_token else "access_denied"), code
        assert challenge.startswith("none") != about_token, (code, challenge)


def test_docs_evaluation_order_names_every_reason():
    text = _section("## Evaluation order", "## Responses")
    named = set(re.findall(r"`([a-z_]+)`", text))
    missing = set(REASONS_401 + REASONS_403) - named
    assert not missing, f"docs/evaluation.md 'Evaluation order' never names: {sorted(missing)}"


def test_docs_example_description_matches_the_code():
    example = _section("Any other authentication failure:", "`reason` ∈")
    desc = re.search(r'error_description="([^"]*)"', example).group(1)
    reason = re.search(r'"reason":"([a-z_]+)"', example).group(1)
    assert DESCRIPTIONS[reason] == desc


def test_descriptions_are_fixed_quotable_texts():
    # RFC 6750 §3: error_description is %x20-21 / %x23-5B / %x5D-7E (no '"', no '\\').
    for code, text in DESCRIPTIONS.items():
        assert text and all(0x20 <= ord(ch) <= 0x7E and ch not in '"\\' for ch in text), code


# --------------------------------------------------------------------------- links between the docs
# Every relative link of README.md, ARCHITECTURE.md and docs/*.md names a file that exists, and a
# section of a Markdown file that it has (GitHub's anchors: lower case, punctuation dropped,
# spaces as hyphens, -1, -2, ... for repeated headings).

DOC_FILES = [p for p in [REPO_ROOT / "README.md", REPO_ROOT / "ARCHITECTURE.md"] if p.exists()] + \
    sorted((REPO_ROOT / "docs").glob("*.md"))


def _without_fences(text: str) -> str:
    return re.sub(r"^```.*?^```[^\n]*$", "", text, flags=re.M | re.S)


def _prose(text: str) -> str:
    """The Markdown outside fenced code blocks and inline code spans."""
    return re.sub(r"`[^`\n]*`", "", _without_fences(text))


def _anchors(path) -> set[str]:
    anchors: set[str] = set()
    count: dict[str, int] = {}
    for heading in re.findall(r"^#{1,6} (.+)$", _without_fences(path.read_text()), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchors.add(f"{slug}-{count[slug]}" if slug in count else slug)
        count[slug] = count.get(slug, 0) + 1
    return anchors


def test_relative_links_in_the_docs_resolve():
    assert any(p.parent.name == "docs" for p in DOC_FILES), "docs/*.md are gone"
    broken = []
    for path in DOC_FILES:
        for target in re.findall(r"\]\(([^)\s]+)\)", _prose(path.read_text())):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):
                continue  # https:, mailto:
            file, _, anchor = target.partition("#")
            dest = (path.parent / file).resolve() if file else path
            where = f"{path.relative_to(REPO_ROOT)}: ({target})"
            if not dest.exists():
                broken.append(f"{where}: no such file")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                broken.append(f"{where}: no such section")
    assert not broken, "\n".join(broken)
