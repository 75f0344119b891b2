"""Issuer templates for multi-tenant identity providers (issue #19, contract §5), in real
Envoy: one provider whose `issuer` has a `{tenant}` placeholder and an allow-list accepts the
tokens of every allowed tenant with one key set; another tenant, and look-alike issuers, are
401 bad_issuer; the tenant the token's `iss` names can be bound to the path (403
binding_mismatch), and a templated provider is chosen among several by the token's `iss`.
Keys from `remote_jwks` with a fixed `uri` (the IdP's one key set) serve every tenant.
"""

from __future__ import annotations

import time

import pytest

from conftest import expect_401, expect_403, expect_upstream, start_stack
from harness import listener, static_cluster, wasm_filter
from jwks_server import JwksServer
from tokens import AUDIENCE, ISSUER, KeySet

TEMPLATE = "https://login.microsoftonline.com/{tenant}/v2.0"
ACME, GLOBEX, OTHER = "t-acme", "t-globex.eu", "t-initech"


def iss(tenant: str) -> str:
    return TEMPLATE.replace("{tenant}", tenant)


@pytest.fixture(scope="module")
def other_keys() -> KeySet:
    return KeySet()


def config(keys: KeySet, other_keys: KeySet) -> dict:
    return {
        "realm": "api",
        "providers": {
            "entra": {"issuer": TEMPLATE, "issuer_params": {"tenant": [ACME, GLOBEX]},
                      "audiences": [AUDIENCE], "jwks": keys.jwks(["ES256"]),
                      "claim_to_headers": [{"claim": "iss", "header": "x-issuer"}]},
            "corp": {"issuer": ISSUER, "audiences": [AUDIENCE], "jwks": other_keys.jwks(["ES256"])},
        },
        "rules": [
            {"match": {"paths": ["/tenants/{tenant}/{**}"]}, "provider": "entra",
             "bind": [{"issuer_param": "tenant", "path_param": "tenant"}]},
            {"match": {"prefix": "/hdr"}, "provider": "entra",
             "bind": [{"issuer_param": "tenant", "header": "x-tenant-id"}]},
            {"match": {"prefix": "/entra"}, "provider": "entra"},
            {"match": {"prefix": "/"}, "providers": ["corp", "entra"]},
        ],
    }


@pytest.fixture(scope="module")
def stack(request, upstream, keys, other_keys, wasm):
    return start_stack(request, upstream, "issuer_templates",
                       [listener("main", 0, [wasm_filter(config(keys, other_keys))])])


def call(stack, path: str, token: str | None = None, headers: list | None = None):
    h = list(headers or [])
    if token:
        h.append(("Authorization", f"Bearer {token}"))
    return stack.get("main", path, headers=h)


def test_two_tenants_share_one_key_set(stack, keys):
    for tenant in (ACME, GLOBEX):
        echoed = expect_upstream(call(stack, "/entra/x", keys.mint("ES256", iss=iss(tenant))))
        assert echoed["headers"]["x-issuer"] == iss(tenant)


@pytest.mark.parametrize("issuer", [
    iss(OTHER),                                               # a tenant not in the allow-list
    "https://login.microsoftonline.com/a/b/v2.0",             # a look-alike: an extra segment
    f"https://login.microsoftonline.com/{ACME}/x/v2.0",
    f"https://login.microsoftonline.com/{ACME}/v2.0/",
    f"https://login.microsoftonline.com//v2.0",
    f"https://login.microsoftonline.com.evil.example/{ACME}/v2.0",
    f"https://login.microsoftonline.com/{ACME.upper()}/v2.0",
    TEMPLATE,                                                 # the template itself
])
def test_other_issuers_are_bad_issuer(stack, keys, refused, issuer):
    with refused():
        expect_401(call(stack, "/entra/x", keys.mint("ES256", iss=issuer)), "bad_issuer")


def test_issuer_param_bound_to_the_path(stack, keys, refused):
    acme = keys.mint("ES256", iss=iss(ACME))
    expect_upstream(call(stack, f"/tenants/{ACME}/orders", acme))
    with refused():
        expect_403(call(stack, f"/tenants/{GLOBEX}/orders", acme), "binding_mismatch")
    globex = keys.mint("ES256", iss=iss(GLOBEX))
    expect_upstream(call(stack, f"/tenants/{GLOBEX}/orders", globex))
    with refused():
        expect_403(call(stack, f"/tenants/{ACME}/orders", globex), "binding_mismatch")


def test_issuer_param_bound_to_a_header(stack, keys, refused):
    acme = keys.mint("ES256", iss=iss(ACME))
    expect_upstream(call(stack, "/hdr", acme, headers=[("x-tenant-id", ACME)]))
    with refused():
        expect_403(call(stack, "/hdr", acme, headers=[("x-tenant-id", GLOBEX)]), "binding_mismatch")


def test_a_templated_provider_is_chosen_by_iss_among_several(stack, keys, other_keys, refused):
    expect_upstream(call(stack, "/any", keys.mint("ES256", iss=iss(GLOBEX))))
    expect_upstream(call(stack, "/any", other_keys.mint("ES256")))
    # The fixed provider's issuer with the template's keys: its own keys judge it.
    with refused():
        expect_401(call(stack, "/any", keys.mint("ES256")), "bad_signature")
    with refused():
        expect_401(call(stack, "/any", keys.mint("ES256", iss=iss(OTHER))), "bad_issuer")


@pytest.fixture(scope="module")
def remote_stack(request, upstream, keys, wasm):
    idp = JwksServer(keys.jwks(["ES256"])).start()
    request.addfinalizer(idp.stop)
    cfg = {"realm": "api",
           "providers": {"entra": {
               "issuer": TEMPLATE, "issuer_params": {"tenant": [ACME, GLOBEX]}, "audiences": [AUDIENCE],
               "remote_jwks": {"cluster": "idp", "uri": "https://login.microsoftonline.com/jwks.json"}}},
           "rules": [{"match": {"prefix": "/"}, "provider": "entra"}]}
    stack = start_stack(request, upstream, "issuer_templates_remote", [listener("main", 0, [wasm_filter(cfg)])],
                        extra_clusters=[static_cluster("idp", idp.port)])
    return stack, idp


def test_remote_jwks_with_a_fixed_uri_serves_every_tenant(remote_stack, keys, refused):
    stack, idp = remote_stack
    deadline = time.monotonic() + 10
    while (resp := call(stack, "/x", keys.mint("ES256", iss=iss(ACME)))).status != 200:
        assert time.monotonic() < deadline, f"keys never fetched: {resp!r}"
        time.sleep(0.1)
    assert idp.count() >= 1
    expect_upstream(call(stack, "/x", keys.mint("ES256", iss=iss(GLOBEX))))
    with refused():
        expect_401(call(stack, "/x", keys.mint("ES256", iss=iss(OTHER))), "bad_issuer")
