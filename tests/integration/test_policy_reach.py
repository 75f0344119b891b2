"""Policy reach (issue #19) through real Envoy: deny rules (after authentication, before the allow
rule's conditions; fail closed), fall_through, negation (roles/scopes `none`, claims
`not_values`), principals, header conditions and custom refusals (status, body, challenge),
with the counters each decision increments; and a refused 401-lie configuration.

One Envoy, one listener; the client's address is the connection's (client_ip peer), picked
with `source=`.
"""

from __future__ import annotations

import time

import pytest

from conftest import expect_401, expect_403, expect_upstream, start_stack
from harness import Envoy, bootstrap, listener, route, wasm_filter
from tokens import AUDIENCE, DROP, ISSUER, KeySet

PREFIX = "jwt-guard: invalid configuration: "


def reach_config(keys: KeySet) -> dict:
    return {
        "realm": "api",
        "roles_claim": "roles",
        "scopes_claim": "scope",
        "client_ip": {"from": "peer"},
        "providers": {"corp": {"issuer": ISSUER, "audiences": [AUDIENCE], "jwks": keys.jwks(["ES256"])}},
        "rules": [
            # Deny rules, checked in order after authentication.
            {"name": "banned", "action": "deny", "match": {"prefix": "/api"},
             "headers": [{"name": "x-banned", "present": True}]},
            {"name": "hide-admin", "action": "deny", "match": {"prefix": "/admin"},
             "roles": {"none": ["admin"]}, "refusal": {"status": 404, "body": "not found"}},
            {"name": "deny-net", "action": "deny", "match": {"prefix": "/api/net"},
             "source_ips": {"allow": ["127.0.0.5"]}},
            {"name": "health-banned", "action": "deny", "match": {"prefix": "/healthz"},
             "headers": [{"name": "x-banned", "present": True}]},
            # Allow rules.
            {"name": "healthz", "match": {"prefix": "/healthz"}, "disabled": True},
            {"name": "admin", "match": {"prefix": "/admin"}, "roles": {"any": ["admin"]},
             "refusal": {"status": 404, "body": "not found", "for": ["forbidden", "unauthorized"]}},
            {"name": "ro", "match": {"prefix": "/api/ro"}, "scopes": {"none": ["orders:write"]}},
            {"name": "users", "match": {"prefix": "/api/users"}, "roles": {"none": ["admin"]}},
            {"name": "tenants", "match": {"prefix": "/api/tenants"},
             "claims": [{"name": "tenant", "not_values": ["initech"]}]},
            {"name": "idp", "match": {"prefix": "/api/idp"},
             "principals": {"any": [f"{ISSUER}/*"], "none": ["*/mallory"]}},
            {"name": "anon-any", "match": {"prefix": "/anon/any"}, "allow_anonymous": True,
             "principals": {"any": ["*"]}},
            {"name": "anon-none", "match": {"prefix": "/anon/none"}, "allow_anonymous": True,
             "principals": {"none": ["*/alice"]}},
            {"name": "hdr", "match": {"prefix": "/api/hdr"},
             "headers": [{"name": "x-tenant", "values": ["acme*"], "not_values": ["*-test"]}]},
            {"name": "ft-admin", "match": {"prefix": "/ft"}, "roles": {"any": ["admin"]}, "fall_through": True},
            {"name": "ft-read", "match": {"prefix": "/ft/read"}, "roles": {"any": ["user"]}},
            {"name": "fs-admin", "match": {"prefix": "/fs"}, "roles": {"any": ["admin"]}, "fall_through": True},
            {"name": "fs-anon", "match": {"prefix": "/fs"}, "allow_anonymous": True},
            {"name": "fa-admin", "match": {"prefix": "/fa"}, "allow_anonymous": True,
             "roles": {"any": ["admin"]}, "fall_through": True,
             "refusal": {"status": 401, "for": ["unauthorized"], "body": "log in"}},
            {"name": "fa-public", "match": {"prefix": "/fa/public"}, "allow_anonymous": True},
            {"name": "teapot", "match": {"prefix": "/teapot"}, "roles": {"any": ["nobody"]},
             "refusal": {"status": 418}},
            {"name": "api", "match": {"prefix": "/"}},
        ],
    }


@pytest.fixture(scope="module")
def stack(request, upstream, keys, wasm):
    return start_stack(request, upstream, "policy-reach", [
        listener("reach", 0, [wasm_filter(reach_config(keys))], routes=[
            route("/bound-to-deny", "r-deny", metadata={"filter_metadata": {"jwt_guard": {"rule": "banned"}}}),
            route("/", "r-default"),
        ]),
    ])


def tok(keys: KeySet, roles=None, **claims) -> str:
    if roles is not None:
        claims["roles"] = roles
    return keys.mint("ES256", **claims)


def call(stack, path: str, token: str | None = None, headers=None, **kw):
    h = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    if token:
        h.append(("Authorization", f"Bearer {token}"))
    return stack.get("reach", path, headers=h, **kw)


def counts(stack) -> dict[str, int]:
    return stack.envoy.stats("jwt_guard")


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """The counters that moved, without the prefix and the token cache's."""
    out = {}
    for name, value in after.items():
        moved = value - before.get(name, 0)
        if moved and ".token_cache." not in name:
            out[name.removeprefix("wasmcustom.jwt_guard.")] = moved
    return out


def expected_counts(rule: str, series: str) -> dict[str, int]:
    return {series: 1, f"rule.{rule}.{series}": 1, f"provider.corp.{series}": 1}


# --------------------------------------------------------------------------- deny rules


def test_a_deny_rule_refuses_after_authentication_and_is_counted(stack, keys, refused):
    t = tok(keys)
    expect_upstream(call(stack, "/api/x", t))
    before = counts(stack)
    with refused():
        expect_403(call(stack, "/api/x", t, {"X-Banned": "1"}), "denied")
    assert delta(before, counts(stack)) == expected_counts("banned", "refused.403.denied")
    # Authentication first: a bad or missing token is still the allow rule's 401.
    now = int(time.time())
    with refused():
        expect_401(call(stack, "/api/x", tok(keys, exp=now - 3600, iat=now - 7200), {"X-Banned": "1"}), "expired")
    with refused():
        expect_401(call(stack, "/api/x", None, {"X-Banned": "1"}), "missing")


def test_a_deny_rule_fails_closed_on_what_it_cannot_know(stack, keys, refused):
    t = tok(keys)
    with refused():
        expect_403(call(stack, "/api/net", t, source="127.0.0.5"), "denied")
    expect_upstream(call(stack, "/api/net", t, source="127.0.0.1"))


def test_deny_rules_apply_to_a_disabled_rule_without_identity(stack, keys, refused):
    expect_upstream(call(stack, "/healthz"))
    expect_upstream(call(stack, "/healthz", "not even a token"))
    with refused():
        expect_403(call(stack, "/healthz", None, {"X-Banned": "1"}), "denied")


def test_a_route_cannot_bind_a_deny_rule(stack, keys, refused):
    before = counts(stack)
    with refused():
        expect_403(call(stack, "/bound-to-deny", tok(keys)), "no_matching_rule")
    moved = delta(before, counts(stack))
    assert moved == {"refused.403.no_matching_rule": 1, "route_rule_unknown": 1}, moved


def test_custom_refusal_hides_the_admin_route_from_everybody(stack, keys, refused):
    expect_upstream(call(stack, "/admin/users", tok(keys, ["admin"])))
    before = counts(stack)
    for who, token in (("anonymous", None), ("user", tok(keys, ["user"])),
                       ("no roles", tok(keys))):
        with refused():
            r = call(stack, "/admin/users", token)
        assert (r.status, r.body) == (404, b"not found"), (who, r)
        assert r.header("content-type") == "text/plain", (who, r)
        assert r.all("www-authenticate") == [], (who, r)
    # The reason stays in the counters: the allow rule's 401, the deny rule's 403s.
    moved = delta(before, counts(stack))
    assert moved == {"refused.401.missing": 1, "rule.admin.refused.401.missing": 1,
                     "refused.403.denied": 2, "rule.hide-admin.refused.403.denied": 2,
                     "provider.corp.refused.403.denied": 2}, moved


# --------------------------------------------------------------------------- negation, principals


def test_none_and_not_values(stack, keys, refused):
    expect_upstream(call(stack, "/api/ro", tok(keys, scope="orders:read")))
    with refused():
        expect_403(call(stack, "/api/ro", tok(keys, scope="orders:read orders:write")), "forbidden_scope")
    expect_upstream(call(stack, "/api/users", tok(keys, ["user"])))
    with refused():
        expect_403(call(stack, "/api/users", tok(keys, ["user", "admin"])), "forbidden_role")
    expect_upstream(call(stack, "/api/tenants", tok(keys, tenant="acme")))
    expect_upstream(call(stack, "/api/tenants", tok(keys)))  # a missing claim has none of them
    for bad in ("initech", ["acme", "initech"]):
        with refused():
            expect_403(call(stack, "/api/tenants", tok(keys, tenant=bad)), "claim_mismatch")


def test_principals(stack, keys, refused):
    expect_upstream(call(stack, "/api/idp", tok(keys)))
    with refused():
        expect_403(call(stack, "/api/idp", tok(keys, sub="mallory")), "principal_mismatch")
    with refused():  # no sub: no principal, and only "*" fits that
        expect_403(call(stack, "/api/idp", keys.mint("ES256", sub=DROP)), "principal_mismatch")
    with refused():  # any needs a token: 401, not 403
        expect_401(call(stack, "/anon/any"), "missing")
    expect_upstream(call(stack, "/anon/any", tok(keys)))
    expect_upstream(call(stack, "/anon/none"))
    expect_upstream(call(stack, "/anon/none", tok(keys, sub="bob")))
    with refused():
        expect_403(call(stack, "/anon/none", tok(keys)), "principal_mismatch")


def test_header_conditions(stack, keys, refused):
    t = tok(keys)
    expect_upstream(call(stack, "/api/hdr", t, {"X-Tenant": "acme-1"}))
    for value in (None, "globex", "acme-test"):
        with refused():
            expect_403(call(stack, "/api/hdr", t, {"X-Tenant": value} if value else None), "header_mismatch")
    with refused():
        expect_403(call(stack, "/api/hdr", t, [("X-Tenant", "acme-1"), ("X-Tenant", "acme-2")]),
                   "header_ambiguous")


# --------------------------------------------------------------------------- fall_through


def test_fall_through_tries_the_next_rule_with_the_same_authentication(stack, keys, refused):
    expect_upstream(call(stack, "/ft/read", tok(keys, ["admin"])))
    before = counts(stack)
    expect_upstream(call(stack, "/ft/read", tok(keys, ["user"])))
    moved = delta(before, counts(stack))
    assert moved == {"allowed": 1, "rule.ft-read.allowed": 1, "provider.corp.allowed": 1}, moved
    # The next fitting rule is the catch-all "api", with the same authentication: it lets through.
    expect_upstream(call(stack, "/ft/write", tok(keys, ["user"])))
    # The next fitting rule takes anonymous callers (another authentication): the first refusal
    # stands, counted under the rule that refused.
    before = counts(stack)
    with refused():
        expect_403(call(stack, "/fs", tok(keys, ["user"])), "missing_role")
    assert delta(before, counts(stack)) == expected_counts("fs-admin", "refused.403.missing_role")
    with refused():  # a bad token never falls through
        expect_401(call(stack, "/ft/read", keys.mint("ES256", key=keys.rogue_p256)), "bad_signature")
    with refused():  # a required token that is missing is authentication's 401
        expect_401(call(stack, "/ft/read"), "missing")


def test_anonymous_fall_through_and_a_custom_401_keeps_its_challenge(stack, keys, refused):
    expect_upstream(call(stack, "/fa/public/x"))
    expect_upstream(call(stack, "/fa/public/x", tok(keys, ["user"])))
    with refused():
        r = call(stack, "/fa/other")
    assert (r.status, r.body) == (401, b"log in"), r
    assert r.header("content-type") == "text/plain", r
    assert r.all("www-authenticate") == ['Bearer realm="api"'], r
    with refused():  # its 403s are not covered by the refusal: standard
        expect_403(call(stack, "/fa/other", tok(keys, ["user"])), "missing_role")


def test_a_custom_status_without_body_keeps_the_standard_body(stack, keys, refused):
    with refused():
        r = call(stack, "/teapot", tok(keys))
    assert r.status == 418, r
    assert r.header("content-type") == "application/json", r
    assert r.json() == {"status": 418, "error": "insufficient_scope", "reason": "missing_role"}, r
    assert r.all("www-authenticate") == [], r


# --------------------------------------------------------------------------- refused configuration


@pytest.mark.parametrize("refusal,field", [
    ({"status": 401}, "rules[0].refusal.status"),
    ({"status": 401, "for": ["forbidden", "unauthorized"]}, "rules[0].refusal.status"),
    ({"status": 404, "for": ["unauthorized"], "colour": "red"}, "rules[0].refusal.colour"),
])
def test_a_401_lie_is_refused_at_configuration(keys, wasm, upstream, tmp_path, refusal, field):
    cfg = {"realm": "api", "providers": {"corp": {"issuer": ISSUER, "jwks": keys.jwks(["ES256"])}},
           "rules": [{"match": {"prefix": "/"}, "roles": {"any": ["admin"]}, "refusal": refusal}]}
    env = Envoy(bootstrap([listener("bad", 0, [wasm_filter(cfg)])], upstream.port), workdir=tmp_path, name="bad")
    try:
        rc = env.run_to_exit(timeout=60)
    finally:
        env.stop()
    lines = [ln for ln in env.log().splitlines() if PREFIX in ln]
    assert rc != 0 and len(lines) == 1, env.log_tail()
    assert lines[0].split(PREFIX, 1)[1].startswith(field + ":"), lines[0]
