"""Identity upstream (issue #9, item 1), in real Envoy: `claim_to_headers` and
`forward_payload_header` on allowed requests, and client-sent copies of every identity header
removed from every request jwt-guard lets through — authenticated, anonymous, disabled and
dry-run rules alike."""

from __future__ import annotations

import pytest

from conftest import expect_401, expect_upstream, start_stack
from harness import listener, wasm_filter
from tokens import AUDIENCE, ISSUER, KeySet

IDENTITY = ["x-sub", "x-roles", "x-level", "x-verified", "x-org", "x-tenant", "x-jwt-payload"]


def config(keys: KeySet) -> dict:
    return {
        "realm": "api",
        "providers": {"corp": {
            "issuer": ISSUER, "audiences": [AUDIENCE], "jwks": keys.jwks(["ES256"]),
            "claim_to_headers": [
                {"claim": "sub", "header": "x-sub"},
                {"claim": "realm_access.roles", "header": "X-Roles"},
                {"claim": "level", "header": "x-level"},
                {"claim": "email_verified", "header": "x-verified"},
                {"claim": "org", "header": "x-org"},
                {"claim": "tenant", "header": "x-tenant"},
            ],
            "forward_payload_header": "x-jwt-payload",
        }},
        "rules": [
            {"match": {"prefix": "/healthz"}, "disabled": True},
            {"match": {"prefix": "/public"}, "allow_anonymous": True},
            {"match": {"prefix": "/dry"}, "dry_run": True, "roles": {"any": ["nobody"]}},
            {"match": {"prefix": "/"}, "provider": "corp"},
        ],
    }


@pytest.fixture(scope="module")
def stack(request, upstream, keys, wasm):
    return start_stack(request, upstream, "identity", [listener("main", 0, [wasm_filter(config(keys))])])


SPOOFED = [(name, "forged") for name in IDENTITY]


def test_claims_go_upstream_as_the_contract_says(stack, keys):
    token = keys.mint("ES256", realm_access={"roles": ["admin", "ops"]}, level=3, email_verified=True,
                      org={"id": 7, "name": "acme"})
    headers = SPOOFED + [("Authorization", f"Bearer {token}")]
    echoed = expect_upstream(stack.get("main", "/orders", headers=headers))["headers"]
    assert echoed["x-sub"] == "alice"                       # string as it is
    assert echoed["x-roles"] == "admin,ops"                 # nested path, array joined with ","
    assert echoed["x-level"] == "3"                         # number as JSON text
    assert echoed["x-verified"] == "true"                   # boolean as JSON text
    assert echoed["x-org"] == '{"id":7,"name":"acme"}'      # object as compact JSON
    assert "x-tenant" not in echoed                         # missing claim: no header, spoof removed
    assert echoed["x-jwt-payload"] == token.split(".")[1]   # the verified payload, base64url
    assert "authorization" not in echoed


def test_the_same_from_the_token_cache(stack, keys):
    token = keys.mint("ES256", sub="bob")
    for _ in range(2):
        echoed = expect_upstream(stack.get("main", "/orders", headers=SPOOFED + [
            ("Authorization", f"Bearer {token}")]))["headers"]
        assert echoed["x-sub"] == "bob" and echoed["x-jwt-payload"] == token.split(".")[1]
        assert not {"x-roles", "x-tenant"} & set(echoed)


@pytest.mark.parametrize("path", ["/healthz", "/public/x", "/dry/x"])
def test_spoofed_identity_headers_never_reach_the_upstream(stack, keys, path):
    headers = list(SPOOFED)
    if path == "/dry/x":
        headers.append(("Authorization", f"Bearer {keys.mint('ES256', sub='carol')}"))
    echoed = expect_upstream(stack.get("main", path, headers=headers))["headers"]
    forged = {name for name in IDENTITY if echoed.get(name) == "forged"}
    assert not forged, echoed
    if path == "/dry/x":  # a dry run refusal: nothing verified is forwarded either
        assert not set(IDENTITY) & set(echoed), echoed


def test_a_claim_envoy_could_not_carry_sets_no_header(stack, keys, refused):
    token = keys.mint("ES256", tenant="acme\r\nx-injected: 1")
    echoed = expect_upstream(stack.get("main", "/orders", headers={"Authorization": f"Bearer {token}"}))
    assert "x-tenant" not in echoed["headers"] and "x-injected" not in echoed["headers"]
    with refused():
        expect_401(stack.get("main", "/orders", headers=SPOOFED), "missing")
