"""Authorization (issue #3): every 403 reason through real Envoy, with Envoy's own client-address
detection (use_remote_address + xff_num_trusted_hops), Envoy's geoip filter on MaxMind's test
database, IPv6, dry-run and route names.

One Envoy, four listeners (one per distinct top-level filter setting):
  peer  HCM use_remote_address, xff_num_trusted_hops 0; client_ip peer; listens on :: (v4 + v6)
  hops  HCM use_remote_address, xff_num_trusted_hops 1; client_ip peer (= XFF-derived address)
  xff   HCM use_remote_address, xff_num_trusted_hops 0; client_ip {"from": "xff", "trusted_hops": 2}
  dry   global dry_run
Every listener runs header_mutation (drop client x-geo-country) -> geoip -> jwt-guard -> router.

Addresses from the MaxMind test DB (81.2.69.160 GB, 89.160.20.112 SE, 216.160.83.56 US,
175.16.199.1 CN, 2001:218::1 JP) and 10.x/192.0.2.x only ever appear inside X-Forwarded-For
headers; every connection is made over loopback.
"""

from __future__ import annotations

import time

import pytest

from conftest import expect_401, expect_403, expect_upstream, start_stack
from harness import (SEEN_REMOTE_HEADER, geoip_filter, ipv6_available, listener, route, strip_geo_header_filter,
                     wasm_filter)
from tokens import AUDIENCE, ISSUER, KeySet

GB, SE, US, CN, JP = "81.2.69.160", "89.160.20.112", "216.160.83.56", "175.16.199.1", "2001:218::1"
UNKNOWN = "127.0.0.9"  # not in the database
DRY = "x-jwt-guard-dry-run"
HAVE_V6 = ipv6_available()
# Skipped without an IPv6 loopback, failed instead under CI=true (conftest.ipv6_loopback).
needs_v6 = pytest.mark.usefixtures("ipv6_loopback")


def base(keys: KeySet, **top) -> dict:
    cfg = {
        "realm": "api",
        "roles_claim": "realm_access.roles",
        "scopes_claim": "scope",
        "client_ip": {"from": "peer"},
        "geo": {"country_header": "x-geo-country", "country_claim": "country"},
        "providers": {"corp": {"issuer": ISSUER, "audiences": [AUDIENCE], "jwks": keys.jwks(["ES256", "EdDSA"])}},
        "rules": [],
    }
    cfg.update(top)
    return cfg


def peer_config(keys: KeySet) -> dict:
    return base(keys, rules=[
        {"match": {"route_name": "r-special"}, "provider": "corp", "roles": {"any": ["special"]}},
        {"match": {"prefix": "/roles/any"}, "roles": {"any": ["admin", "ops"]}},
        {"match": {"prefix": "/roles/all"}, "roles": {"all": ["admin", "ops"]}},
        {"match": {"prefix": "/scopes"}, "scopes": {"all": ["orders:read", "orders:write"]}},
        {"match": {"prefix": "/claims"}, "claims": [
            {"name": "tenant", "values": ["acme", "globex"]},
            {"name": "email_verified", "values": [True]},
            {"name": "org.level", "values": [3, 4]},
        ]},
        {"match": {"prefix": "/ip/allow"}, "source_ips": {"allow": ["127.0.0.5", "::1/128"]}},
        {"match": {"prefix": "/ip/deny"}, "source_ips": {"allow": ["127.0.0.0/8"], "deny": ["127.0.0.6/32"]}},
        {"match": {"prefix": "/ip/blocklist"}, "source_ips": {"deny": ["127.0.0.7", "::1"]}},
        {"match": {"prefix": "/ip/anon"}, "allow_anonymous": True, "source_ips": {"allow": ["127.0.0.5"]}},
        {"match": {"prefix": "/bind"}, "bind_ip_claim": "ip"},
        {"match": {"prefix": "/country/allow"}, "countries": {"allow": ["gb", "SE"]}},
        {"match": {"prefix": "/country/deny"}, "countries": {"deny": ["CN"]}},
        {"match": {"prefix": "/anon/roles"}, "allow_anonymous": True, "roles": {"any": ["admin"]}},
        {"match": {"prefix": "/order"}, "source_ips": {"allow": ["127.0.0.5"]},
         "countries": {"allow": ["GB"]}, "roles": {"any": ["admin"]}, "scopes": {"any": ["x"]}},
        {"match": {"prefix": "/dry"}, "dry_run": True, "roles": {"any": ["admin"]}},
        {"match": {"prefix": "/"}, "provider": "corp"},
    ])


def hops_config(keys: KeySet) -> dict:
    return base(keys, rules=[
        {"match": {"prefix": "/internal"}, "source_ips": {"allow": ["10.0.0.0/8"]}},
        {"match": {"prefix": "/geo/gb"}, "countries": {"allow": ["GB", "SE"]}},
        {"match": {"prefix": "/geo/us"}, "countries": {"allow": ["US"]}},
        {"match": {"prefix": "/geo/deny"}, "countries": {"deny": ["CN"]}},
        {"match": {"prefix": "/geo/anon"}, "allow_anonymous": True, "countries": {"allow": ["GB"]}},
        {"match": {"prefix": "/"}, "provider": "corp"},
    ])


def xff_config(keys: KeySet) -> dict:
    return base(keys, client_ip={"from": "xff", "trusted_hops": 2}, rules=[
        {"match": {"prefix": "/internal"}, "source_ips": {"allow": ["10.0.0.0/8"]}},
        {"match": {"prefix": "/"}, "provider": "corp"},
    ])


def dry_config(keys: KeySet) -> dict:
    return base(keys, dry_run=True, rules=[
        {"match": {"prefix": "/roles"}, "roles": {"any": ["admin"]}},
        {"match": {"prefix": "/api"}, "provider": "corp"},
    ])


@pytest.fixture(scope="module")
def stack(request, upstream, keys, wasm):
    def filters(cfg):
        return [strip_geo_header_filter(), geoip_filter(), wasm_filter(cfg)]

    routes = [route("/special", "r-special"), route("/", "r-default")]
    addr = "::" if HAVE_V6 else "127.0.0.1"
    return start_stack(request, upstream, "policy", [
        listener("peer", 0, filters(peer_config(keys)), routes=routes, address=addr),
        listener("hops", 0, filters(hops_config(keys)), xff_num_trusted_hops=1),
        listener("xff", 0, filters(xff_config(keys))),
        listener("dry", 0, filters(dry_config(keys))),
    ])


def tok(keys: KeySet, roles=None, **claims) -> str:
    if roles is not None:
        claims["realm_access"] = {"roles": roles}
    return keys.mint("ES256", **claims)


def call(stack, lst: str, path: str, token: str | None = None, xff: str | None = None,
         headers: dict | None = None, **kw):
    h = dict(headers or {})
    if token:
        h["Authorization"] = f"Bearer {token}"
    if xff is not None:
        h["X-Forwarded-For"] = xff
    return stack.get(lst, path, headers=h, **kw)


# --------------------------------------------------------------------------- roles / scopes / claims


def test_roles_any_nested_claim(stack, keys, refused):
    expect_upstream(call(stack, "peer", "/roles/any", tok(keys, ["ops"])))
    expect_upstream(call(stack, "peer", "/roles/any", tok(keys, ["x", "admin"])))
    with refused():
        expect_403(call(stack, "peer", "/roles/any", tok(keys, ["user"])), "missing_role")
    with refused():  # no roles claim at all
        expect_403(call(stack, "peer", "/roles/any", tok(keys)), "missing_role")
    with refused():  # top-level "roles" is not the configured claim (realm_access.roles)
        expect_403(call(stack, "peer", "/roles/any", keys.mint("ES256", roles=["admin"])), "missing_role")


def test_roles_all_and_space_separated_roles(stack, keys, refused):
    expect_upstream(call(stack, "peer", "/roles/all", tok(keys, ["ops", "admin", "x"])))
    expect_upstream(call(stack, "peer", "/roles/all", tok(keys, "admin ops")))
    with refused():
        expect_403(call(stack, "peer", "/roles/all", tok(keys, ["admin"])), "missing_role")


def test_scopes_space_separated_and_array(stack, keys, refused):
    need = "orders:read orders:write"
    expect_upstream(call(stack, "peer", "/scopes", tok(keys, scope="orders:write orders:read other")))
    expect_upstream(call(stack, "peer", "/scopes", tok(keys, scope=["orders:read", "orders:write"])))
    with refused():
        expect_403(call(stack, "peer", "/scopes", tok(keys, scope="orders:read")), "missing_scope", scope=need)
    with refused():  # a prefix of a scope is not the scope
        expect_403(call(stack, "peer", "/scopes", tok(keys, scope="orders:rea orders:writ")), "missing_scope",
                   scope=need)


def test_claims(stack, keys, refused):
    good = {"tenant": "acme", "email_verified": True, "org": {"level": 3}}
    expect_upstream(call(stack, "peer", "/claims", tok(keys, **good)))
    expect_upstream(call(stack, "peer", "/claims", tok(keys, **dict(good, tenant=["x", "globex"]))))
    for bad in (dict(good, tenant="initech"), dict(good, email_verified=False),
                dict(good, email_verified="true"), dict(good, org={"level": 5}),
                {k: v for k, v in good.items() if k != "tenant"}):
        with refused():
            expect_403(call(stack, "peer", "/claims", tok(keys, **bad)), "claim_mismatch")


def test_invalid_token_never_reaches_policy(stack, keys, refused):
    now = int(time.time())
    with refused():
        expect_401(call(stack, "peer", "/roles/any", tok(keys, ["user"], exp=now - 3600, iat=now - 7200)), "expired")
    with refused():
        expect_401(call(stack, "peer", "/ip/allow", keys.mint("ES256", key=keys.rogue_p256), source="127.0.0.1"),
                   "bad_signature")


# --------------------------------------------------------------------------- source IPs (peer)


def test_ip_allow_by_source_address(stack, keys, refused):
    t = tok(keys)
    e = expect_upstream(call(stack, "peer", "/ip/allow", t, source="127.0.0.5"))
    assert e["headers"][SEEN_REMOTE_HEADER] == "127.0.0.5"
    with refused():
        expect_403(call(stack, "peer", "/ip/allow", t, source="127.0.0.1"), "ip_not_allowed")
    with refused():
        expect_403(call(stack, "peer", "/ip/allow", t, source="127.0.0.55"), "ip_not_allowed")


def test_ip_deny_wins_over_allow(stack, keys, refused):
    t = tok(keys)
    expect_upstream(call(stack, "peer", "/ip/deny", t, source="127.0.0.5"))
    with refused():
        expect_403(call(stack, "peer", "/ip/deny", t, source="127.0.0.6"), "ip_denied")
    expect_upstream(call(stack, "peer", "/ip/blocklist", t, source="127.0.0.5"))
    with refused():
        expect_403(call(stack, "peer", "/ip/blocklist", t, source="127.0.0.7"), "ip_denied")


def test_xff_is_ignored_without_trusted_hops(stack, keys, refused):
    # peer listener has xff_num_trusted_hops 0: a client-sent XFF changes nothing
    with refused():
        expect_403(call(stack, "peer", "/ip/allow", tok(keys), xff="127.0.0.5", source="127.0.0.1"),
                   "ip_not_allowed")


def test_anonymous_rule_still_gets_ip_checks(stack, refused):
    expect_upstream(call(stack, "peer", "/ip/anon", source="127.0.0.5"))
    with refused():
        expect_403(call(stack, "peer", "/ip/anon", source="127.0.0.1"), "ip_not_allowed")


@needs_v6
def test_ipv6_client(stack, keys, refused):
    t = tok(keys)
    e = expect_upstream(call(stack, "peer", "/ip/allow", t, host="::1", source="::1"))
    assert e["headers"][SEEN_REMOTE_HEADER] == "::1"
    with refused():
        expect_403(call(stack, "peer", "/ip/blocklist", t, host="::1", source="::1"), "ip_denied")
    e = expect_upstream(call(stack, "peer", "/bind", tok(keys, ip="::1/128"), host="::1", source="::1"))
    with refused():
        expect_403(call(stack, "peer", "/bind", tok(keys, ip="127.0.0.1"), host="::1", source="::1"), "ip_not_bound")


def test_bind_ip_claim(stack, keys, refused):
    for ip in ("127.0.0.5", "127.0.0.0/24", ["192.0.2.1", "127.0.0.5/32"]):
        expect_upstream(call(stack, "peer", "/bind", tok(keys, ip=ip), source="127.0.0.5"))
    for ip in ("127.0.0.6", "10.0.0.0/8", [], "not an address", None):
        claims = {} if ip is None else {"ip": ip}
        with refused():
            expect_403(call(stack, "peer", "/bind", tok(keys, **claims), source="127.0.0.5"), "ip_not_bound")


# --------------------------------------------------------------------------- countries from the token claim


def test_country_from_claim(stack, keys, refused):
    # the peer is loopback: geoip finds nothing, the country comes from the token's claim
    expect_upstream(call(stack, "peer", "/country/allow", tok(keys, country="GB")))
    expect_upstream(call(stack, "peer", "/country/allow", tok(keys, country="se")))
    with refused():
        expect_403(call(stack, "peer", "/country/allow", tok(keys, country="US")), "country_not_allowed")
    with refused():
        expect_403(call(stack, "peer", "/country/allow", tok(keys)), "country_unknown")
    with refused():
        expect_403(call(stack, "peer", "/country/deny", tok(keys, country="cn")), "country_denied")
    expect_upstream(call(stack, "peer", "/country/deny", tok(keys)))  # deny-only + unknown -> allowed


def test_client_cannot_choose_country_with_header(stack, keys, refused):
    with refused():
        expect_403(call(stack, "peer", "/country/allow", tok(keys), headers={"x-geo-country": "GB"}),
                   "country_unknown")


# --------------------------------------------------------------------------- anonymous + requirements


def test_anonymous_rule_with_role_requirement(stack, keys, refused):
    with refused():
        expect_401(call(stack, "peer", "/anon/roles"), "missing")
    with refused():
        expect_403(call(stack, "peer", "/anon/roles", tok(keys, ["user"])), "missing_role")
    expect_upstream(call(stack, "peer", "/anon/roles", tok(keys, ["admin"])))


def test_policy_order(stack, keys, refused):
    """ip -> country -> roles -> scopes, as in CONTRACT.md."""
    with refused():
        expect_403(call(stack, "peer", "/order", tok(keys, country="US"), source="127.0.0.1"), "ip_not_allowed")
    with refused():
        expect_403(call(stack, "peer", "/order", tok(keys, country="US"), source="127.0.0.5"), "country_not_allowed")
    with refused():
        expect_403(call(stack, "peer", "/order", tok(keys, country="GB"), source="127.0.0.5"), "missing_role")
    with refused():
        expect_403(call(stack, "peer", "/order", tok(keys, ["admin"], country="GB"), source="127.0.0.5"),
                   "missing_scope", scope="x")
    expect_upstream(call(stack, "peer", "/order", tok(keys, ["admin"], country="GB", scope="x"), source="127.0.0.5"))


# --------------------------------------------------------------------------- route_name


def test_route_name_match(stack, keys, refused):
    with refused():  # Envoy route r-special -> the first rule, which needs role "special"
        expect_403(call(stack, "peer", "/special/x", tok(keys, ["admin"])), "missing_role")
    expect_upstream(call(stack, "peer", "/special/x", tok(keys, ["special"])))
    expect_upstream(call(stack, "peer", "/other", tok(keys, ["admin"])))  # route r-default -> catch-all rule


# --------------------------------------------------------------------------- Envoy's XFF handling (peer)


def test_peer_follows_envoy_xff_num_trusted_hops(stack, keys, refused):
    t = tok(keys)
    e = expect_upstream(call(stack, "hops", "/internal", t, xff="10.1.2.3"))
    assert e["headers"][SEEN_REMOTE_HEADER] == "10.1.2.3"  # what source.address is for the filter
    with refused():  # no XFF: Envoy falls back to the TCP peer 127.0.0.1
        expect_403(call(stack, "hops", "/internal", t), "ip_not_allowed")
    with refused():  # one trusted hop: the rightmost entry is the client, left entries are not trusted
        expect_403(call(stack, "hops", "/internal", t, xff="10.1.2.3, 192.0.2.77"), "ip_not_allowed")
    with refused():
        expect_403(call(stack, "hops", "/internal", t, xff="10.0.0.1,10.0.0.2, 192.0.2.77"), "ip_not_allowed")
    # an IPv4-mapped IPv6 client address is the IPv4 address
    e = expect_upstream(call(stack, "hops", "/internal", t, xff="::ffff:10.1.2.3"))
    assert e["headers"][SEEN_REMOTE_HEADER] in ("::ffff:10.1.2.3", "10.1.2.3")


def test_filter_xff_mode_trusted_hops(stack, keys, refused):
    t = tok(keys)
    # use_remote_address: Envoy appends the TCP peer (127.0.0.5) before filters run, so the
    # filter sees "10.1.2.3,127.0.0.5" and trusted_hops 2 picks 10.1.2.3
    e = expect_upstream(call(stack, "xff", "/internal", t, xff="10.1.2.3", source="127.0.0.5"))
    assert e["headers"]["x-forwarded-for"] == "10.1.2.3,127.0.0.5"
    with refused():  # spoofed entries on the left do not help
        expect_403(call(stack, "xff", "/internal", t, xff="10.1.2.3, 192.0.2.77", source="127.0.0.5"),
                   "ip_not_allowed")
    with refused():  # fewer entries than trusted hops -> client IP unknown -> refused by the allow list
        expect_403(call(stack, "xff", "/internal", t, source="127.0.0.5"), "ip_not_allowed")


# --------------------------------------------------------------------------- Envoy's geoip filter


def test_geoip_country_allow(stack, keys, refused):
    t = tok(keys)
    e = expect_upstream(call(stack, "hops", "/geo/gb", t, xff=GB))
    assert e["headers"]["x-geo-country"] == "GB"
    assert expect_upstream(call(stack, "hops", "/geo/gb", t, xff=SE))["headers"]["x-geo-country"] == "SE"
    with refused():
        expect_403(call(stack, "hops", "/geo/gb", t, xff=US), "country_not_allowed")
    with refused():  # IPv6 client address from XFF
        expect_403(call(stack, "hops", "/geo/gb", t, xff=JP), "country_not_allowed")
    with refused():
        expect_403(call(stack, "hops", "/geo/gb", t, xff=UNKNOWN), "country_unknown")


def test_geoip_country_deny(stack, keys, refused):
    t = tok(keys)
    with refused():
        expect_403(call(stack, "hops", "/geo/deny", t, xff=CN), "country_denied")
    expect_upstream(call(stack, "hops", "/geo/deny", t, xff=GB))
    expect_upstream(call(stack, "hops", "/geo/deny", t, xff=UNKNOWN))


def test_spoofed_geo_header_is_unknown(stack, keys, refused):
    t = tok(keys)
    for xff in (UNKNOWN, None):
        with refused():
            expect_403(call(stack, "hops", "/geo/us", t, xff=xff, headers={"x-geo-country": "US"}),
                       "country_unknown")
    e = expect_upstream(call(stack, "hops", "/geo/us", t, xff=US, headers={"x-geo-country": "KP"}))
    assert e["headers"]["x-geo-country"] == "US"


def test_geo_header_wins_over_token_claim(stack, keys, refused):
    with refused():
        expect_403(call(stack, "hops", "/geo/gb", tok(keys, country="GB"), xff=US), "country_not_allowed")
    expect_upstream(call(stack, "hops", "/geo/gb", tok(keys, country="gb"), xff=UNKNOWN))


def test_geoip_on_anonymous_rule(stack, refused):
    expect_upstream(call(stack, "hops", "/geo/anon", xff=GB))
    with refused():
        expect_403(call(stack, "hops", "/geo/anon", xff=UNKNOWN), "country_unknown")
    with refused():
        expect_403(call(stack, "hops", "/geo/anon", xff=US), "country_not_allowed")


# --------------------------------------------------------------------------- dry run


def _dry_count(stack) -> int:
    """The overall dry-run counter (per-rule and per-provider copies are tested elsewhere)."""
    return stack.envoy.stats("jwt_guard")["wasmcustom.jwt_guard.dry_run"]


def test_dry_run_per_rule(stack, keys):
    before = _dry_count(stack)
    t = tok(keys, ["user"])
    e = expect_upstream(call(stack, "peer", "/dry", t, headers={DRY: "forged"}))
    assert e["headers"][DRY] == "403 missing_role"
    assert e["headers"]["authorization"] == f"Bearer {t}", "dry run changes nothing else"
    e = expect_upstream(call(stack, "peer", "/dry"))
    assert e["headers"][DRY] == "401 missing"
    e = expect_upstream(call(stack, "peer", "/dry", keys.mint("ES256", key=keys.rogue_p256)))
    assert e["headers"][DRY] == "401 bad_signature"
    e = expect_upstream(call(stack, "peer", "/dry", tok(keys, ["admin"]), headers={DRY: "forged"}))
    assert DRY not in e["headers"]
    assert "authorization" not in e["headers"]
    assert _dry_count(stack) == before + 3


def test_dry_run_global(stack, keys):
    before = _dry_count(stack)
    e = expect_upstream(call(stack, "dry", "/roles", tok(keys, ["user"])))
    assert e["headers"][DRY] == "403 missing_role"
    e = expect_upstream(call(stack, "dry", "/api/x"))
    assert e["headers"][DRY] == "401 missing"
    e = expect_upstream(call(stack, "dry", "/api/x", tok(keys, aud="other")))
    assert e["headers"][DRY] == "401 bad_audience"
    e = expect_upstream(call(stack, "dry", "/nothing"))
    assert e["headers"][DRY] == "403 no_matching_rule"
    e = expect_upstream(call(stack, "dry", "/api/x", tok(keys), headers={DRY: "200 forged"}))
    assert DRY not in e["headers"]
    assert _dry_count(stack) == before + 4
