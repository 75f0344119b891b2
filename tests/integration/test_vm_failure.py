"""What a client gets when a Wasm VM fails (issue #11 item 4), in a real Envoy.

jwt-guard has no panics, so no request can make its VM trap; but a VM can still fail (memory
exhausted, a bug, V8 refusing a module), and what Envoy does then is the same for every module.
These tests use tests/trap-envoy, a test-only module that is the smallest guard (403 unless the
request carries `x-allow`) and fails on demand: a trap on a request with `x-trap`, `false` from
`on_vm_start` or `on_configure`. A VM that cannot start is also shown with jwt-guard's own .wasm,
truncated.

What the *Failure modes* section of docs/operations.md says, checked here:
- `fail_open: false` (jwt-guard's setting, Envoy's FAIL_CLOSED): after a trap, every request the
  failed VM would have handled is answered 503 by Envoy (empty body, response code details
  `wasm_fail_stream`) and never reaches the upstream, until Envoy restarts or the filter gets a
  different configuration (the same one pushed again changes nothing); a VM on another worker
  keeps judging its requests.
- `failure_policy: FAIL_RELOAD`: the same 503s while Envoy waits to replace the VM (backoff,
  1 s by default), then a new VM judges again; `wasm.<plugin>.vm_reload_*` count it.
- `fail_open: true`: after a trap the filter is skipped — requests reach the upstream unjudged.
- A VM that cannot start (bad bytes, `on_vm_start` or `on_configure` false): Envoy refuses the
  configuration; at start-up it exits (nothing listens). A rejected dynamic update keeps the
  previous configuration serving (test_hot_reload.py).
"""

from __future__ import annotations

import http.client
import json
import time
from pathlib import Path

import pytest

from harness import REPO_ROOT, WASM_PATH, Envoy, bootstrap, listener, request, wasm_filter
from test_hot_reload import EcdsFile, ecds_stat

pytestmark = pytest.mark.wasm_only(reason="Wasm VM traps, failure_policy and fail_open; the module shares Envoy's process, and its load failures are tested in test_native.py")

TRAP_WASM = REPO_ROOT / "target" / "wasm32-wasip1" / "wycheproof-envoy" / "trap_envoy.wasm"
STRING_VALUE = "type.googleapis.com/google.protobuf.StringValue"
TRAP_LOG = "Function: proxy_on_request_headers failed: Uncaught RuntimeError: unreachable"
REFUSED_BY_MODULE = b"refused by the trap module"


@pytest.fixture(scope="module")
def trap_wasm() -> Path:
    if not TRAP_WASM.exists():
        pytest.fail(f"{TRAP_WASM} is missing: run `make test-wasm` (make integration does it)", pytrace=False)
    return TRAP_WASM


def trap_filter(wasm: Path, *, fail_open: bool = False, failure_policy: str | None = None,
                plugin_config: str = "guard", vm_config: str | None = None) -> dict:
    f = wasm_filter(plugin_config, wasm, name="trap")
    config = f["typed_config"]["config"]
    config["fail_open"] = fail_open
    if failure_policy:
        config["failure_policy"] = failure_policy
    if vm_config:
        config["vm_config"]["configuration"] = {"@type": STRING_VALUE, "value": vm_config}
    return f


def with_access_log(lst: dict, path: Path) -> dict:
    """The listener's HCM logs `<status> <response code details>` per request to `path`."""
    hcm = lst["filter_chains"][0]["filters"][0]["typed_config"]
    hcm["access_log"] = [{"name": "envoy.access_loggers.file", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
        "path": str(path),
        "log_format": {"text_format_source": {"inline_string": "%RESPONSE_CODE% %RESPONSE_CODE_DETAILS%\n"}}}}]
    return lst


class Running:
    def __init__(self, envoy: Envoy, access_log: Path):
        self.envoy = envoy
        self.port = envoy.listener_ports()["main"]
        self.access_log = access_log

    def get(self, **headers: str):
        return request(self.port, "/x", headers=headers)

    def stat(self, name: str) -> int:
        return self.envoy.stats(f"^{name}$".replace(".", r"\.")).get(name, 0)

    def access_lines(self, count: int) -> list[str]:
        """The access log once it has `count` lines (Envoy flushes it every 100 ms here)."""
        deadline = time.monotonic() + 10
        while True:
            lines = self.access_log.read_text().splitlines() if self.access_log.exists() else []
            if len(lines) >= count or time.monotonic() > deadline:
                return lines
            time.sleep(0.05)


@pytest.fixture
def run(upstream, tmp_path):
    """Starts Envoy with one listener `main` holding `filters`; always stopped. The log is not
    checked for Wasm failures, as start_stack does: here they are the point."""
    started: list[Envoy] = []

    def start(filters: list[dict], concurrency: int = 1, exact_balance: bool = False) -> Running:
        access_log = tmp_path / f"access-{len(started)}.log"
        lst = with_access_log(listener("main", 0, filters), access_log)
        if exact_balance:
            lst["connection_balance_config"] = {"exact_balance": {}}
        env = Envoy(bootstrap([lst], upstream.port), name=f"vm-failure-{len(started)}", concurrency=concurrency)
        started.append(env)
        env.start()
        return Running(env, access_log)

    yield start
    for env in started:
        env.cleanup()


def keep_alive(port: int) -> http.client.HTTPConnection:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.connect()
    return conn


def get_on(conn: http.client.HTTPConnection, **headers: str) -> tuple[int, bytes]:
    conn.request("GET", "/x", headers=headers)
    resp = conn.getresponse()
    return resp.status, resp.read()


def test_a_trap_refuses_every_later_request_of_that_vm_with_503_and_none_reaches_the_upstream(
        run, trap_wasm, upstream):
    env = run([trap_filter(trap_wasm)])
    # The guard judges: x-allow passes, anything else is its 403.
    assert env.get(**{"x-allow": "1"}).status == 200
    r = env.get()
    assert (r.status, r.body) == (403, REFUSED_BY_MODULE)
    before = upstream.count
    conn = keep_alive(env.port)
    assert get_on(conn, **{"x-allow": "1"})[0] == 200
    before += 1

    # The trap: Envoy answers the request itself (a request the guard would have let through).
    r = env.get(**{"x-trap": "1", "x-allow": "1"})
    assert r.status == 503 and r.body == b"" and r.header("www-authenticate") is None, r
    env.envoy.wait_for_log(TRAP_LOG, timeout=10)

    # Every later request is refused, on new connections and on one opened before the trap,
    # with or without x-allow: the filter's VM is gone and nothing judges, so nothing passes.
    answers = []
    for _ in range(10):
        answers.append(env.get(**{"x-allow": "1"}).status)
        answers.append(env.get().status)
        answers.append(get_on(conn, **{"x-allow": "1"})[0])
    assert answers == [503] * 30, answers
    assert upstream.count == before, "a request reached the upstream after the VM failed"

    # What an operator sees: the log line above, the 503s with their details in the access log
    # (the module's own 403 has no details), and the listener's 5xx counter.
    lines = env.access_lines(35)
    assert lines[:4] == ["200 via_upstream", "403 ", "200 via_upstream", "503 wasm_fail_stream"], lines
    assert lines[4:] == ["503 wasm_fail_stream"] * 30, lines
    assert env.stat("http.main.downstream_rq_5xx") == 31
    conn.close()


def test_a_trap_fails_one_worker_the_vm_of_the_other_keeps_judging(run, trap_wasm, upstream):
    env = run([trap_filter(trap_wasm)], concurrency=2, exact_balance=True)
    # Two connections; exact balance puts one on each worker (each worker has its own VM).
    a, b = keep_alive(env.port), keep_alive(env.port)
    assert get_on(a, **{"x-allow": "1"})[0] == 200 and get_on(b, **{"x-allow": "1"})[0] == 200
    active = env.envoy.stats(r"worker_\d+\.downstream_cx_active$")
    assert sorted(active.values()) == [1, 1], active

    status, body = get_on(a, **{"x-trap": "1"})
    assert (status, body) == (503, b"")
    before = upstream.count
    for _ in range(10):
        assert get_on(a, **{"x-allow": "1"})[0] == 503
        assert get_on(b, **{"x-allow": "1"})[0] == 200
        assert get_on(b) == (403, REFUSED_BY_MODULE)
    assert upstream.count == before + 10, "only the healthy worker's allowed requests reach the upstream"
    # The connection on the failed worker was not closed: its requests stay there, refused.
    assert env.envoy.stats(r"worker_\d+\.downstream_cx_total$") == {
        k.replace("active", "total"): 1 for k in active}
    a.close()
    b.close()


def test_a_different_configuration_replaces_the_failed_vm_the_same_one_does_not(trap_wasm, upstream,
                                                                                tmp_path):
    ecds = EcdsFile(tmp_path, name="trap")
    ecds.swap(trap_filter(trap_wasm))
    env = Envoy(ecds.bootstrap(upstream.port), name="vm-failure-ecds")
    try:
        env.start()
        port = env.listener_ports()["main"]

        def answers() -> list[int]:
            return [request(port, "/x").status, request(port, "/x", headers={"x-allow": "1"}).status]

        def stat(name: str) -> int:
            return ecds_stat(env, name, "trap")

        def swap_and_wait(http_filter: dict) -> None:
            """Writes the update and returns once Envoy has processed it: update_success counts
            after the subscription's onConfigUpdate returned. A configuration whose hash equals
            the one in force returns there without touching the workers; a different one is
            posted to every worker, and config_reload counts once all of them have it."""
            processed = stat("update_success") + stat("update_rejected") + stat("update_failure")
            ecds.swap(http_filter)
            deadline = time.monotonic() + 10
            while stat("update_success") + stat("update_rejected") + stat("update_failure") == processed:
                assert time.monotonic() < deadline, "Envoy did not process the update in 10 s"
                time.sleep(0.05)
            assert stat("update_rejected") + stat("update_failure") == 0

        assert answers() == [403, 200]
        assert request(port, "/x", headers={"x-trap": "1"}).status == 503
        assert answers() == [503, 503]
        reloads = stat("config_reload")
        # The same configuration again (another version_info): nothing reaches the workers, so
        # the failed VM stays and these answers are final (the reload count below proves it).
        swap_and_wait(trap_filter(trap_wasm))
        assert answers() == [503, 503]
        # A different one: wait until every worker has it (config_reload), then a new VM judges.
        swap_and_wait(trap_filter(trap_wasm, plugin_config="guard, version 2"))
        deadline = time.monotonic() + 10
        while stat("config_reload") == reloads:
            assert time.monotonic() < deadline, "the workers did not get the new configuration in 10 s"
            time.sleep(0.05)
        # One reload for the two updates: the same configuration made none. (Had it made one,
        # its workers' updates were queued before this one's, so it would have been counted
        # first.)
        assert stat("config_reload") - reloads == 1
        assert answers() == [403, 200]
    finally:
        env.cleanup()


def test_failure_policy_fail_reload_refuses_until_a_new_vm_judges_again(run, trap_wasm, upstream):
    env = run([trap_filter(trap_wasm, failure_policy="FAIL_RELOAD")])
    assert env.get(**{"x-trap": "1", "x-allow": "1"}).status == 503
    before = upstream.count
    answers, start = [], time.monotonic()
    while time.monotonic() - start < 10:
        status = env.get(**{"x-allow": "1"}).status
        answers.append(status)
        if status == 200:
            break
        time.sleep(0.05)
    # Refused while Envoy waits before replacing the VM (1 s by default), then a new VM.
    assert answers[-1] == 200 and set(answers[:-1]) == {503} and len(answers) > 1, answers
    assert upstream.count == before + 1
    # The new VM judges: its 403 again.
    r = env.get()
    assert (r.status, r.body) == (403, REFUSED_BY_MODULE)
    assert env.stat("wasm.trap.vm_reload_success") == 1
    assert env.stat("wasm.trap.vm_reload_backoff") == len(answers) - 1
    assert env.stat("wasm.trap.vm_reload_failure") == 0


def test_fail_open_true_lets_requests_through_unjudged_after_a_trap(run, trap_wasm, upstream):
    """Why jwt-guard must run with `fail_open: false`: with `true`, a failed VM means no check."""
    env = run([trap_filter(trap_wasm, fail_open=True)])
    r = env.get()
    assert (r.status, r.body) == (403, REFUSED_BY_MODULE)
    before = upstream.count
    # Even the request that made the VM fail goes on, and so does every later one (no x-allow:
    # the guard would refuse them).
    for headers in ({"x-trap": "1"}, {}, {}):
        r = env.get(**headers)
        assert r.status == 200 and json.loads(r.body)["path"] == "/x", r
    assert upstream.count == before + 3


@pytest.mark.parametrize("case", ["jwt_guard_truncated", "not_wasm", "on_vm_start_false", "on_configure_false"])
def test_a_vm_that_cannot_start_makes_envoy_refuse_the_configuration(case, trap_wasm, upstream, tmp_path):
    """At start-up Envoy exits: no listener, so no request is ever served unjudged."""
    if case == "jwt_guard_truncated":
        bad = tmp_path / "jwt_guard.wasm"
        bad.write_bytes(WASM_PATH.read_bytes()[: WASM_PATH.stat().st_size // 2])
        f = wasm_filter({"rules": [{"match": {"prefix": "/"}, "disabled": True}]}, bad)
    elif case == "not_wasm":
        bad = tmp_path / "not.wasm"
        bad.write_bytes(b"\0asm\x01\0\0\0not a module")
        f = trap_filter(bad)
    elif case == "on_vm_start_false":
        f = trap_filter(trap_wasm, vm_config="fail_start")
    else:
        f = trap_filter(trap_wasm, plugin_config="fail_configure")
    env = Envoy(bootstrap([listener("main", 0, [f])], upstream.port), name=f"cannot-start-{case}")
    try:
        assert env.run_to_exit(timeout=60) == 1
        log = env.log()
    finally:
        env.cleanup()
    assert "Plugin configured to fail closed failed to load" in log, log[-2000:]
    assert "Unable to create Wasm plugin" in log
    assert "Wasm VM failed" in log
