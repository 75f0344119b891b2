"""Signature backends and the verified-token cache (issue #7), in real Envoy.

The answers themselves are pinned under both backends and with the cache on and off by
test_attacks.py and test_authn.py (their stacks are parametrized); here: which backend checks
what (the start-up log line), and what the cache must never do — turn a refusal into a pass
or keep an expired token alive.
"""

from __future__ import annotations

import time

import pytest

from conftest import expect_401, expect_upstream, start_stack
from harness import listener, wasm_filter
from tokens import ALL_ALGS, AUDIENCE, ISSUER, KeySet


def config(keys: KeySet, **top) -> dict:
    cfg = {
        "realm": "api",
        "providers": {
            "corp": {"issuer": ISSUER, "audiences": [AUDIENCE], "jwks": keys.jwks(), "clock_skew_seconds": 0},
        },
        "rules": [{"match": {"prefix": "/"}, "provider": "corp"}],
    }
    cfg.update(top)
    return cfg


@pytest.fixture(scope="module")
def stack(request, upstream, keys, wasm):
    return start_stack(request, upstream, "backends", [
        listener("auto", 0, [wasm_filter(config(keys), name="jwt_guard_auto")]),
        listener("rust", 0, [wasm_filter(config(keys, signature_backend="pure_rust"), name="jwt_guard_rust")]),
        listener("host", 0, [wasm_filter(config(keys, signature_backend="host", token_cache_size=5),
                                         name="jwt_guard_host")]),
    ])


def configured_lines(stack) -> list[str]:
    """The start-up lines, once all three filters' are in the (periodically flushed) log."""
    deadline = time.monotonic() + 10
    while True:
        lines = [line for line in stack.envoy.log().splitlines() if "jwt-guard: configured:" in line]
        if len(lines) >= 3 or time.monotonic() > deadline:
            return lines
        time.sleep(0.1)


@pytest.mark.wasm_only(reason="the start-up line names the Wasm signature backends (verify_signature or Rust); the module's is in test_native.py")
def test_start_up_log_says_who_checks_which_algorithm(stack):
    lines = configured_lines(stack)
    host = "signatures by the host (verify_signature): [RS256, RS384, RS512, ES256, ES384], " \
           "in Rust: [PS256, PS384, PS512, EdDSA, HS256, HS384, HS512]"
    rust = "signatures by the host (verify_signature, not used): [], " \
           "in Rust: [RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA, HS256, HS384, HS512]"
    assert any(host in line and "token cache: 1000 entries" in line for line in lines), lines
    assert any(rust in line for line in lines), lines
    assert any(host in line and "token cache: 5 entries" in line for line in lines), lines


@pytest.mark.parametrize("alg", ALL_ALGS)
def test_every_algorithm_under_every_backend(stack, keys, refused, alg):
    token = keys.mint(alg)
    for name in ("auto", "rust", "host"):
        for _ in range(2):  # the second time from the cache
            expect_upstream(stack.get(name, "/x", headers={"Authorization": f"Bearer {token}"}))
        forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
        with refused():
            resp = stack.get(name, "/x", headers={"Authorization": f"Bearer {forged}"})
        assert resp.status == 401 and resp.json()["reason"] in ("bad_signature", "malformed"), (name, resp)


def test_a_cached_token_expires(stack, keys, refused):
    now = int(time.time())
    token = keys.mint("ES256", iat=now, exp=now + 2)
    for name in ("auto", "rust"):
        expect_upstream(stack.get(name, "/x", headers={"Authorization": f"Bearer {token}"}))
    before = stack.envoy.stats("jwt_guard")
    time.sleep(max(0.0, now + 2.2 - time.time()))
    for name in ("auto", "rust"):
        with refused():
            expect_401(stack.get(name, "/x", headers={"Authorization": f"Bearer {token}"}), "expired")
    after = stack.envoy.stats("jwt_guard")
    hits = "wasmcustom.jwt_guard.token_cache.hit"
    assert after[hits] - before.get(hits, 0) == 2, "the expired token was judged from the cache"


def test_a_small_cache_stays_correct_when_full(stack, keys, refused):
    tokens = [keys.mint("ES256", sub=f"user-{i}") for i in range(12)]
    for _ in range(2):
        for token in tokens:
            expect_upstream(stack.get("host", "/x", headers={"Authorization": f"Bearer {token}"}))
    with refused():
        forged = keys.mint("ES256", sub="user-0", key=keys.rogue_p256)
        expect_401(stack.get("host", "/x", headers={"Authorization": f"Bearer {forged}"}), "bad_signature")
