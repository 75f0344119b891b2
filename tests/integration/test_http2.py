"""HTTP/2 from the client. Envoy's HTTP/2 codec hands filters the headers differently from its
HTTP/1 codec (pseudo-headers from the frame, repeated fields kept apart, cookie crumbs), so the
main answers are checked again over h2c (prior knowledge; the listener's codec_type is AUTO).
The upstream is still reached over HTTP/1.1.
"""

from __future__ import annotations

import pytest

from conftest import expect_401, expect_403, expect_upstream, start_stack
from harness import listener, wasm_filter
from tokens import AUDIENCE, ISSUER, KeySet


def h2_config(keys: KeySet) -> dict:
    return {
        "realm": "api",
        "providers": {"corp": {"issuer": ISSUER, "audiences": [AUDIENCE], "jwks": keys.jwks(["ES256", "EdDSA"]),
                               "from_cookies": ["session"]}},
        "rules": [
            {"match": {"prefix": "/api"}, "provider": "corp"},
            {"match": {"prefix": "/admin"}, "provider": "corp", "roles": {"any": ["admin"]}},
        ],
    }


@pytest.fixture(scope="module")
def stack(request, upstream, keys, wasm):
    return start_stack(request, upstream, "http2", [listener("h2", 0, [wasm_filter(h2_config(keys))])])


@pytest.fixture
def h2(stack):
    def _h2(path: str, headers: list[tuple[str, str]] | None = None, **kw):
        return stack.get_h2("h2", path, headers=headers or [], **kw)
    return _h2


def test_valid_token(stack, h2, keys, upstream):
    before = upstream.count
    h2_before = stack.envoy.stats("downstream_cx_http2_total")["http.h2.downstream_cx_http2_total"]
    e = expect_upstream(h2("/api/x", [("authorization", f"Bearer {keys.mint('ES256')}"), ("x-other", "kept")]))
    assert upstream.count == before + 1
    assert e["path"] == "/api/x"
    assert "authorization" not in e["headers"]
    assert e["headers"]["x-other"] == "kept"
    # it really was HTTP/2 on the downstream side
    assert stack.envoy.stats("downstream_cx_http2_total")["http.h2.downstream_cx_http2_total"] == h2_before + 1


def test_no_token(h2, refused):
    with refused():
        resp = h2("/api/x")
    expect_401(resp, "missing")
    assert resp.all("www-authenticate") == ['Bearer realm="api"']


def test_forged_token(h2, keys, refused):
    with refused():
        expect_401(h2("/api/x", [("authorization", f"Bearer {keys.mint('ES256', key=keys.rogue_p256)}")]),
                   "bad_signature")


def test_403(h2, keys, refused):
    with refused():
        expect_403(h2("/admin", [("authorization", f"Bearer {keys.mint('ES256', roles=['user'])}")]), "missing_role")
    expect_upstream(h2("/admin", [("authorization", f"Bearer {keys.mint('ES256', roles=['admin'])}")]))


def test_two_authorization_fields_are_malformed(h2, keys, refused):
    a, b = keys.mint("ES256"), keys.mint("EdDSA")
    with refused():
        expect_401(h2("/api/x", [("authorization", f"Bearer {a}"), ("authorization", f"Bearer {b}")]), "malformed")


def test_token_in_split_cookie_fields(h2, keys):
    """HTTP/2 sends cookies as separate `cookie` fields (RFC 9113 §8.2.3); Envoy joins them with
    "; ". The token cookie is found among them and removed; the other cookies go upstream."""
    t = keys.mint("EdDSA")
    e = expect_upstream(h2("/api/c", [("cookie", "a=1"), ("cookie", f"session={t}"), ("cookie", "b=2")]))
    assert e["headers"]["cookie"] == "a=1; b=2"
    e = expect_upstream(h2("/api/c", [("cookie", f"session={t}")]))
    assert "cookie" not in e["headers"]
