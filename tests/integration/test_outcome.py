"""Identity for Envoy itself, rules bound to routes and counters per rule and provider (issue #9
items 2-4), in real Envoy.

The first half runs the shipped envoy/envoy.yaml as it is (ports 0): its access log carries
jwt-guard's outcome (`outcome_in_filter_state`), its /admin route names its rule in route
metadata, and its stats_tags turn the counters into labelled Prometheus metrics. The second
half is a stack of its own for the edges of route binding and for routing on claims."""

from __future__ import annotations

import json
import re
import sys
import time

import pytest

from conftest import expect_401, expect_403, expect_upstream, start_stack
from harness import REPO_ROOT, Envoy, listener, request, route, runtime, wasm_filter
from tokens import AUDIENCE, ISSUER

sys.path.insert(0, str(REPO_ROOT / "scripts"))
import demo  # noqa: E402  (scripts/demo.py: the shipped config with its ports replaced)
from mint import claims, mint  # noqa: E402  (PyJWT, the demo key)

DEMO_REALM = "demo"


@pytest.fixture(scope="module")
def shipped(request, upstream, wasm, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("shipped")
    # The shipped config fetches the demo keys (remote_jwks) from the demo JWKS server.
    idp = demo.start_jwks_server(0)
    request.addfinalizer(idp.stop)
    envoy = Envoy(demo.shipped_config_on(workdir, 0, 0, upstream.port, idp.port), workdir=workdir, name="shipped")
    request.addfinalizer(envoy.cleanup)
    envoy.start(timeout=30, cwd=REPO_ROOT)
    assert demo.wait_for_keys(envoy.listener_ports()["ingress"]), envoy.log_tail(20)
    return envoy, envoy.listener_ports()["ingress"]


def access_log(envoy: Envoy) -> str:
    return (envoy.workdir / f"{envoy.name}.stdio.log").read_text(errors="replace")


def logged_outcome(envoy: Envoy, method: str, path: str, timeout: float = 5.0) -> tuple[int, dict]:
    """The access-log line of the one request made to `path`: (status, jwt-guard's outcome)."""
    pattern = re.compile(rf'"{method} {re.escape(path)}" (\d{{3}}) \S+ route=\S+ jwt_guard=(.*)$')
    deadline = time.monotonic() + timeout
    while True:
        found = [m for line in access_log(envoy).splitlines() if (m := pattern.search(line))]
        if found:
            assert len(found) == 1, found
            return int(found[0].group(1)), json.loads(found[0].group(2))
        if time.monotonic() > deadline:
            raise AssertionError(f"no access-log line for {method} {path}:\n{access_log(envoy)[-3000:]}")
        time.sleep(0.05)


NOW = int(time.time())
ALICE = mint(claims("alice", roles=["user"], scope="orders:read"))
BOB = mint(claims("bob", roles=["admin"], email_verified=True, scope="orders:read orders:write"))
EXPIRED = mint(claims("alice", iat=NOW - 1200, exp=NOW - 600))

# (method, path, token, status, outcome): each path is used by this table only, once.
OUTCOMES = [
    ("GET", "/orders/o1", ALICE, 200,
     {"decision": "allowed", "rule": "orders-read", "provider": "demo", "sub": "alice"}),
    ("GET", "/orders/o2", EXPIRED, 401,
     {"decision": "refused", "status": 401, "reason": "expired", "rule": "orders-read", "provider": "demo"}),
    ("GET", "/orders/o3", None, 401,
     {"decision": "refused", "status": 401, "reason": "missing", "rule": "orders-read"}),
    ("POST", "/orders/o4", ALICE, 403,
     {"decision": "refused", "status": 403, "reason": "missing_scope", "rule": "orders-write",
      "provider": "demo", "sub": "alice"}),
    ("GET", "/admin/o5", BOB, 200,  # the route names rule "admin" in its metadata
     {"decision": "allowed", "rule": "admin", "provider": "demo", "sub": "bob"}),
    ("GET", "/admin/o6", ALICE, 403,
     {"decision": "refused", "status": 403, "reason": "missing_role", "rule": "admin", "provider": "demo",
      "sub": "alice"}),
    ("GET", "/beta/o7", ALICE, 200,
     {"decision": "dry_run", "status": 403, "reason": "missing_role", "rule": "beta", "provider": "demo",
      "sub": "alice"}),
    ("GET", "/healthz/o8", "not-a-jwt", 200, {"decision": "allowed", "rule": "healthz"}),
    ("GET", "/public/o9", None, 200, {"decision": "allowed", "rule": "public"}),
    ("GET", "/nowhere/o10", ALICE, 403, {"decision": "refused", "status": 403, "reason": "no_matching_rule"}),
]


@pytest.mark.parametrize("method,path,token,status,outcome", OUTCOMES, ids=[row[1] for row in OUTCOMES])
def test_the_access_log_shows_each_outcome(shipped, method, path, token, status, outcome):
    envoy, port = shipped
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    resp = request(port, path, method=method, headers=headers, body=b"{}" if method == "POST" else None)
    assert resp.status == status, resp
    assert logged_outcome(envoy, method, path) == (status, outcome)


def test_the_outcome_is_one_line_whatever_the_sub_holds_and_no_query_is_logged(shipped):
    envoy, port = shipped
    sub = 'eve"\n} jwt_guard={"decision":"allowed"}'
    token = mint(claims(sub))
    resp = request(port, "/orders/o11?access_token=SECRET-QUERY", headers={"Authorization": f"Bearer {token}"})
    echoed = expect_upstream(resp)
    assert "x-jwt-sub" not in echoed["headers"]  # a newline cannot go upstream in a header...
    assert logged_outcome(envoy, "GET", "/orders/o11")[1]["sub"] == sub  # ...and stays escaped in the log
    assert "SECRET-QUERY" not in access_log(envoy)


def test_identity_headers_upstream_in_the_shipped_config(shipped):
    _, port = shipped
    spoofed = {"x-jwt-sub": "root", "x-jwt-roles": "admin"}
    echoed = expect_upstream(request(port, "/orders/o12", headers={**spoofed, "Authorization": f"Bearer {BOB}"}))
    assert (echoed["headers"]["x-jwt-sub"], echoed["headers"]["x-jwt-roles"]) == ("bob", "admin")
    for path in ("/healthz/o13", "/public/o14"):
        echoed = expect_upstream(request(port, path, headers=spoofed))
        assert not {"x-jwt-sub", "x-jwt-roles"} & set(echoed["headers"]), echoed


@pytest.mark.parametrize("name", ["x_jwt_sub", "X_Jwt_Roles", "x_anything"])
def test_the_shipped_config_refuses_header_names_with_underscores(shipped, upstream, name):
    # Issue #15: common_http_protocol_options.headers_with_underscores_action REJECT_REQUEST;
    # jwt-guard removes such spellings of its own headers anyway (test_hardening.py).
    _, port = shipped
    before = upstream.count
    resp = request(port, "/public/o15", headers={name: "admin", "Authorization": f"Bearer {BOB}"})
    assert resp.status == 400, resp
    assert upstream.count == before
    assert expect_upstream(request(port, "/public/o16", headers={name.replace("_", "-"): "x"}))


def stat_deltas(envoy: Envoy, action) -> dict[str, int]:
    before = envoy.stats("jwt_guard")
    action()
    after = envoy.stats("jwt_guard")
    return {name: after[name] - before.get(name, 0) for name in after if after[name] != before.get(name, 0)}


def test_counters_per_rule_and_provider_change_exactly(shipped):
    envoy, port = shipped

    def send():
        for method, path, token in [("GET", "/orders/c1", ALICE), ("GET", "/orders/c2", EXPIRED),
                                    ("POST", "/orders/c3", ALICE), ("GET", "/admin/c4", BOB),
                                    ("GET", "/beta/c5", ALICE), ("GET", "/orders/c6", None),
                                    ("GET", "/nowhere/c7", ALICE)]:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            request(port, path, method=method, headers=headers, body=b"{}" if method == "POST" else None)

    p = "wasmcustom.jwt_guard"
    deltas = stat_deltas(envoy, send)
    deltas.pop(f"{p}.token_cache.hit", None), deltas.pop(f"{p}.token_cache.miss", None)
    # The demo JWKS is fetched every 5 s: its counters and gauges move on their own.
    deltas = {name: n for name, n in deltas.items() if not name.startswith(f"{p}.jwks.")}
    assert deltas == {
        f"{p}.allowed": 2, f"{p}.dry_run": 1,
        f"{p}.refused.401.expired": 1, f"{p}.refused.401.missing": 1,
        f"{p}.refused.403.missing_scope": 1, f"{p}.refused.403.no_matching_rule": 1,
        f"{p}.rule.orders-read.allowed": 1, f"{p}.rule.orders-read.refused.401.expired": 1,
        f"{p}.rule.orders-read.refused.401.missing": 1,
        f"{p}.rule.orders-write.refused.403.missing_scope": 1,
        f"{p}.rule.admin.allowed": 1, f"{p}.rule.beta.dry_run": 1,
        # A provider counts the tokens it judged: not the request without one, nor the
        # request no rule took.
        f"{p}.provider.demo.allowed": 2, f"{p}.provider.demo.dry_run": 1,
        f"{p}.provider.demo.refused.401.expired": 1, f"{p}.provider.demo.refused.403.missing_scope": 1,
    }


def test_prometheus_labels_from_the_shipped_stats_tags(shipped):
    envoy, port = shipped
    request(port, "/orders/p1", method="POST", body=b"{}", headers={"Authorization": f"Bearer {ALICE}"})
    flat = envoy.stats("jwt_guard")
    text = envoy.admin("/stats/prometheus")
    # The Wasm extension registers `wasmcustom` as a custom stat namespace, which Prometheus
    # names leave out; a dynamic module's namespace is not registered, so its names keep
    # Envoy's prefix and the namespace (docs/runtimes.md). The labels are the same.
    prefix = "envoy_wasmcustom_" if runtime() == "native" else ""
    metrics = {}
    for line in text.splitlines():
        if line.startswith(prefix + "jwt_guard_"):
            name, _, value = line.rpartition(" ")
            metrics[name.removeprefix(prefix)] = int(value)
    expected = {
        'jwt_guard_rule_refused{jwt_guard_rule="orders-write",jwt_guard_status="403",'
        'jwt_guard_reason="missing_scope"}': "rule.orders-write.refused.403.missing_scope",
        'jwt_guard_provider_refused{jwt_guard_provider="demo",jwt_guard_status="403",'
        'jwt_guard_reason="missing_scope"}': "provider.demo.refused.403.missing_scope",
        'jwt_guard_refused{jwt_guard_status="403",jwt_guard_reason="missing_scope"}': "refused.403.missing_scope",
        'jwt_guard_rule_allowed{jwt_guard_rule="admin"}': "rule.admin.allowed",
        'jwt_guard_provider_allowed{jwt_guard_provider="demo"}': "provider.demo.allowed",
        "jwt_guard_allowed{}": "allowed",
    }
    for metric, stat in expected.items():
        assert metric in metrics, f"{metric} not in /stats/prometheus:\n" + "\n".join(sorted(metrics))
        assert metrics[metric] == flat[f"wasmcustom.jwt_guard.{stat}"] > 0, metric
    # Only configured names: one series per rule and provider, none per request data.
    rules = {m.group(1) for name in metrics if (m := re.search(r'jwt_guard_rule="([^"]+)"', name))}
    assert rules == {"public", "healthz", "orders-read", "orders-write", "admin", "internal", "geo",
                     "devices", "beta"}


# --------------------------------------------------------------------------- route binding edges

def bound(path: str, name: str, rule, **extra) -> dict:
    return route(path, name, metadata={"filter_metadata": {"jwt_guard": {"rule": rule}}}, **extra)


@pytest.fixture(scope="module")
def binding(request, upstream, keys, wasm):
    config = {
        "outcome_in_filter_state": "jwt_guard",
        "providers": {"corp": {"issuer": ISSUER, "audiences": [AUDIENCE], "jwks": keys.jwks(["ES256"]),
                               "claim_to_headers": [{"claim": "tier", "header": "x-tier"}]}},
        "rules": [
            {"name": "open", "match": {"prefix": "/"}, "allow_anonymous": True},
            {"name": "admins", "provider": "corp", "roles": {"any": ["admin"]}},
            {"name": "later", "match": {"prefix": "/later"}, "provider": "corp"},
        ],
    }
    routes = [
        bound("/bound-admins", "bound-admins", "admins"),
        bound("/bound-later", "bound-later", "later"),
        bound("/unknown", "unknown", "nope"),
        bound("/number", "number", 3),
        bound("/list", "list", ["admins"]),
        route("/other-filter", "other-filter", metadata={"filter_metadata": {"other": {"rule": "admins"}}}),
        # Chosen again after jwt-guard sets x-tier from a verified claim: Envoy recomputes the
        # route when a Wasm filter changes request headers.
        {"name": "gold", "match": {"prefix": "/", "headers": [{"name": "x-tier", "string_match": {"exact": "gold"}}]},
         "route": {"cluster": "upstream", "timeout": "10s"},
         "request_headers_to_add": [{"header": {"key": "x-routed", "value": "gold"}}]},
        route("/", "default"),
    ]
    return start_stack(request, upstream, "binding", [listener("main", 0, [wasm_filter(config)], routes=routes)])


def test_a_route_binds_its_rule_whatever_the_order_and_match(binding, keys, refused):
    admin = keys.mint("ES256", roles=["admin"])
    user = keys.mint("ES256", roles=["user"])
    # By order, rule "open" (prefix /, anonymous) would take every request.
    assert expect_upstream(binding.get("main", "/somewhere"))
    with refused():
        expect_401(binding.get("main", "/bound-admins"), "missing", realm="jwt-guard")
        expect_403(binding.get("main", "/bound-admins", headers={"Authorization": f"Bearer {user}"}),
                   "missing_role", realm="jwt-guard")
    expect_upstream(binding.get("main", "/bound-admins", headers={"Authorization": f"Bearer {admin}"}))
    # Rule "later" matches /later by prefix; the route binds it to /bound-later too.
    with refused():
        expect_401(binding.get("main", "/bound-later"), "missing", realm="jwt-guard")
    # Another filter's metadata is not ours: ordered matching.
    expect_upstream(binding.get("main", "/other-filter"))


@pytest.mark.parametrize("path", ["/unknown", "/number", "/list"])
def test_a_name_no_rule_has_is_refused_counted_and_logged_once(binding, keys, refused, path):
    admin = keys.mint("ES256", roles=["admin"])
    before = binding.envoy.stats("jwt_guard")
    with refused():
        for _ in range(2):
            expect_403(binding.get("main", path, headers={"Authorization": f"Bearer {admin}"}),
                       "no_matching_rule", realm="jwt-guard")
    after = binding.envoy.stats("jwt_guard")
    key = "wasmcustom.jwt_guard.route_rule_unknown"
    assert after[key] - before.get(key, 0) == 2
    if path == "/unknown":
        line = binding.envoy.wait_for_log('route metadata names rule "nope"')
        assert "403 no_matching_rule" in line
        # Every line logged while the two requests were handled is in the file now.
        binding.envoy.log_barrier()
        assert binding.envoy.log().count('route metadata names rule "nope"') == 1


def test_routing_on_a_verified_claim_and_never_on_a_forged_one(binding, keys):
    gold = keys.mint("ES256", tier="gold")
    silver = keys.mint("ES256", tier="silver")
    echoed = expect_upstream(binding.get("main", "/x", headers={"Authorization": f"Bearer {gold}"}))["headers"]
    assert (echoed["x-tier"], echoed.get("x-routed")) == ("gold", "gold")
    echoed = expect_upstream(binding.get("main", "/x", headers={"Authorization": f"Bearer {silver}"}))["headers"]
    assert echoed["x-tier"] == "silver" and "x-routed" not in echoed
    # Anonymous, with a forged x-tier: removed before Envoy routes again.
    echoed = expect_upstream(binding.get("main", "/x", headers={"x-tier": "gold"}))["headers"]
    assert "x-tier" not in echoed and "x-routed" not in echoed
