"""Exact time boundaries in real Envoy (issue #15): for `exp`, `nbf`, `iat` in the future, the
maximum lifetime and the clock skew, the last second a token is accepted and the first second it
is refused, each checked against the filter's clock (Envoy's host clock, read by
proxy_get_current_time_nanoseconds) with tokens minted by PyJWT.

How a test knows the filter's second: the filter reads the host clock while Envoy handles the
request, so between the moment the client starts the request and the moment it has the answer.
`at_one_second` mints the token for the current second N of this host's clock (the same clock),
sends it, and keeps the answer only if the clock still reads N once the answer is in: then the
filter judged the token at second N exactly. If a second boundary was crossed it tries again (a
request takes milliseconds; it starts early in a second). An off-by-one comparison in the
filter (`>` for `>=`, a skew one second short) turns one of each pair of answers around.

The rules (RFC 7519 and docs/evaluation.md *Evaluation order*), at second `now` with skew S:
- `exp`: refused `expired` from `now >= exp + S` on: last accepted exp = now - S + 1.
- `nbf`: refused `not_yet_valid` while `nbf > now + S`: last accepted nbf = now + S.
- `iat`: refused `issued_in_future` while `iat > now + S`: last accepted iat = now + S.
- `max_lifetime_seconds` M: refused `lifetime_exceeded` when `exp - iat > M` (`exp - now`
  without `iat`): last accepted exp - iat = M.
A cached token is judged again on every use: one accepted in the last second of its `exp` is
refused in the next second, from the cache."""

from __future__ import annotations

import time
from typing import Callable

import pytest

from conftest import expect_401, expect_upstream, start_stack
from harness import Response, listener, wasm_filter
from tokens import AUDIENCE, DROP, KeySet

MAX_LIFETIME = 600
# Two providers: no skew, and a skew that is neither 0 nor the default (60), so a filter that
# ignores the configured skew, or applies it one second short or long, fails too.
SKEWS = {"strict": 0, "skewed": 7}


def issuer(name: str) -> str:
    return f"https://{name}.example.com"


def config(keys: KeySet) -> dict:
    return {
        "realm": "api",
        "providers": {name: {"issuer": issuer(name), "audiences": [AUDIENCE], "jwks": keys.jwks(["ES256"]),
                             "clock_skew_seconds": skew, "max_lifetime_seconds": MAX_LIFETIME}
                      for name, skew in SKEWS.items()},
        "rules": [{"match": {"prefix": f"/{name}"}, "provider": name} for name in SKEWS],
    }


@pytest.fixture(scope="module")
def stack(request, upstream, keys, wasm):
    return start_stack(request, upstream, "time-boundaries", [listener("main", 0, [wasm_filter(config(keys))])])


def at_one_second(send: Callable[[int], Response], attempts: int = 20) -> Response:
    """`send(now)` with `now` the current second of the host clock, retried until the request
    started and got its answer within that one second (so the filter judged it at `now`)."""
    for _ in range(attempts):
        t0 = time.time()
        now = int(t0)
        if t0 - now > 0.75:
            time.sleep(now + 1 - t0)  # too close to the next second: start at its beginning
            continue
        resp = send(now)
        if int(time.time()) == now:
            return resp
    raise AssertionError(f"no request fitted in one second of the clock in {attempts} attempts")


def case(stack, keys: KeySet, provider: str, claims: Callable[[int], dict]) -> Response:
    """A token of `provider` with the claims `claims(now)` (beside iss, aud, sub), judged at `now`."""
    def send(now: int) -> Response:
        token = keys.mint("ES256", iss=issuer(provider), **claims(now))
        return stack.get("main", f"/{provider}/x", headers={"Authorization": f"Bearer {token}"})
    return at_one_second(send)


def accepted(stack, keys, provider, claims) -> None:
    expect_upstream(case(stack, keys, provider, claims))


def refused(stack, keys, provider, claims, reason: str, upstream) -> None:
    before = upstream.count
    expect_401(case(stack, keys, provider, claims), reason)
    assert upstream.count == before, "a refused request reached the upstream"


@pytest.mark.parametrize("provider", SKEWS)
def test_exp_last_accepted_and_first_refused_second(stack, keys, upstream, provider):
    s = SKEWS[provider]
    accepted(stack, keys, provider, lambda now: {"iat": now - 100, "exp": now - s + 1})
    refused(stack, keys, provider, lambda now: {"iat": now - 100, "exp": now - s}, "expired", upstream)


@pytest.mark.parametrize("provider", SKEWS)
def test_nbf_last_accepted_and_first_refused_second(stack, keys, upstream, provider):
    s = SKEWS[provider]
    accepted(stack, keys, provider, lambda now: {"iat": now - 10, "exp": now + 300, "nbf": now + s})
    refused(stack, keys, provider, lambda now: {"iat": now - 10, "exp": now + 300, "nbf": now + s + 1},
            "not_yet_valid", upstream)


@pytest.mark.parametrize("provider", SKEWS)
def test_iat_in_the_future_last_accepted_and_first_refused_second(stack, keys, upstream, provider):
    s = SKEWS[provider]
    accepted(stack, keys, provider, lambda now: {"iat": now + s, "exp": now + 300})
    refused(stack, keys, provider, lambda now: {"iat": now + s + 1, "exp": now + 300}, "issued_in_future", upstream)


@pytest.mark.parametrize("provider", SKEWS)
def test_max_lifetime_last_accepted_and_first_refused_second(stack, keys, upstream, provider):
    # exp - iat (the skew plays no part).
    accepted(stack, keys, provider, lambda now: {"iat": now - 10, "exp": now - 10 + MAX_LIFETIME})
    refused(stack, keys, provider, lambda now: {"iat": now - 10, "exp": now - 10 + MAX_LIFETIME + 1},
            "lifetime_exceeded", upstream)
    # Without iat: exp - now, so the filter's clock decides.
    accepted(stack, keys, provider, lambda now: {"iat": DROP, "exp": now + MAX_LIFETIME})
    refused(stack, keys, provider, lambda now: {"iat": DROP, "exp": now + MAX_LIFETIME + 1},
            "lifetime_exceeded", upstream)


@pytest.mark.parametrize("provider", SKEWS)
def test_a_cached_token_is_refused_from_its_first_expired_second(stack, keys, upstream, provider):
    """Accepted (and so cached) in the last second of its validity, refused in the next one: the
    cache hit checks the time again."""
    s = SKEWS[provider]
    path = f"/{provider}/x"

    def hits() -> int:
        return stack.envoy.stats("jwt_guard.token_cache").get("wasmcustom.jwt_guard.token_cache.hit", 0)

    for _ in range(5):
        minted: dict[str, object] = {}

        def first(now: int) -> Response:
            minted["token"] = keys.mint("ES256", iss=issuer(provider), iat=now - 100, exp=now - s + 1)
            minted["second"] = now
            return stack.get("main", path, headers={"Authorization": f"Bearer {minted['token']}"})

        expect_upstream(at_one_second(first))
        expired_from = int(minted["second"]) + 1  # type: ignore[call-overload]
        before_hits, before = hits(), upstream.count
        time.sleep(max(0.0, expired_from - time.time()))  # the clock reaches the first refused second
        resp = stack.get("main", path, headers={"Authorization": f"Bearer {minted['token']}"})
        if int(time.time()) != expired_from:
            continue  # the replay did not fit in that second: another token
        expect_401(resp, "expired")
        assert upstream.count == before, "a refused request reached the upstream"
        assert hits() == before_hits + 1, "the replay was not answered from the token cache"
        return
    raise AssertionError("no replay fitted in the first refused second in 5 attempts")
