"""DPoP (RFC 9449) across requests, in real Envoy, both runtimes: jti replay (same connection,
another worker, and the same proof raced over two connections), server nonces (issued,
accepted, accepted by another Envoy with the same secret, made-up ones refused), and the
configurations Envoy must refuse.

The Envoy here runs two workers with exact connection balancing: a connection opened while
another is open goes to the other worker, which the per-worker listener counters confirm.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import NotForwarded, expect_upstream, start_stack
from dpop import ClientKey, bound_token, new_client_key, proof
from dpop_envoy import Conn, same_challenges, config, dpop_headers, expect_dpop_401, expect_nonce_401, send, url
from harness import Envoy, bootstrap, listener, request, wasm_filter
from tokens import ISSUER, KeySet

PARALLEL_PROOFS = 24


def balanced_listener(name: str, cfg: dict) -> dict:
    lst = listener(name, 0, [wasm_filter(cfg)])
    # The least busy worker takes each new connection: two open connections are on two workers.
    lst["connection_balance_config"] = {"exact_balance": {}}
    return lst


@pytest.fixture(scope="module")
def stack(request, upstream, keys, wasm):
    return start_stack(request, upstream, "dpop-flows", [balanced_listener("dpop", config(keys))], concurrency=2)


@pytest.fixture(scope="module")
def replica(request, upstream, keys, wasm):
    """Another Envoy with the same configuration (so the same nonce secret), as a second replica."""
    return start_stack(request, upstream, "dpop-replica", [listener("dpop", 0, [wasm_filter(config(keys))])])


@pytest.fixture(scope="module")
def stranger(request, upstream, keys, wasm):
    """An Envoy like the others but with another nonce secret."""
    cfg = config(keys, nonce_secret="another-integration-test-nonce-secret-987654")
    return start_stack(request, upstream, "dpop-stranger", [listener("dpop", 0, [wasm_filter(cfg)])])


@pytest.fixture(scope="module")
def alice() -> ClientKey:
    return new_client_key("ES256")


def port(stack) -> int:
    return stack.ports["dpop"]


def worker_connections(stack) -> dict[str, int]:
    """Connections accepted so far by each worker on the `dpop` listener (the only one; its
    stats are named after its configured address, port 0)."""
    stats = stack.envoy.stats(r"^listener\.127\.0\.0\.1_\d+\.worker_\d+\.downstream_cx_total$")
    assert len(stats) == 2, stats
    return stats


def changed(before: dict[str, int], after: dict[str, int]) -> list[str]:
    return sorted(name for name in after if after[name] != before.get(name, 0))


# --------------------------------------------------------------------------- replay


def test_a_proof_replayed_on_the_same_connection_is_refused(stack, keys, alice):
    token = bound_token(keys, alice)
    p = proof(alice, "GET", url(port(stack), "/dp/r"), token)
    with Conn(port(stack)) as conn:
        expect_upstream(conn.send("/dp/r", dpop_headers(token, p)))
        with NotForwarded(stack.upstream):
            expect_dpop_401(conn.send("/dp/r", dpop_headers(token, p)), "dpop_proof_replayed")
        # A fresh proof on the same connection is fine.
        expect_upstream(conn.send("/dp/r", dpop_headers(token, proof(alice, "GET", url(port(stack), "/dp/r"), token))))


def test_a_proof_replayed_on_another_worker_is_refused(stack, keys, alice):
    token = bound_token(keys, alice)
    p = proof(alice, "GET", url(port(stack), "/dp/w"), token)
    before = worker_connections(stack)
    with Conn(port(stack)) as first:
        expect_upstream(first.send("/dp/w", dpop_headers(token, p)))
        with Conn(port(stack)) as second:
            with NotForwarded(stack.upstream):
                expect_dpop_401(second.send("/dp/w", dpop_headers(token, p)), "dpop_proof_replayed")
    after = worker_connections(stack)
    assert len(changed(before, after)) == 2, f"both connections went to one worker: {before} -> {after}"


def test_each_proof_raced_over_two_connections_is_accepted_exactly_once(stack, keys, alice, upstream):
    token = bound_token(keys, alice)
    proofs = [proof(alice, "GET", url(port(stack), "/dp/race"), token) for _ in range(PARALLEL_PROOFS)]
    before_workers, before_upstream = worker_connections(stack), upstream.count

    def race(p: str):
        barrier = threading.Barrier(2)

        def one(_: int):
            barrier.wait()
            return send(stack, "/dp/race", token, p)

        with ThreadPoolExecutor(max_workers=2) as pool:
            return list(pool.map(one, range(2)))

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(race, proofs))
    for p, pair in zip(proofs, results):
        statuses = sorted(r.status for r in pair)
        assert statuses == [200, 401], (p[-16:], pair)
        expect_dpop_401(next(r for r in pair if r.status == 401), "dpop_proof_replayed")
    assert upstream.count - before_upstream == PARALLEL_PROOFS
    assert len(changed(before_workers, worker_connections(stack))) == 2, "one worker took every connection"


def test_the_same_jti_from_two_keys_is_two_proofs(stack, keys, alice):
    """jti is remembered per key thumbprint: another client's proof with the same jti is not a replay."""
    bob = new_client_key("ES256")
    jti = uuid.uuid4().hex
    for client in (alice, bob):
        token = bound_token(keys, client)
        expect_upstream(send(stack, "/dp/j", token, proof(client, "GET", url(port(stack), "/dp/j"), token,
                                                          claims={"jti": jti})))
    token = bound_token(keys, bob)
    with NotForwarded(stack.upstream):
        expect_dpop_401(send(stack, "/dp/j", token, proof(bob, "GET", url(port(stack), "/dp/j"), token,
                                                          claims={"jti": jti})), "dpop_proof_replayed")


def test_replay_counted_by_reason_and_provider(stack, keys, alice):
    token = bound_token(keys, alice)
    p = proof(alice, "GET", url(port(stack), "/dp/k"), token)
    expect_upstream(send(stack, "/dp/k", token, p))
    before = stack.envoy.stats("jwt_guard")
    with NotForwarded(stack.upstream):
        expect_dpop_401(send(stack, "/dp/k", token, p), "dpop_proof_replayed")
    after = stack.envoy.stats("jwt_guard")
    for name in ("wasmcustom.jwt_guard.refused.401.dpop_proof_replayed",
                 "wasmcustom.jwt_guard.provider.dp.refused.401.dpop_proof_replayed"):
        assert after.get(name, 0) - before.get(name, 0) == 1, (name, changed(before, after))


def test_a_full_replay_store_refuses_new_proofs_and_forgets_none(stack, keys, alice):
    """Provider `full` keeps 1024 jti: sent more, within their window, it fails closed
    (dpop_replay_unavailable) and every proof it accepted is still a replay."""
    token = bound_token(keys, alice)
    accepted: list[str] = []
    with Conn(port(stack)) as conn:
        for _ in range(1300):
            p = proof(alice, "GET", url(port(stack), "/full/f"), token)
            resp = conn.send("/full/f", dpop_headers(token, p))
            if resp.status == 200:
                accepted.append(p)
                continue
            expect_dpop_401(resp, "dpop_replay_unavailable")
            break
        else:
            pytest.fail("1300 proofs in the window of a store of 1024 jti: none refused")
        assert 16 <= len(accepted) <= 1024, len(accepted)
        with NotForwarded(stack.upstream):
            for p in accepted[:40] + accepted[-40:]:
                expect_dpop_401(conn.send("/full/f", dpop_headers(token, p)), "dpop_proof_replayed")


# --------------------------------------------------------------------------- nonces


def nonce_request(stack, keys: KeySet, client: ClientKey, nonce: str | None, path: str = "/nonce/n"):
    token = bound_token(keys, client)
    claims = {"nonce": nonce} if nonce is not None else {}
    return send(stack, path, token, proof(client, "GET", url(port(stack), path), token, claims=claims))


def test_the_nonce_flow(stack, keys, alice):
    def on(conn: Conn, nonce: str | None):
        token = bound_token(keys, alice)
        claims = {"nonce": nonce} if nonce is not None else {}
        return conn.send("/nonce/n", dpop_headers(token, proof(alice, "GET", url(port(stack), "/nonce/n"), token,
                                                               claims=claims)))

    before = worker_connections(stack)
    with Conn(port(stack)) as first, Conn(port(stack)) as second:
        with NotForwarded(stack.upstream):
            nonce = expect_nonce_401(on(first, None))
        echoed = expect_upstream(on(first, nonce))
        assert "dpop" not in echoed["headers"] and "authorization" not in echoed["headers"]
        # Stateless: the other worker takes it too, and it stays good for more proofs.
        expect_upstream(on(second, nonce))
        expect_upstream(on(first, nonce))
    assert len(changed(before, worker_connections(stack))) == 2, "both connections went to one worker"


def test_a_made_up_or_altered_nonce_is_refused(stack, keys, alice):
    nonce = expect_nonce_401(nonce_request(stack, keys, alice, None))
    mid = len(nonce) // 2
    flipped = nonce[:mid] + ("A" if nonce[mid] != "A" else "B") + nonce[mid + 1:]
    with NotForwarded(stack.upstream):
        for bad in ("made-up-nonce", "", flipped, nonce + "x", nonce[:-1]):
            expect_nonce_401(nonce_request(stack, keys, alice, bad))


def test_a_nonce_is_not_needed_where_none_is_configured(stack, keys, alice):
    expect_upstream(nonce_request(stack, keys, alice, None, path="/dp/nn"))


def test_a_nonce_from_one_replica_is_accepted_by_another(stack, replica, stranger, keys, alice):
    nonce = expect_nonce_401(nonce_request(stack, keys, alice, None))
    expect_upstream(nonce_request(replica, keys, alice, nonce))
    with NotForwarded(stack.upstream):
        other = expect_nonce_401(nonce_request(stranger, keys, alice, nonce))
    assert other != nonce
    expect_upstream(nonce_request(stranger, keys, alice, other))
    with NotForwarded(stack.upstream):
        expect_nonce_401(nonce_request(stack, keys, alice, other))


def test_a_nonce_expires_after_the_next_window(stack, keys, alice):
    nonce = expect_nonce_401(nonce_request(stack, keys, alice, None, path="/quick/n"))
    expect_upstream(nonce_request(stack, keys, alice, nonce, path="/quick/n"))
    # Issued in window w (1 s), good in w and w + 1; 2.5 s later it is w + 2 at least.
    time.sleep(2.5)
    with NotForwarded(stack.upstream):
        fresh = expect_nonce_401(nonce_request(stack, keys, alice, nonce, path="/quick/n"))
    assert fresh != nonce
    expect_upstream(nonce_request(stack, keys, alice, fresh, path="/quick/n"))


# --------------------------------------------------------------------------- refused configurations

PREFIX = "jwt-guard: invalid configuration: "


def _dpop_config(keys: KeySet, dpop: dict, **provider: object) -> dict:
    return {
        "realm": "api",
        "providers": {"corp": {"issuer": ISSUER, "jwks": keys.jwks(["ES256"]), "dpop": dpop, **provider}},
        "rules": [{"match": {"prefix": "/"}, "provider": "corp"}],
    }


BAD = [
    ("unknown member", {"foo": 1}, {}, "providers.corp.dpop.foo"),
    ("unknown nonce member", {"nonce": {"secret": "s" * 40, "bar": 1}}, {}, "providers.corp.dpop.nonce.bar"),
    ("max_age_seconds 0", {"max_age_seconds": 0}, {}, "providers.corp.dpop.max_age_seconds"),
    ("nonce secret 31 chars", {"nonce": {"secret": "s" * 31}}, {}, "providers.corp.dpop.nonce.secret"),
    ("algorithms with HS256", {"algorithms": ["ES256", "HS256"]}, {}, "providers.corp.dpop.algorithms"),
    ("replay_capacity below 1024", {"replay_capacity": 1023}, {}, "providers.corp.dpop.replay_capacity"),
    ("token not in authorization",
     {}, {"from_headers": [{"name": "x-token", "value_prefix": "Bearer "}]}, "providers.corp.dpop"),
]


def test_a_full_dpop_configuration_starts(keys, wasm, upstream, tmp_path):
    """Control for the refusals: every member at a valid value."""
    dpop = {"required": True, "max_age_seconds": 60, "algorithms": ["ES256", "EdDSA"],
            "nonce": {"secret": "s" * 32, "lifetime_seconds": 120}, "replay_capacity": 1024}
    env = Envoy(bootstrap([listener("good", 0, [wasm_filter(_dpop_config(keys, dpop))])], upstream.port),
                workdir=tmp_path, name="dpop-good")
    try:
        env.start()
        resp = request(env.listener_ports()["good"], "/x")
        assert resp.status == 401, resp
        assert same_challenges(resp.all("www-authenticate"), ['DPoP realm="api", algs="ES256 EdDSA"']), resp
    finally:
        env.cleanup()
    assert PREFIX not in env.log()


@pytest.fixture(scope="module")
def bad_runs(keys, wasm, upstream, tmp_path_factory):
    def run(case):
        cid, dpop, extra, _ = case
        env = Envoy(bootstrap([listener("bad", 0, [wasm_filter(_dpop_config(keys, dpop, **extra))])], upstream.port),
                    workdir=tmp_path_factory.mktemp("bad"), name="bad")
        try:
            return cid, (env.run_to_exit(timeout=60), env.log())
        finally:
            env.stop()

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(run, BAD))


@pytest.mark.parametrize("cid, needle", [(c[0], c[3]) for c in BAD], ids=[c[0] for c in BAD])
def test_a_bad_dpop_configuration_is_refused_naming_the_field(bad_runs, cid, needle):
    rc, log = bad_runs[cid]
    lines = [ln for ln in log.splitlines() if PREFIX in ln]
    assert rc != 0, f"{cid}: Envoy started:\n" + "\n".join(log.splitlines()[-10:])
    assert len(lines) == 1, "\n".join(log.splitlines()[-15:])
    detail = lines[0].split(PREFIX, 1)[1]
    assert re.match(re.escape(needle) + r"(\[\d+\])?:", detail), f"expected the field {needle!r}: {detail!r}"
