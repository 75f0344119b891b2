"""Remote JWKS (issue #8) in real Envoy against a real JWKS server (jwks_server.py) reached
through an Envoy cluster: fetch at start, rotation picked up on an unknown kid without a
restart (and a token cached under the retired key refused after it), IdP down at start and
later, slow IdP, malformed and oversized documents, another issuer's unknown kid that must not
fetch, an unknown-kid flood with a bounded number of fetches, two workers served by one fetch,
and OIDC discovery. Each test starts its own Envoy (shared data lives as long as the Envoy
process)."""

from __future__ import annotations

import time
import uuid
from typing import Any, Callable

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from conftest import expect_401, expect_upstream, start_stack
from harness import listener, static_cluster, wasm_filter
from jwks_server import JwksServer
from tokens import AUDIENCE, ISSUER

FAILED_LOG = "JWKS fetch for provider corp failed"


class RotKey:
    """An ES256 key with its own kid, as an IdP rotating its keys would publish."""

    def __init__(self, kid: str) -> None:
        self.kid = kid
        self.private = ec.generate_private_key(ec.SECP256R1())
        self.jwk = {**ECAlgorithm.to_jwk(self.private.public_key(), as_dict=True),
                    "kid": kid, "alg": "ES256", "use": "sig"}

    def mint(self, kid: str | None = None, **claims: Any) -> str:
        now = int(time.time())
        payload = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 300, **claims}
        return jwt.encode(payload, self.private, algorithm="ES256", headers={"kid": kid or self.kid})


def remote(**overrides: Any) -> dict:
    r = {"cluster": "idp", "uri": "https://idp.example.com/jwks.json", "refresh_seconds": 300,
         "timeout_ms": 1000, "min_refetch_seconds": 30}
    r.update(overrides)
    return {k: v for k, v in r.items() if v is not None}


def config(remote_jwks: dict, jwks: dict | None = None, issuer: str = ISSUER) -> dict:
    provider: dict[str, Any] = {"issuer": issuer, "audiences": [AUDIENCE], "remote_jwks": remote_jwks}
    if jwks is not None:
        provider["jwks"] = jwks
    return {"realm": "api", "providers": {"corp": provider},
            "rules": [{"match": {"prefix": "/"}, "provider": "corp"}]}


@pytest.fixture
def idp():
    server = JwksServer().start()
    yield server
    server.stop()


def start(request, upstream, idp: JwksServer, listeners: dict[str, dict], concurrency: int = 1):
    return start_stack(request, upstream, "remote-jwks",
                       [listener(name, 0, [wasm_filter(cfg)]) for name, cfg in listeners.items()],
                       extra_clusters=[static_cluster("idp", idp.port)], concurrency=concurrency)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def wait_until(what: Callable[[], Any], timeout: float = 10.0, step: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = what()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {timeout}s: {what}")
        time.sleep(step)


# Every VM's root context ticks this often (src/adapters/proxy_wasm/fetcher.rs, TICK_MS): an unknown kid asks for a
# refetch, and the next tick starts it.
TICK_SECONDS = 0.5


def wait_refetch_allowed(idp: JwksServer, min_refetch_seconds: float) -> None:
    """Until min_refetch_seconds have passed since the last fetch reached the IdP, so an unknown
    kid may start a refetch at once. The filter counts from when it started that fetch, which
    is before the IdP saw it: by its clock at least as long has passed."""
    wait_until(lambda: (idp.since_last() or 0) >= min_refetch_seconds, timeout=min_refetch_seconds + 10,
               step=0.05)


def cache_hits(stack) -> int:
    return stack.envoy.stats("jwt_guard.token_cache").get("wasmcustom.jwt_guard.token_cache.hit", 0)


def accepted(stack, token: str, name: str = "main") -> bool:
    resp = stack.get(name, "/x", headers=bearer(token))
    assert resp.status in (200, 401), resp
    return resp.status == 200


def stat(stack, name: str, provider: str = "corp") -> int:
    return stack.envoy.stats("jwt_guard.jwks").get(f"wasmcustom.jwt_guard.jwks.{provider}.{name}", 0)


def log_lines(stack, needle: str) -> list[str]:
    """Every log line with `needle`, once at least one is there (Envoy flushes its log file
    every so often, and later on a loaded machine)."""
    stack.envoy.wait_for_log(needle, timeout=10)
    return [line for line in stack.envoy.log().splitlines() if needle in line]


def test_keys_are_fetched_at_start_and_a_rotation_is_picked_up_without_a_restart(request, upstream, idp, refused):
    old, new = RotKey("old"), RotKey("new")
    idp.set(jwks={"keys": [old.jwk]})
    stack = start(request, upstream, idp, {"main": config(remote(min_refetch_seconds=1))})
    wait_until(lambda: accepted(stack, old.mint()))
    assert idp.count() == 1
    assert idp.authorities == ["idp.example.com"], "the :authority comes from the uri"
    # The IdP rotates: a token with the new kid triggers one refetch and is then accepted.
    idp.set(jwks={"keys": [old.jwk, new.jwk]})
    wait_until(lambda: accepted(stack, new.mint()))
    expect_upstream(stack.get("main", "/x", headers=bearer(old.mint())))
    assert idp.count() == 2
    assert stat(stack, "fetch_ok") == 2 and stat(stack, "fetch_failed") == 0
    assert stat(stack, "keys") == 2
    # A token of the old key, verified under this key set and so in the token cache (the second
    # use is a cache hit).
    cached = old.mint(sub="cached-before-retirement")
    expect_upstream(stack.get("main", "/x", headers=bearer(cached)))
    hits = cache_hits(stack)
    expect_upstream(stack.get("main", "/x", headers=bearer(cached)))
    assert cache_hits(stack) == hits + 1, "the token was not answered from the cache"
    # The old key is retired by the IdP: gone after the next fetch (here: the next unknown kid,
    # once min_refetch_seconds allows one).
    idp.set(jwks={"keys": [new.jwk]})
    wait_refetch_allowed(idp, 1)
    with refused():
        expect_401(stack.get("main", "/x", headers=bearer(RotKey("other").mint())), "unknown_key")
    wait_until(lambda: idp.count() == 3)
    wait_until(lambda: not accepted(stack, old.mint()))
    expect_401(stack.get("main", "/x", headers=bearer(old.mint())), "unknown_key")
    # The cached token of the retired key: its cache entry belongs to the old key set.
    with refused():
        expect_401(stack.get("main", "/x", headers=bearer(cached)), "unknown_key")
    expect_upstream(stack.get("main", "/x", headers=bearer(new.mint())))


def test_idp_down_at_start_refuses_keys_unavailable_and_inline_keys_still_serve(request, upstream, idp, refused):
    fetched, inline = RotKey("fetched"), RotKey("inline")
    idp.set(mode="down", jwks={"keys": [fetched.jwk]})
    stack = start(request, upstream, idp, {
        "remote": config(remote()),
        "both": config(remote(), jwks={"keys": [inline.jwk]}),
    })
    wait_until(lambda: stat(stack, "fetch_failed") >= 2)
    with refused():
        expect_401(stack.get("remote", "/x", headers=bearer(fetched.mint())), "keys_unavailable")
    expect_upstream(stack.get("both", "/x", headers=bearer(inline.mint())))
    expect_401(stack.get("remote", "/x"), "missing")
    # One warning for the change of state, not one per attempt or per request.
    assert len(log_lines(stack, FAILED_LOG)) == 1, log_lines(stack, FAILED_LOG)
    assert "keys_unavailable" in log_lines(stack, FAILED_LOG)[0]
    # The IdP comes back: the retry (backoff 1 s, 2 s, 4 s, ...) brings the keys.
    idp.set(mode="ok")
    wait_until(lambda: accepted(stack, fetched.mint(), "remote"), timeout=15)
    # The other VM switches on its next tick (every VM within half a second).
    wait_until(lambda: accepted(stack, fetched.mint(), "both"), timeout=5)
    # Fetched keys replace the inline ones once a fetch succeeds.
    expect_401(stack.get("both", "/x", headers=bearer(inline.mint())), "unknown_key")
    assert log_lines(stack, "JWKS for provider corp: fetched again after failures")


def test_idp_down_later_keeps_the_old_keys(request, upstream, idp):
    key = RotKey("k")
    idp.set(jwks={"keys": [key.jwk]})
    stack = start(request, upstream, idp, {"main": config(remote(refresh_seconds=1, min_refetch_seconds=1))})
    wait_until(lambda: accepted(stack, key.mint()))
    idp.set(mode="down")
    wait_until(lambda: stat(stack, "fetch_failed") >= 3)
    for _ in range(5):
        expect_upstream(stack.get("main", "/x", headers=bearer(key.mint())))
    lines = log_lines(stack, FAILED_LOG)
    assert len(lines) == 1 and "HTTP status 503" in lines[0] and "keeping the 1 keys in use" in lines[0], lines
    assert stat(stack, "keys") == 1


def test_a_slow_idp_times_out_and_the_old_keys_stay(request, upstream, idp):
    key = RotKey("k")
    idp.set(jwks={"keys": [key.jwk]})
    stack = start(request, upstream, idp,
                  {"main": config(remote(refresh_seconds=1, min_refetch_seconds=1, timeout_ms=300))})
    wait_until(lambda: accepted(stack, key.mint()))
    idp.set(mode="slow", delay=2.0)
    wait_until(lambda: stat(stack, "fetch_failed") >= 1, timeout=8)
    expect_upstream(stack.get("main", "/x", headers=bearer(key.mint())))
    assert "timeout_ms passed" in log_lines(stack, FAILED_LOG)[0]


@pytest.mark.parametrize("mode", ["malformed", "oversized"])
def test_a_malformed_or_oversized_document_keeps_the_old_keys(request, upstream, idp, mode):
    key = RotKey("k")
    idp.set(jwks={"keys": [key.jwk]})
    stack = start(request, upstream, idp, {"main": config(remote(refresh_seconds=1, min_refetch_seconds=1))})
    wait_until(lambda: accepted(stack, key.mint()))
    idp.set(mode=mode)
    wait_until(lambda: stat(stack, "fetch_failed") >= 2)
    expect_upstream(stack.get("main", "/x", headers=bearer(key.mint())))
    line = log_lines(stack, FAILED_LOG)[0]
    assert ("not valid JSON" in line) if mode == "malformed" else ("bytes, more than 262144" in line), line


def test_one_bad_key_is_skipped_and_reported_the_good_ones_serve(request, upstream, idp):
    key = RotKey("good")
    bad = {"kty": "EC", "crv": "P-521", "kid": "bad", "x": "AA", "y": "AA"}
    idp.set(jwks={"keys": [bad, key.jwk]})
    stack = start(request, upstream, idp, {"main": config(remote())})
    wait_until(lambda: accepted(stack, key.mint()))
    lines = log_lines(stack, "JWKS for provider corp: key skipped: keys[0]")
    assert len(lines) == 1 and "P-521" in lines[0], lines


def test_another_issuers_unknown_kid_never_triggers_a_fetch_this_issuers_does(request, upstream, idp, refused):
    key = RotKey("k")
    idp.set(jwks={"keys": [key.jwk]})
    stack = start(request, upstream, idp, {"main": config(remote(min_refetch_seconds=1, timeout_ms=1000))})
    wait_until(lambda: accepted(stack, key.mint()))
    wait_refetch_allowed(idp, 1)
    fetched = idp.count()
    # The window: a refetch asked for is started at the next tick (TICK_SECONDS) and reaches
    # the IdP on loopback within timeout_ms (1 s), or is counted fetch_failed; 1.5 s to spare.
    window = TICK_SECONDS + 1.0 + 1.5
    # For the whole window (every tick in it sees them), another issuer's tokens with unknown kids.
    sent = 0
    with refused():
        end = time.monotonic() + window
        while time.monotonic() < end:
            token = key.mint(kid=uuid.uuid4().hex, iss="https://attacker.example")
            expect_401(stack.get("main", "/x", headers=bearer(token)), "unknown_key")
            sent += 1
            time.sleep(0.05)
    assert sent >= 10
    assert (idp.count(), stat(stack, "fetch_failed")) == (fetched, 0), "a token of another issuer made a fetch"
    # The control, in the same state (min_refetch_seconds long past): one token of this issuer
    # with an unknown kid, and its refetch reaches the IdP within the same window.
    began = time.monotonic()
    with refused():
        expect_401(stack.get("main", "/x", headers=bearer(key.mint(kid=uuid.uuid4().hex))), "unknown_key")
    wait_until(lambda: idp.count() == fetched + 1, timeout=window, step=0.02)
    print(f"\nunknown kid of this issuer: refetch at the IdP after {time.monotonic() - began:.2f} s "
          f"(window {window} s; {sent} tokens of another issuer in it: no fetch)")


def test_an_unknown_kid_flood_makes_a_bounded_number_of_fetches(request, upstream, idp, refused):
    key = RotKey("k")
    idp.set(jwks={"keys": [key.jwk]})
    stack = start(request, upstream, idp, {"main": config(remote(min_refetch_seconds=2, timeout_ms=1000))})
    wait_until(lambda: accepted(stack, key.mint()))
    wait_refetch_allowed(idp, 2)
    fetched = idp.count()
    # This issuer's tokens with random kids: at most one fetch per min_refetch_seconds.
    began, requests = time.monotonic(), 0
    with refused():
        while time.monotonic() - began < 6.0:
            token = key.mint(kid=uuid.uuid4().hex)
            expect_401(stack.get("main", "/x", headers=bearer(token)), "unknown_key")
            requests += 1
    elapsed = time.monotonic() - began
    # A fetch the last requests asked for starts at the next tick and reaches the IdP within
    # timeout_ms (1 s) or fails: after that window, every fetch the flood caused has been seen
    # (and each has been answered once the filter counted it).
    time.sleep(TICK_SECONDS + 1.0 + 0.5)
    wait_until(lambda: stat(stack, "fetch_ok") + stat(stack, "fetch_failed") == idp.count())
    fetches = idp.count() - fetched
    print(f"\nunknown-kid flood: {requests} requests in {elapsed:.1f} s -> {fetches} JWKS fetches "
          f"(min_refetch_seconds=2)")
    assert requests >= 50
    # Attempts start at least 2 s apart, the last one no later than a tick after the flood.
    assert 1 <= fetches <= (elapsed + TICK_SECONDS) // 2 + 1, fetches


def test_two_workers_are_served_by_one_fetch(request, upstream, idp):
    old, new = RotKey("old"), RotKey("new")
    idp.set(jwks={"keys": [old.jwk]})
    stack = start(request, upstream, idp, {"main": config(remote(min_refetch_seconds=1))}, concurrency=2)
    wait_until(lambda: accepted(stack, old.mint()))
    time.sleep(2.0)  # every VM has ticked several times by now
    at_start = idp.count()
    # Rotation: one refetch, and then every worker accepts the new key.
    idp.set(jwks={"keys": [old.jwk, new.jwk]})
    wait_until(lambda: accepted(stack, new.mint()))
    time.sleep(1.0)  # one tick for the other worker to adopt the stored document
    for _ in range(20):  # a connection each: Envoy spreads them over both workers
        expect_upstream(stack.get("main", "/x", headers=bearer(new.mint())))
    time.sleep(1.0)
    after_rotation = idp.count()
    print(f"\ntwo workers: {at_start} JWKS fetch(es) at start, {after_rotation} after one rotation")
    assert at_start == 1, at_start
    assert after_rotation == 2, after_rotation
    assert stat(stack, "fetch_ok") == 2


def test_oidc_discovery_finds_the_jwks_uri(request, upstream, idp):
    key = RotKey("k")
    issuer = "https://idp.example.com/realms/demo"
    idp.set(jwks={"keys": [key.jwk]},
            discovery={"issuer": issuer, "jwks_uri": "https://keys.example.com/realms/demo/jwks.json"})
    stack = start(request, upstream, idp, {"main": config({"cluster": "idp", "discovery": True}, issuer=issuer)})
    wait_until(lambda: accepted(stack, key.mint(iss=issuer)))
    assert idp.count("/realms/demo/.well-known/openid-configuration") == 1
    assert idp.count("/realms/demo/jwks.json") == 1
    assert idp.authorities == ["idp.example.com", "keys.example.com"]


def test_stale_keys_return_to_the_vm_that_fetches_them_again(request, upstream, idp, refused):
    """One VM only, so it is always the one that fetches: after its keys were dropped as
    stale, the same document fetched again (unchanged, so not stored again) is put back in
    force."""
    key = RotKey("k")
    idp.set(jwks={"keys": [key.jwk]})
    # The least max_stale_seconds the filter accepts here: 1 s + 2 x 1 s + 1.5 s, rounded up.
    r = remote(refresh_seconds=1, min_refetch_seconds=1, max_stale_seconds=5)
    stack = start(request, upstream, idp, {"remote": config(r)})
    wait_until(lambda: accepted(stack, key.mint(), "remote"))
    idp.set(mode="down")
    wait_until(lambda: stack.get("remote", "/x", headers=bearer(key.mint())).status == 401, timeout=12)
    with refused():
        expect_401(stack.get("remote", "/x", headers=bearer(key.mint())), "keys_unavailable")
    idp.set(mode="ok")
    wait_until(lambda: accepted(stack, key.mint(), "remote"), timeout=15)


def test_keys_older_than_max_stale_are_dropped(request, upstream, idp, refused):
    key, inline = RotKey("k"), RotKey("inline")
    idp.set(jwks={"keys": [key.jwk]})
    # The least max_stale_seconds the filter accepts here: 1 s + 2 x 1 s + 1.5 s, rounded up.
    r = remote(refresh_seconds=1, min_refetch_seconds=1, max_stale_seconds=5)
    stack = start(request, upstream, idp, {"remote": config(r), "both": config(r, jwks={"keys": [inline.jwk]})})
    wait_until(lambda: accepted(stack, key.mint(), "remote"))
    idp.set(mode="down")
    wait_until(lambda: stack.get("remote", "/x", headers=bearer(key.mint())).status == 401, timeout=12)
    with refused():
        expect_401(stack.get("remote", "/x", headers=bearer(key.mint())), "keys_unavailable")
    # The other VM drops its copy on its own next tick: back to its inline keys.
    wait_until(lambda: accepted(stack, inline.mint(), "both"), timeout=5)
    assert log_lines(stack, "keys older than max_stale_seconds dropped")
    # The IdP is back: the keys return.
    idp.set(mode="ok")
    wait_until(lambda: accepted(stack, key.mint(), "remote"), timeout=15)
