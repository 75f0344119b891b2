"""The Envoy recipes docs/security.md gives around jwt-guard ("Configuring Envoy around the
filter"), run for real.

CORS preflights: browsers send them without credentials, so they must be answered before
jwt-guard -- by Envoy's own `cors` filter, for origins the route allows -- instead of a rule
that disables jwt-guard for every OPTIONS request (which would let any OPTIONS through to the
application, preflight or not).
"""

from __future__ import annotations

import pytest

from conftest import expect_401, start_stack
from harness import listener, route, wasm_filter
from tokens import AUDIENCE, ISSUER, KeySet

CORS_FILTER = {
    "name": "envoy.filters.http.cors",
    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors"},
}
CORS_POLICY = {
    "@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy",
    "allow_origin_string_match": [{"exact": "https://app.example.com"}],
    "allow_methods": "GET, POST, PATCH",
    "allow_headers": "authorization, content-type",
    "max_age": "600",
}


@pytest.fixture(scope="module")
def stack(request, upstream, keys: KeySet, wasm):
    cfg = {
        "realm": "api",
        "providers": {"corp": {"issuer": ISSUER, "audiences": [AUDIENCE], "jwks": keys.jwks(["ES256"])}},
        "rules": [{"match": {"prefix": "/"}, "provider": "corp"}],
    }
    routes = [route("/", "api", typed_per_filter_config={"envoy.filters.http.cors": CORS_POLICY})]
    return start_stack(request, upstream, "envoy-setup",
                       [listener("cors", 0, [CORS_FILTER, wasm_filter(cfg)], routes=routes)])


def test_preflight_from_an_allowed_origin_is_answered_by_envoy(stack, refused):
    with refused():
        resp = stack.get("cors", "/orders", method="OPTIONS", headers={
            "Origin": "https://app.example.com", "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "authorization"})
    assert resp.status == 200, resp
    assert resp.header("access-control-allow-origin") == "https://app.example.com", resp
    assert "PATCH" in (resp.header("access-control-allow-methods") or ""), resp


def test_other_options_requests_still_need_a_token(stack, refused):
    for headers in ({}, {"Origin": "https://evil.example.com", "Access-Control-Request-Method": "PATCH"},
                    {"Origin": "https://app.example.com"}):
        with refused():
            expect_401(stack.get("cors", "/orders", method="OPTIONS", headers=headers), "missing")


def test_actual_cross_origin_request_is_authenticated(stack, keys, refused):
    with refused():
        expect_401(stack.get("cors", "/orders", headers={"Origin": "https://app.example.com"}), "missing")
    resp = stack.get("cors", "/orders", headers={"Origin": "https://app.example.com",
                                                 "Authorization": f"Bearer {keys.mint('ES256')}"})
    assert resp.status == 200, resp
    assert resp.header("access-control-allow-origin") == "https://app.example.com", resp
