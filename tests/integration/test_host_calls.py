"""How many proxy-wasm host calls each request path makes (issue #17, item 5), pinned in real Envoy.

A test build of the filter (`make host-calls-wasm`: the `host-call-counts` feature) adds each
request's host calls, by kind, to Envoy counters `jwt_guard.host_calls.<kind>` and the bytes they
moved to `jwt_guard.host_bytes`. Every path sends one request and compares the counters' growth
with the table below: one call more on any path fails the test (and one fewer asks for the table
to be updated, so that the table in docs/benchmarks.md stays true).

What is counted is every call src/adapters/proxy_wasm/host.rs makes, the one place the filter
binds host functions (test_architecture.py keeps proxy-wasm in the adapter); calls the SDK makes
on its own (none on these paths) are not seen. The counting build differs from the release one
only by the counting, so the paths and their calls are the release build's.
"""

from __future__ import annotations

import json

import pytest

from conftest import expect_401, expect_403, expect_upstream, start_stack
from harness import REPO_ROOT, listener, wasm_filter
from tokens import AUDIENCE, ISSUER, KeySet

pytestmark = pytest.mark.wasm_only(reason="counts the proxy-wasm host calls of the Wasm filter's hot path")

HOST_CALLS_WASM = REPO_ROOT / "target" / "wasm32-wasip1" / "wycheproof-envoy" / "jwt_guard.wasm"
PREFIX = "wasmcustom.jwt_guard."


def config(keys: KeySet, identity: bool, certificate_binding: bool = False) -> dict:
    provider = {"issuer": ISSUER, "audiences": [AUDIENCE], "jwks": keys.jwks(["ES256", "RS256"])}
    if certificate_binding:
        provider["certificate_binding"] = {}
    top: dict = {}
    if identity:
        provider["claim_to_headers"] = [{"claim": "sub", "header": "x-sub"},
                                        {"claim": "realm_access.roles", "header": "x-roles"}]
        provider["forward_payload_header"] = "x-jwt-payload"
        top["outcome_in_filter_state"] = "jwt_guard"
    return {
        "realm": "api",
        "providers": {"corp": provider},
        "rules": [
            {"match": {"prefix": "/public"}, "allow_anonymous": True},
            {"match": {"prefix": "/admin"}, "provider": "corp", "roles": {"any": ["admin"]}},
            {"match": {"prefix": "/"}, "provider": "corp"},
        ],
        **top,
    }


@pytest.fixture(scope="module")
def stack(request, upstream, keys):
    if not HOST_CALLS_WASM.exists():
        pytest.fail(f"{HOST_CALLS_WASM} is missing: run `make host-calls-wasm` (make integration does it)",
                    pytrace=False)
    return start_stack(request, upstream, "host_calls", [
        listener("plain", 0, [wasm_filter(config(keys, identity=False), HOST_CALLS_WASM, name="hc_plain")]),
        listener("identity", 0, [wasm_filter(config(keys, identity=True), HOST_CALLS_WASM, name="hc_identity")]),
        listener("bound", 0, [wasm_filter(config(keys, identity=False, certificate_binding=True), HOST_CALLS_WASM,
                                          name="hc_bound")]),
    ])


def host_calls(stack, send) -> tuple[dict[str, int], int]:
    """The host calls (kind -> count, the kinds not made left out) and bytes of one request."""
    before = stack.envoy.stats("jwt_guard.host_")
    send()
    after = stack.envoy.stats("jwt_guard.host_")
    grown = {name[len(PREFIX):]: after[name] - before.get(name, 0) for name in after}
    assert grown.pop("host_calls_reported") == 1, "not exactly one request was judged"
    moved = grown.pop("host_bytes")
    return {name.removeprefix("host_calls."): n for name, n in grown.items() if n}, moved


# Per listener and path: the host calls one request makes. Paths: no token (anonymous rule, and
# refused as `missing`), a new token (cache miss), the same token again (cache hit; with large
# headers too), a forged token (refused after a miss), and a cached token refused by policy (403).
HIT = {"get_header_map": 1, "get_property": 1, "get_time": 1, "increment_metric": 4}
EXPECTED: dict[str, dict[str, dict[str, int]]] = {
    "plain": {
        "no token, anonymous": {"get_header_map": 1, "get_property": 1, "increment_metric": 2},
        "no token, refused": {"get_header_map": 1, "get_property": 1, "increment_metric": 2,
                              "send_local_response": 1},
        "cache miss": {**HIT, "call_foreign_function": 1, "remove_header": 1},
        "cache hit": {**HIT, "remove_header": 1},
        "cache hit, 20 KiB of headers": {**HIT, "remove_header": 1},
        "cache hit after it": {**HIT, "remove_header": 1},
        "refused, bad signature": {**HIT, "call_foreign_function": 1, "send_local_response": 1},
        "refused by policy (hit)": {**HIT, "send_local_response": 1},
    },
    "identity": {
        "no token, anonymous": {"get_header_map": 1, "get_property": 1, "increment_metric": 2, "set_property": 1},
        "no token, refused": {"get_header_map": 1, "get_property": 1, "increment_metric": 2,
                              "send_local_response": 1, "set_property": 1},
        "cache miss": {**HIT, "call_foreign_function": 1, "remove_header": 1, "replace_header": 2,
                       "set_property": 1},
        "cache hit": {**HIT, "remove_header": 1, "replace_header": 2, "set_property": 1},
        "cache hit, 20 KiB of headers": {**HIT, "remove_header": 1, "replace_header": 2, "set_property": 1},
        "cache hit after it": {**HIT, "remove_header": 1, "replace_header": 2, "set_property": 1},
        "refused, bad signature": {**HIT, "call_foreign_function": 1, "send_local_response": 1,
                                   "set_property": 1},
        "refused by policy (hit)": {**HIT, "send_local_response": 1, "set_property": 1},
    },
}


def paths(stack, keys: KeySet, name: str, refused):
    token = keys.mint("ES256", sub=f"user-{name}")
    auth = {"Authorization": f"Bearer {token}"}
    forged = keys.mint("ES256", sub=f"user-{name}", key=keys.rogue_p256)

    def forbidden():
        with refused():
            expect_403(stack.get(name, "/admin", headers=auth), "missing_role")

    def forged_token():
        with refused():
            expect_401(stack.get(name, "/x", headers={"Authorization": f"Bearer {forged}"}), "bad_signature")

    def hit_after_large():
        echoed = expect_upstream(stack.get(name, "/x", headers=auth))["headers"]
        assert "x-large" not in echoed and "authorization" not in echoed, echoed
        if name == "identity":
            assert echoed["x-sub"] == f"user-{name}", echoed

    def missing():
        with refused():
            expect_401(stack.get(name, "/x"), "missing")

    return {
        "no token, anonymous": lambda: expect_upstream(stack.get(name, "/public")),
        "no token, refused": missing,
        "cache miss": lambda: expect_upstream(stack.get(name, "/x", headers=auth)),
        "cache hit": lambda: expect_upstream(stack.get(name, "/x", headers=auth)),
        # Past the size whose decoded buffers the filter keeps for the next request: the same
        # calls, and the next request decodes afresh.
        "cache hit, 20 KiB of headers": lambda: expect_upstream(
            stack.get(name, "/x", headers={**auth, "x-large": "y" * 20_000})),
        "cache hit after it": hit_after_large,
        "refused, bad signature": forged_token,
        "refused by policy (hit)": forbidden,
    }


@pytest.mark.parametrize("name", ["plain", "identity"])
def test_host_calls_per_path_do_not_grow(stack, keys, refused, name):
    measured = {}
    for path, send in paths(stack, keys, name, refused).items():
        calls, moved = host_calls(stack, send)
        measured[path] = calls
        print(f"{name:9} {path:26} calls={sum(calls.values()):3} bytes={moved:5} {json.dumps(calls)}")
    assert measured == EXPECTED[name]


def test_the_client_certificate_is_read_only_for_a_certificate_bound_token(stack, keys, refused):
    """With certificate_binding on: an unbound token makes the same calls as without it; a
    certificate-bound one one property read more (the certificate's digest; none here, on plain
    HTTP, so it is refused)."""
    unbound = {"Authorization": f"Bearer {keys.mint('ES256', sub='user-bound')}"}
    bound = {"Authorization": f"Bearer {keys.mint('ES256', sub='user-bound', cnf={'x5t#S256': 'A' * 43})}"}

    def refused_bound():
        with refused():
            expect_401(stack.get("bound", "/x", headers=bound), "certificate_missing")

    measured = {}
    for path, send in {
        "cache miss": lambda: expect_upstream(stack.get("bound", "/x", headers=unbound)),
        "cache hit": lambda: expect_upstream(stack.get("bound", "/x", headers=unbound)),
        "bound, cache miss": refused_bound,
        "bound, cache hit": refused_bound,
    }.items():
        measured[path] = host_calls(stack, send)[0]
    with_digest = {**HIT, "get_property": 2, "send_local_response": 1}
    assert measured == {
        "cache miss": EXPECTED["plain"]["cache miss"],
        "cache hit": EXPECTED["plain"]["cache hit"],
        "bound, cache miss": {**with_digest, "call_foreign_function": 1},
        "bound, cache hit": with_digest,
    }
