"""pytest fixtures: one key set and one echo upstream per session; each test module starts the
Envoy(s) it needs once (module scope) and always stops them. The reason codes, their fixed
descriptions and which 403s are about the token are read from src/reason.rs: one source."""

from __future__ import annotations

import json
import os
import re
from typing import Any, Callable

import pytest

from harness import (NATIVE_LIB_PATH, REPO_ROOT, WASM_PATH, EchoUpstream, Envoy, Response, Stack, bootstrap,
                     ipv6_available, runtime, stop_all_envoys)
from tokens import KeySet

REALM = "api"

# --------------------------------------------------------------------------- reason codes
# Parsed from src/reason.rs, the code that writes them into responses and counter names, so the
# tests can never drift from it; test_contract.py checks docs/evaluation.md against the same lists.
REASON_RS = REPO_ROOT / "src" / "reason.rs"


def _rust_fns(source: str, type_name: str) -> dict[str, str]:
    """{fn name: body} of the methods in `impl <type_name> { ... }` (rustfmt layout)."""
    impl = re.search(rf"^impl {type_name} \{{\n(.*?)^\}}", source, re.M | re.S)
    assert impl, f"{REASON_RS}: no `impl {type_name}`"
    return {m.group(1): m.group(2)
            for m in re.finditer(r"^    pub fn (\w+)\(self\)[^{]*\{\n(.*?)^    \}", impl.group(1), re.M | re.S)}


def _arms(body: str, type_name: str) -> dict[str, str]:
    """{Variant: "string"} of a `match self { Type::Variant => "string", ... }` body."""
    return dict(re.findall(rf'{type_name}::(\w+) => "([^"]*)"', body))


def _reasons() -> tuple[dict[str, str], dict[str, str], set[str]]:
    src = REASON_RS.read_text()
    auth, forb = _rust_fns(src, "AuthFailure"), _rust_fns(src, "Forbidden")
    codes401, desc401 = _arms(auth["code"], "AuthFailure"), _arms(auth["description"], "AuthFailure")
    codes403, desc403 = _arms(forb["code"], "Forbidden"), _arms(forb["description"], "Forbidden")
    about_token = set(re.findall(r"Forbidden::(\w+)", forb["is_about_token"]))
    for codes, descs, what in ((codes401, desc401, "AuthFailure"), (codes403, desc403, "Forbidden")):
        count = re.search(rf"pub const ALL: \[{what}; (\d+)\]", src)
        assert count and len(codes) == int(count.group(1)), f"{REASON_RS}: {what}: parsed {len(codes)} codes"
        assert set(codes) == set(descs), f"{REASON_RS}: {what}: code() and description() differ"
    assert about_token and about_token <= set(codes403), f"{REASON_RS}: is_about_token() names unknown variants"
    c401 = {codes401[v]: desc401[v] for v in codes401}  # dicts keep the source order
    c403 = {codes403[v]: desc403[v] for v in codes403}
    return c401, c403, {codes403[v] for v in about_token}


_C401, _C403, _TOKEN_403 = _reasons()
# code -> fixed error_description text, 401 and 403
DESCRIPTIONS: dict[str, str] = {**_C401, **_C403}
REASONS_401: list[str] = list(_C401)
REASONS_403: list[str] = list(_C403)
# 403s about what the token grants (insufficient_scope, with a challenge) ...
TOKEN_403: set[str] = _TOKEN_403
# ... and those about the network/country/rules (access_denied, no challenge)
NETWORK_403: set[str] = set(_C403) - _TOKEN_403


def in_ci() -> bool:
    """CI runs .ci/run with CI=true: there, a test that cannot run is a failure, not a skip."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


@pytest.fixture(scope="session")
def wasm() -> str:
    if not WASM_PATH.exists():
        pytest.fail(f"{WASM_PATH} is missing: run `make build` (make integration does it)", pytrace=False)
    if runtime() == "native" and not NATIVE_LIB_PATH.exists():
        pytest.fail(f"JWTG_RUNTIME=native but {NATIVE_LIB_PATH} is missing: run `make native`", pytrace=False)
    return str(WASM_PATH)


@pytest.fixture(scope="session")
def keys() -> KeySet:
    return KeySet()


@pytest.fixture(scope="session")
def upstream():
    up = EchoUpstream().start()
    yield up
    up.stop()


@pytest.fixture(scope="session", autouse=True)
def no_envoy_outlives_the_session():
    """Every Envoy a test started must have been stopped by its own fixture; stop and report
    any that was not. (A SIGKILLed pytest is covered by PR_SET_PDEATHSIG, see harness.py.)"""
    yield
    left = stop_all_envoys()
    assert not left, f"Envoy processes still running at the end of the session (now stopped): {left}"


@pytest.fixture
def ipv6_loopback() -> None:
    """For IPv6 tests: skip without an IPv6 loopback, except under CI=true, where it fails, so
    CI can never pass with the IPv6 paths silently untested."""
    if ipv6_available():
        return
    if in_ci():
        pytest.fail("no IPv6 loopback (::1) on this machine, and CI=true: the IPv6 tests must run in CI",
                    pytrace=False)
    pytest.skip("no IPv6 loopback on this machine")


def start_stack(request: pytest.FixtureRequest, upstream: EchoUpstream, name: str, listeners: list[dict],
                envoy_args: list[str] | None = None, log_level: str = "info",
                extra_clusters: list[dict] | None = None, concurrency: int = 1,
                bootstrap_extra: dict | None = None) -> Stack:
    """Start one Envoy with these listeners (port 0: Envoy binds them, the real ports are read
    back from its admin into Stack.ports by listener name); stop it at teardown, failing the
    module if its log shows the Wasm filter crashing. `bootstrap_extra`: top-level bootstrap
    members to add (stats_config, say)."""
    config = bootstrap(listeners, upstream.port, extra_clusters=extra_clusters)
    config.update(bootstrap_extra or {})
    env = Envoy(config, name=name,
                extra_args=envoy_args, log_level=log_level, concurrency=concurrency)

    def finish() -> None:
        env.stop()
        log = env.log()
        env.cleanup()
        crashes = [ln for ln in log.splitlines() if any(p in ln for p in CRASH_PATTERNS)]
        if crashes:
            pytest.fail(f"Envoy log of '{name}' shows the Wasm filter failing:\n" + "\n".join(crashes[:20]))

    request.addfinalizer(finish)
    env.start()
    ports = env.listener_ports()
    wanted = [lst["name"] for lst in listeners]
    assert sorted(ports) == sorted(wanted) and all(ports.values()), (ports, wanted)
    return Stack(env, upstream, ports)


# Log lines that mean the filter trapped, panicked or could not do its job: a request that was
# answered correctly by luck must not hide them.
CRASH_PATTERNS = ("panicked", "wasm trap", "Wasm VM failed", "Function: proxy_on_", "failed to execute",
                  "jwt-guard: cannot")


# ----------------------------------------------------------------------- assertions

CHALLENGE_RE = re.compile(r'^Bearer realm="(?P<realm>[^"]*)"(?P<rest>.*)$')


def expect_401(resp: Response, reason: str, realm: str = REALM) -> None:
    assert resp.status == 401, f"expected 401 {reason}, got {resp!r}"
    assert resp.header("content-type") == "application/json", resp
    assert resp.json() == {"status": 401, "error": "invalid_token", "reason": reason}, resp
    if reason == "missing":
        expected = f'Bearer realm="{realm}"'
    else:
        expected = f'Bearer realm="{realm}", error="invalid_token", error_description="{DESCRIPTIONS[reason]}"'
    assert resp.all("www-authenticate") == [expected], resp


def expect_403(resp: Response, reason: str, realm: str = REALM, scope: str | None = None) -> None:
    assert resp.status == 403, f"expected 403 {reason}, got {resp!r}"
    assert resp.header("content-type") == "application/json", resp
    error = "insufficient_scope" if reason in TOKEN_403 else "access_denied"
    assert resp.json() == {"status": 403, "error": error, "reason": reason}, resp
    if reason in TOKEN_403:
        expected = (f'Bearer realm="{realm}", error="insufficient_scope", '
                    f'error_description="{DESCRIPTIONS[reason]}"')
        if reason == "missing_scope":
            assert scope is not None
            expected += f', scope="{scope}"'
        assert resp.all("www-authenticate") == [expected], resp
    else:
        assert resp.all("www-authenticate") == [], resp


def expect_upstream(resp: Response) -> dict[str, Any]:
    """The request reached the echo upstream: returns what it received."""
    assert resp.status == 200, f"expected 200 from upstream, got {resp!r}"
    echoed = json.loads(resp.body)
    assert set(echoed) == {"method", "path", "headers"}, echoed
    return echoed


class NotForwarded:
    """Context manager: asserts the upstream saw no request inside the block."""

    def __init__(self, upstream: EchoUpstream):
        self.upstream = upstream

    def __enter__(self) -> "NotForwarded":
        self.before = self.upstream.count
        return self

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        if exc_type is None:
            assert self.upstream.count == self.before, "a refused request reached the upstream"


@pytest.fixture
def refused(upstream: EchoUpstream) -> Callable[[], NotForwarded]:
    return lambda: NotForwarded(upstream)



# ----------------------------------------------------------------------- runtimes

def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "wasm_only(reason): a test of the Wasm runtime itself (its VM, its foreign functions, its "
        "packaging); under JWTG_RUNTIME=native it is skipped with the reason (docs/runtimes.md lists them)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under JWTG_RUNTIME=native, the tests marked wasm_only are skipped, with their reason;
    every other test runs against the dynamic module."""
    if runtime() != "native":
        return
    for item in items:
        marker = item.get_closest_marker("wasm_only")
        if marker is not None:
            reason = marker.kwargs.get("reason") or (marker.args[0] if marker.args else "")
            item.add_marker(pytest.mark.skip(reason=f"Wasm runtime only: {reason}"))
