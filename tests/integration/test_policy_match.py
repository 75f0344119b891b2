"""Rule matching by path patterns and binding (issue #19, contract §2 and §3 `bind`), in real
Envoy: Istio's path forms and templates in `match.paths`, `not_paths` / `not_methods` /
`not_hosts`, and `bind` of a claim to a path parameter and to a header (200, or 403
binding_mismatch), including path tricks as Envoy's HCM (normalize_path, merge_slashes,
path_with_escaped_slashes_action UNESCAPE_AND_REDIRECT, as harness.listener sets them) hands
them over.

Which rule took a request is read from the answer: every pattern rule lets anonymous callers
through, and the last rule (any path) needs a token, so "matched" is 200 without a token and
"not matched" is 401 missing.
"""

from __future__ import annotations

import pytest

from conftest import expect_401, expect_403, expect_upstream, start_stack
from harness import listener, wasm_filter
from tokens import AUDIENCE, ISSUER, KeySet

BIND_TENANT = [{"claim": "tenant", "path_param": "tenant"}]


def config(keys: KeySet) -> dict:
    anonymous = {"allow_anonymous": True}
    return {
        "realm": "api",
        "providers": {"corp": {"issuer": ISSUER, "audiences": [AUDIENCE], "jwks": keys.jwks(["ES256"])}},
        "rules": [
            {"name": "istio-forms", "match": {"paths": [
                "/info", "/test/*", "*/suffix", "/foo/{*}/bar", "/files/{**}"]}, **anonymous},
            {"name": "not-paths", "match": {"paths": ["/public/*"],
                                            "not_paths": ["/public/admin/*", "*/secret"]}, **anonymous},
            {"name": "not-methods", "match": {"prefix": "/methods", "not_methods": ["DELETE", "post"]},
             **anonymous},
            {"name": "not-hosts", "match": {"prefix": "/hosts",
                                            "not_hosts": ["admin.example.com", "*.internal.example"]},
             **anonymous},
            {"name": "tenant-path", "match": {"paths": ["/tenants/{tenant}/{**}"]}, "bind": BIND_TENANT},
            {"name": "tenant-two-forms", "match": {"paths": [
                "/v2/{region}/tenants/{tenant}", "/v2/tenants/{tenant}/{*}"]}, "bind": BIND_TENANT},
            {"name": "tenant-header", "match": {"paths": ["/hdr/{**}"]},
             "bind": [{"claim": "tenant", "header": "x-tenant-id"}]},
            {"name": "anon-bind", "match": {"paths": ["/anon/{tenant}"]}, "bind": BIND_TENANT, **anonymous},
            {"name": "rest", "match": {"prefix": "/"}, "provider": "corp"},
        ],
    }


@pytest.fixture(scope="module")
def stack(request, upstream, keys, wasm):
    return start_stack(request, upstream, "policy_match", [listener("main", 0, [wasm_filter(config(keys))])])


def call(stack, path: str, token: str | None = None, headers: list | None = None, **kw):
    h = list(headers or [])
    if token:
        h.append(("Authorization", f"Bearer {token}"))
    return stack.get("main", path, headers=h, **kw)


def matched(stack, path: str, **kw) -> bool:
    resp = call(stack, path, **kw)
    if resp.status == 200:
        return True
    expect_401(resp, "missing")
    return False


@pytest.mark.parametrize("path, fits", [
    ("/info", True), ("/info/", False), ("/Info", False), ("/info2", False),
    ("/test/", True), ("/test/a/b", True), ("/test", False),
    ("/a/suffix", True), ("/suffix", True), ("/a/suffix/", False),
    ("/foo/x/bar", True), ("/foo/x/y/bar", False), ("/foo/bar", False),
    ("/files", True), ("/files/", True), ("/files/a/b.txt", True), ("/filesystem", False),
    # The query string is not part of the path.
    ("/info?x=/test/", True), ("/nothing?p=/info", False),
])
def test_istio_path_forms_and_templates(stack, path, fits):
    assert matched(stack, path) is fits, path


def test_not_paths(stack):
    assert matched(stack, "/public/page")
    assert not matched(stack, "/public/admin/users")
    assert not matched(stack, "/public/docs/secret")
    assert matched(stack, "/public/docs/secret.txt")


def test_not_methods(stack):
    assert matched(stack, "/methods", method="GET")
    assert matched(stack, "/methods", method="PUT")
    assert not matched(stack, "/methods", method="DELETE")
    assert not matched(stack, "/methods", method="POST")  # compared in upper case, as configured "post"


def test_not_hosts(stack):
    assert matched(stack, "/hosts", authority="api.example.com")
    assert not matched(stack, "/hosts", authority="admin.example.com")
    assert not matched(stack, "/hosts", authority="ADMIN.example.com:8443")
    assert not matched(stack, "/hosts", authority="db.internal.example")
    assert matched(stack, "/hosts", authority="internal.example")


def tok(keys: KeySet, **claims) -> str:
    return keys.mint("ES256", **claims)


def test_claim_bound_to_a_path_parameter(stack, keys, refused):
    acme = tok(keys, tenant="acme")
    echoed = expect_upstream(call(stack, "/tenants/acme/orders", acme))
    assert echoed["path"] == "/tenants/acme/orders"
    expect_upstream(call(stack, "/tenants/acme", acme))
    expect_upstream(call(stack, "/tenants/acme/orders?tenant=globex", acme))
    for path in ("/tenants/globex/orders", "/tenants/ACME/orders", "/tenants/acmex/orders"):
        with refused():
            expect_403(call(stack, path, acme), "binding_mismatch")
    # A token of another tenant, a tenant claim that is not a string, none at all.
    for other in (tok(keys, tenant="globex"), tok(keys, tenant=["acme"]), tok(keys)):
        with refused():
            expect_403(call(stack, "/tenants/acme/orders", other), "binding_mismatch")
    # bind needs a token: 401, not 403.
    with refused():
        expect_401(call(stack, "/tenants/acme/orders"), "missing")


def test_the_parameter_is_found_in_whichever_pattern_matched(stack, keys, refused):
    acme = tok(keys, tenant="acme")
    expect_upstream(call(stack, "/v2/eu/tenants/acme", acme))
    expect_upstream(call(stack, "/v2/tenants/acme/x", acme))
    with refused():
        expect_403(call(stack, "/v2/acme/tenants/eu", acme), "binding_mismatch")
    with refused():
        expect_403(call(stack, "/v2/tenants/eu/acme", acme), "binding_mismatch")


def test_claim_bound_to_a_header(stack, keys, refused):
    acme = tok(keys, tenant="acme")
    expect_upstream(call(stack, "/hdr/x", acme, headers=[("X-Tenant-Id", "acme")]))
    for headers in ([("x-tenant-id", "globex")], [], [("x-tenant-id", "Acme")],
                    [("x-tenant-id", "acme"), ("x-tenant-id", "acme")]):
        with refused():
            expect_403(call(stack, "/hdr/x", acme, headers=headers), "binding_mismatch")


def test_bind_on_an_anonymous_rule_needs_a_token(stack, keys, refused):
    with refused():
        expect_401(call(stack, "/anon/acme"), "missing")
    expect_upstream(call(stack, "/anon/acme", tok(keys, tenant="acme")))
    with refused():
        expect_403(call(stack, "/anon/acme", tok(keys, tenant="globex")), "binding_mismatch")


def test_path_tricks_as_envoy_normalises_them(stack, keys, refused):
    """What Envoy hands the filter (and the upstream) for dot segments, doubled slashes and
    escapes: the filter judges the path the upstream will see, never the raw one."""
    acme = tok(keys, tenant="acme")
    # normalize_path removes dot segments before any filter: `/tenants/globex/../acme/orders`
    # is `/tenants/acme/orders` for the filter and the upstream alike.
    echoed = expect_upstream(call(stack, "/tenants/globex/../acme/orders", acme))
    assert echoed["path"] == "/tenants/acme/orders"
    with refused():
        expect_403(call(stack, "/tenants/acme/../globex/orders", acme), "binding_mismatch")
    with refused():
        expect_403(call(stack, "/tenants/a/../b", acme), "binding_mismatch")
    # merge_slashes: `//` is one `/`.
    echoed = expect_upstream(call(stack, "/tenants//acme//orders", acme))
    assert echoed["path"] == "/tenants/acme/orders"
    # An escaped slash never reaches the filter: UNESCAPE_AND_REDIRECT unescapes `%2F`,
    # normalises the result and answers 307 with it; the follow-up request is judged.
    with refused():
        resp = call(stack, "/tenants/acme%2F..%2Fglobex/orders", acme)
    assert (resp.status, resp.header("location")) == (307, "/tenants/globex/orders"), resp
    with refused():
        expect_403(call(stack, resp.header("location"), acme), "binding_mismatch")
    # Percent-encoded unreserved characters: normalize_path decodes them (RFC 3986 §6.2.2.2),
    # so `%61cme` is `acme`; a reserved one (`%3B`, ';') stays encoded and fits no tenant.
    echoed = expect_upstream(call(stack, "/tenants/%61cme/orders", acme))
    assert echoed["path"] == "/tenants/acme/orders"
    with refused():
        expect_403(call(stack, "/tenants/acme%3B/orders", acme), "binding_mismatch")
