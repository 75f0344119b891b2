"""The native runtime (issue #17): jwt-guard as Envoy 1.40's dynamic module, libjwt_guard.so.

Whatever JWTG_RUNTIME says, these tests load the module explicitly:
- the ABI: every callback the library imports is exported by this Envoy, and every hook this
  Envoy looks up for an HTTP filter is exported by the library (but the optional ones named);
- load failures: a missing library and a refused configuration stop Envoy with a clear line,
  so no request is ever served unjudged;
- the same answers: one Envoy with the Wasm filter on one listener and the module on the other,
  from the same JSON, answers a table of requests identically (status, body, challenge, what
  goes upstream) and counts them under the same stat names.
The rest of the suite runs against the module under JWTG_RUNTIME=native (make integration)."""

from __future__ import annotations

import re
import subprocess

import pytest

from conftest import start_stack
from harness import (NATIVE_LIB_DIR, NATIVE_LIB_PATH, Envoy, bootstrap, envoy_binary, envoy_version, listener,
                     native_filter, route, wasm_filter)
from tokens import AUDIENCE, ISSUER, KeySet

pytestmark = pytest.mark.skipif(
    envoy_version()[:2] != (1, 40),
    reason="the dynamic module is built against Envoy 1.40's ABI (docs/runtimes.md); this Envoy is another minor")

# Hooks Envoy 1.40 can look up that the module deliberately does not export: all optional.
# Per-route configuration is not used (rules bind to routes through route metadata), config-level
# streamed callouts are not used (key sets are fetched with one-shot callouts), and local replies
# need no hook.
OPTIONAL_HOOKS_NOT_EXPORTED = {
    "envoy_dynamic_module_on_http_filter_per_route_config_new",
    "envoy_dynamic_module_on_http_filter_per_route_config_destroy",
    "envoy_dynamic_module_on_http_filter_config_http_stream_headers",
    "envoy_dynamic_module_on_http_filter_config_http_stream_data",
    "envoy_dynamic_module_on_http_filter_config_http_stream_trailers",
    "envoy_dynamic_module_on_http_filter_config_http_stream_complete",
    "envoy_dynamic_module_on_http_filter_config_http_stream_reset",
    "envoy_dynamic_module_on_http_filter_local_reply",
}


@pytest.fixture(scope="module")
def native_lib() -> str:
    if not NATIVE_LIB_PATH.exists():
        pytest.fail(f"{NATIVE_LIB_PATH} is missing: run `make native` (make integration does it)", pytrace=False)
    return str(NATIVE_LIB_PATH)


def dynamic_symbols(path: str, *, defined: bool) -> set[str]:
    flag = "--defined-only" if defined else "--undefined-only"
    out = subprocess.run(["nm", "-D", flag, path], check=True, capture_output=True, text=True).stdout
    return {line.split()[-1] for line in out.splitlines() if line.strip()}


def test_every_callback_the_module_imports_is_exported_by_this_envoy(native_lib):
    imported = {s for s in dynamic_symbols(native_lib, defined=False) if s.startswith("envoy_")}
    exported = dynamic_symbols(envoy_binary(), defined=True)
    assert len(imported) >= 15, imported
    assert imported <= exported, sorted(imported - exported)


def test_every_hook_envoy_looks_up_is_exported_but_the_optional_ones(native_lib):
    names = subprocess.run(["strings", envoy_binary()], check=True, capture_output=True, text=True).stdout
    looked_up = set(re.findall(r"^(envoy_dynamic_module_on_(?:program_init|http_filter_\w+))$", names, re.M))
    assert "envoy_dynamic_module_on_http_filter_request_headers" in looked_up
    exported = {s for s in dynamic_symbols(native_lib, defined=True) if s.startswith("envoy_dynamic_module_on_")}
    assert looked_up - OPTIONAL_HOOKS_NOT_EXPORTED <= exported, sorted(looked_up - OPTIONAL_HOOKS_NOT_EXPORTED - exported)
    # The module exports no hook this Envoy does not know (a misspelt one would silently never run).
    assert exported <= looked_up, sorted(exported - looked_up)


def config(keys: KeySet) -> dict:
    return {
        "realm": "api",
        "providers": {"corp": {
            "issuer": ISSUER, "audiences": [AUDIENCE], "jwks": keys.jwks(["ES256", "RS256", "EdDSA"]),
            "claim_to_headers": [{"claim": "sub", "header": "x-sub"}],
        }},
        "rules": [
            {"match": {"prefix": "/public"}, "allow_anonymous": True},
            {"name": "admins", "provider": "corp", "roles": {"any": ["admin"]}},
            {"match": {"prefix": "/dry"}, "dry_run": True, "provider": "corp", "roles": {"any": ["nobody"]}},
            {"match": {"prefix": "/scoped"}, "provider": "corp", "scopes": {"all": ["orders:write"]}},
            {"match": {"prefix": "/"}, "provider": "corp", "source_ips": {"deny": ["10.0.0.0/8"]}},
        ],
        "outcome_in_filter_state": "jwt_guard",
    }


def routes() -> list[dict]:
    return [
        route("/admin", "admin", metadata={"filter_metadata": {"jwt_guard": {"rule": "admins"}}}),
        route("/unbound", "unbound", metadata={"filter_metadata": {"jwt_guard": {"rule": "nope"}}}),
        route("/", "default"),
    ]


@pytest.fixture(scope="module")
def both(request, upstream, keys, wasm, native_lib):
    c = config(keys)
    return start_stack(request, upstream, "native-vs-wasm", [
        listener("wasm", 0, [wasm_filter_for_wasm(c)], routes=routes()),
        listener("native", 0, [native_filter(c)], routes=routes()),
    ])


def wasm_filter_for_wasm(c: dict) -> dict:
    """The Wasm filter whatever JWTG_RUNTIME says (wasm_filter follows it)."""
    import harness
    saved = harness.runtime
    harness.runtime = lambda: "wasm"
    try:
        return wasm_filter(c)
    finally:
        harness.runtime = saved


def cases(keys: KeySet) -> list[tuple[str, str, dict]]:
    bearer = lambda token: {"authorization": f"Bearer {token}"}  # noqa: E731
    good = keys.mint("ES256")
    return [
        ("no token", "/orders", {}),
        ("public, no token", "/public/x", {}),
        ("good ES256", "/orders", bearer(good)),
        ("good ES256 again (cache)", "/orders", bearer(good)),
        ("good RS256", "/orders", bearer(keys.mint("RS256"))),
        ("good EdDSA", "/orders", bearer(keys.mint("EdDSA"))),
        ("expired", "/orders", bearer(keys.mint("ES256", exp=1_000_000_000, iat=999_999_000))),
        ("wrong audience", "/orders", bearer(keys.mint("ES256", aud="other"))),
        ("wrong issuer", "/orders", bearer(keys.mint("ES256", iss="https://evil.example"))),
        ("malformed", "/orders", bearer("not.a.jwt")),
        ("bad signature", "/orders", bearer(good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB"))),
        ("unknown kid", "/orders", bearer(keys.mint("ES256", kid="nope"))),
        ("route-bound rule, no role", "/admin/x", bearer(good)),
        ("route-bound rule, admin", "/admin/x", bearer(keys.mint("ES256", roles=["admin"]))),
        ("route bound to unknown rule", "/unbound", bearer(good)),
        ("dry run", "/dry/x", bearer(good)),
        ("missing scope", "/scoped", bearer(good)),
        ("spoofed identity header", "/orders", {**bearer(good), "x-sub": "mallory", "x_sub": "mallory"}),
        ("denied address", "/orders", {**bearer(good), "x-forwarded-for": "10.1.2.3"}),
    ]


def answer(resp) -> tuple:
    upstream = None
    if resp.status == 200:
        seen = resp.json()
        upstream = {k: v for k, v in seen.get("headers", {}).items()
                    if k in ("x-sub", "x_sub", "authorization", "x-jwt-guard-dry-run")}
    return (resp.status, resp.body if resp.status != 200 else b"", resp.header("www-authenticate"),
            resp.header("content-type") if resp.status != 200 else None, upstream)


def test_the_module_answers_exactly_as_the_wasm_filter(both, keys):
    for name, path, headers in cases(keys):
        wasm = answer(both.get("wasm", path, headers=headers))
        native = answer(both.get("native", path, headers=headers))
        assert native == wasm, name


def test_the_module_counts_under_the_same_stat_names(both, keys):
    """Same requests, same counters: one Envoy's stats hold both runtimes' counters under
    wasmcustom.* (the harness gives the module metrics_namespace: wasmcustom), so the totals
    are twice the Wasm filter's alone; compare each runtime's own listener-level effect."""
    before = both.envoy.stats("jwt_guard")
    for _, path, headers in cases(keys):
        both.get("wasm", path, headers=headers)
    middle = both.envoy.stats("jwt_guard")
    for _, path, headers in cases(keys):
        both.get("native", path, headers=headers)
    after = both.envoy.stats("jwt_guard")
    wasm_delta = {k: middle.get(k, 0) - before.get(k, 0) for k in middle if middle.get(k, 0) != before.get(k, 0)}
    native_delta = {k: after.get(k, 0) - middle.get(k, 0) for k in after if after.get(k, 0) != middle.get(k, 0)}
    # The token cache is per worker and per filter; the second run of the same tokens hits
    # where the first missed, so the cache counters are compared as a total.
    for d in (wasm_delta, native_delta):
        hits = d.pop("wasmcustom.jwt_guard.token_cache.hit", 0)
        misses = d.pop("wasmcustom.jwt_guard.token_cache.miss", 0)
        d["cache lookups"] = hits + misses
    assert wasm_delta and native_delta == wasm_delta


def _run_to_exit(tmp_path, filt: dict, name: str, env_dir: str | None = None) -> tuple[int, str]:
    cfg = bootstrap([listener("main", 0, [filt])], 9)
    env = Envoy(cfg, workdir=tmp_path, name=name)
    import os
    old = os.environ.get("ENVOY_DYNAMIC_MODULES_SEARCH_PATH")
    if env_dir is not None:
        os.environ["ENVOY_DYNAMIC_MODULES_SEARCH_PATH"] = env_dir
    try:
        rc = env.run_to_exit(timeout=60, extra_args=["--mode", "validate"])
    finally:
        if env_dir is not None:
            if old is None:
                os.environ.pop("ENVOY_DYNAMIC_MODULES_SEARCH_PATH", None)
            else:
                os.environ["ENVOY_DYNAMIC_MODULES_SEARCH_PATH"] = old
    return rc, env.log()


def test_a_missing_library_stops_envoy_with_a_clear_error(tmp_path, native_lib, keys):
    empty = tmp_path / "no-modules-here"
    empty.mkdir()
    rc, log = _run_to_exit(tmp_path, native_filter(config(keys)), "missing-lib", env_dir=str(empty))
    assert rc != 0, log[-2000:]
    assert "libjwt_guard.so not found" in log, log[-2000:]


def test_a_refused_configuration_stops_envoy_and_names_the_field(tmp_path, native_lib, keys):
    bad = config(keys)
    bad["rules"][0]["allow_anonymus"] = True
    rc, log = _run_to_exit(tmp_path, native_filter(bad), "bad-config", env_dir=str(NATIVE_LIB_DIR))
    assert rc != 0, log[-2000:]
    assert "jwt-guard: invalid configuration: rules[0].allow_anonymus" in log, log[-2000:]
    # Envoy's own line says the filter could not be created: the listener never serves.
    assert "Failed to initialize dynamic module" in log, log[-2000:]


def test_the_start_up_line_names_the_native_runtime(both):
    log = both.envoy.log()
    assert re.search(r"jwt-guard \S+ \(native\): configured: 1 providers, 5 rules; signatures natively \(ring\)", log), \
        log[-3000:]
