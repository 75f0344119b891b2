"""envoy/istio/: the WasmPlugin and the EnvoyFilter carry the demo policy of envoy/envoy.yaml, and
what Istio makes of them loads in real Envoy and answers every demo request as the demo does.

The WasmPlugin's pluginConfig is converted the way istiod converts it (tests/integration/istio.py:
a protobuf Struct printed by Go's jsonpb, numbers as doubles); the result runs in envoy/envoy.yaml
in place of its jwt-guard filter, with scripts/demo.py's requests and expected answers. The same
Struct printed by Python's json_format (every number with ".0") is accepted too."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from harness import (DYNAMIC_MODULE_TYPE, NATIVE_LIB_PATH, REPO_ROOT, WASM_PATH, WASM_TYPE, EchoUpstream, Envoy,
                     bootstrap, envoy_version, for_this_envoy, listener, request)
from istio import (STRING_VALUE, TYPED_STRUCT, envoy_filter_configuration, envoy_filter_extension,
                   envoy_filter_http_filter, go_jsonpb, python_json_format, to_struct, wasm_plugin_filter)

ISTIO_DIR = REPO_ROOT / "envoy" / "istio"
WASM_PLUGIN = ISTIO_DIR / "wasmplugin.yaml"
ENVOY_FILTER = ISTIO_DIR / "envoyfilter.yaml"
DEMO = REPO_ROOT / "envoy" / "envoy.yaml"
PREFIX = "jwt-guard: invalid configuration: "


def load(path: Path) -> dict:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert len(docs) == 1, f"{path}: expected one document, got {len(docs)}"
    return docs[0]


def demo_bootstrap() -> dict:
    return yaml.safe_load(for_this_envoy(DEMO.read_text()))


def hcm_filters(bootstrap: dict) -> list[dict]:
    (listener,) = bootstrap["static_resources"]["listeners"]
    (chain,) = listener["filter_chains"]
    (hcm,) = chain["filters"]
    return hcm["typed_config"]["http_filters"]


def jwt_guard_index(filters: list[dict]) -> int:
    (index,) = [i for i, f in enumerate(filters) if f["name"] == "envoy.filters.http.wasm"]
    return index


def demo_policy() -> dict:
    """envoy/envoy.yaml's policy as the Istio files carry it: the same, but for the demo key set
    inline. envoy.yaml fetches it (remote_jwks) from the demo JWKS server through its cluster
    "idp", which a mesh does not have."""
    filters = hcm_filters(demo_bootstrap())
    config = filters[jwt_guard_index(filters)]["typed_config"]["config"]["configuration"]
    assert config["@type"] == STRING_VALUE
    policy = json.loads(config["value"])
    demo = policy["providers"]["demo"]
    assert demo.pop("remote_jwks")["cluster"] == "idp"
    demo_jwks = json.loads((REPO_ROOT / "envoy" / "demo-keys" / "demo-jwks.json").read_text())
    policy["providers"]["demo"] = {"issuer": demo.pop("issuer"), "audiences": demo.pop("audiences"),
                                   "jwks": demo_jwks, **demo}
    return policy


def with_filter(jwt_guard: dict, upstream_port: int) -> dict:
    """envoy/envoy.yaml with its jwt-guard filter replaced, every port but the upstream's 0."""
    bootstrap = demo_bootstrap()
    filters = hcm_filters(bootstrap)
    filters[jwt_guard_index(filters)] = jwt_guard
    bootstrap["admin"]["address"]["socket_address"]["port_value"] = 0
    (listener,) = bootstrap["static_resources"]["listeners"]
    listener["address"]["socket_address"]["port_value"] = 0
    (cluster,) = [c for c in bootstrap["static_resources"]["clusters"] if c["name"] == "echo"]
    endpoint = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    endpoint["address"]["socket_address"]["port_value"] = upstream_port
    return bootstrap


def demo_answers(port: int, upstream: EchoUpstream) -> list[str]:
    """scripts/demo.py's requests against this listener; one line per answer that is not the one
    the demo promises (or that reached the upstream although refused, or the reverse)."""
    from demo import demo_rows  # scripts/ is on sys.path (harness)

    wrong = []
    for row in demo_rows():
        headers = dict(row.headers)
        if row.token is not None:
            headers["Authorization"] = f"Bearer {row.token}"
        before = upstream.count
        resp = request(port, row.path, method=row.method, headers=headers,
                       body=b"{}" if row.method in ("POST", "PUT") else None)
        reason = "-"
        if resp.status == 200:
            dry_run = json.loads(resp.body)["headers"].get("x-jwt-guard-dry-run")
            reason = f"(dry run: upstream told {dry_run!r})" if dry_run else "-"
        elif resp.status >= 400:
            reason = resp.json().get("reason", "?")
        reached = upstream.count > before
        if (resp.status, reason) != row.expect or reached != (resp.status == 200):
            wrong.append(f"{row.what}: got {resp.status} {reason} (upstream reached: {reached}), "
                         f"expected {row.expect[0]} {row.expect[1]}")
    return wrong


def run_demo(bootstrap: dict, upstream: EchoUpstream, tmp_path: Path, name: str) -> tuple[list[str], str]:
    env = Envoy(bootstrap, workdir=tmp_path, name=name)
    try:
        env.start(cwd=REPO_ROOT)  # envoy.yaml's geo database path is relative to the repository
        return demo_answers(env.listener_ports()["ingress"], upstream), env.log()
    finally:
        env.cleanup()


# --------------------------------------------------------------------------- the files


def test_wasm_plugin_resource():
    plugin = load(WASM_PLUGIN)
    assert (plugin["apiVersion"], plugin["kind"]) == ("extensions.istio.io/v1alpha1", "WasmPlugin")
    spec = plugin["spec"]
    assert spec["phase"] == "AUTHN"
    assert spec["failStrategy"] == "FAIL_CLOSE"
    assert spec["pluginName"] == "jwt_guard"
    assert spec["url"].startswith("oci://")
    assert ("selector" in spec) != ("targetRefs" in spec), "give selector or targetRefs (Istio allows one)"


def test_wasm_plugin_carries_the_demo_policy():
    assert load(WASM_PLUGIN)["spec"]["pluginConfig"] == demo_policy()


def test_envoy_filter_resource_and_policy():
    ef = load(ENVOY_FILTER)
    assert (ef["apiVersion"], ef["kind"]) == ("networking.istio.io/v1alpha3", "EnvoyFilter")
    extension = envoy_filter_extension(ef)
    assert extension["typed_config"]["@type"] == TYPED_STRUCT
    assert extension["typed_config"]["type_url"] == WASM_TYPE
    assert extension["typed_config"]["value"]["config"]["fail_open"] is False
    (http,) = [p for p in ef["spec"]["configPatches"] if p["applyTo"] == "HTTP_FILTER"]
    assert http["patch"]["value"]["name"] == extension["name"], "the HTTP filter must name the extension config"
    assert http["patch"]["value"]["config_discovery"]["type_urls"] == [WASM_TYPE]
    assert envoy_filter_configuration(ef) == demo_policy()


UNDERSCORES = REPO_ROOT / "envoy" / "istio" / "headers-with-underscores.yaml"


@pytest.mark.parametrize("path", [UNDERSCORES, ENVOY_FILTER], ids=lambda p: p.name)
def test_istio_files_refuse_header_names_with_underscores_as_envoy_yaml_does(path, upstream, wasm, tmp_path):
    """The HCM patch in both Istio files (issue #15) is the shipped envoy.yaml's setting, and
    merged into a connection manager it makes Envoy answer 400 to `x_jwt_sub`."""
    (patch,) = [p for p in load(path)["spec"]["configPatches"] if p["applyTo"] == "NETWORK_FILTER"]
    assert patch["patch"]["operation"] == "MERGE"
    assert patch["match"]["listener"]["filterChain"]["filter"]["name"] == "envoy.filters.network.http_connection_manager"
    typed = patch["patch"]["value"]["typed_config"]
    assert typed["@type"].endswith("HttpConnectionManager")
    options = typed["common_http_protocol_options"]
    assert options == {"headers_with_underscores_action": "REJECT_REQUEST"}
    assert "headers_with_underscores_action: REJECT_REQUEST" in (REPO_ROOT / "envoy" / "envoy.yaml").read_text()
    lst = listener("main", 0, [])
    lst["filter_chains"][0]["filters"][0]["typed_config"]["common_http_protocol_options"] = options
    env = Envoy(bootstrap([lst], upstream.port), workdir=tmp_path, name="underscores")
    try:
        env.start()
        port = env.listener_ports()["main"]
        assert request(port, "/x", headers={"x_jwt_sub": "root"}).status == 400
        assert request(port, "/x", headers={"x-jwt-sub": "root"}).status == 200
    finally:
        env.cleanup()


# --------------------------------------------------------------------------- Istio's conversion


def test_go_jsonpb_prints_whole_doubles_as_integers():
    """The property of istiod's marshaller that matters to integer fields, and the one where
    Python's json_format differs: pinned here so a change to either helper shows."""
    struct = to_struct({"n": 86400, "f": 0.5, "big": 1e21, "tiny": 1.5e-7, "s": "<&>", "l": [1, True, None]})
    assert go_jsonpb(struct) == ('{"big":1e+21,"f":0.5,"l":[1,true,null],"n":86400,'
                                 '"s":"\\u003c\\u0026\\u003e","tiny":1.5e-7}')
    assert json.loads(python_json_format(to_struct({"n": 86400})).replace(" ", "")) == {"n": 86400.0}
    assert '"n": 86400.0' in python_json_format(to_struct({"n": 86400}))


def test_wasm_plugin_as_istio_delivers_it_answers_like_the_demo(wasm, upstream, tmp_path):
    plugin = load(WASM_PLUGIN)
    configuration = go_jsonpb(to_struct(plugin["spec"]["pluginConfig"]))
    assert '"max_lifetime_seconds":86400' in configuration  # what istiod sends (see istio.py)
    jwt_guard = wasm_plugin_filter(plugin, WASM_PATH, configuration)
    wrong, log = run_demo(with_filter(jwt_guard, upstream.port), upstream, tmp_path, "istio-wasmplugin")
    assert not wrong, "\n".join(wrong)
    assert "jwt-guard: configured: 1 providers, 9 rules" in log, log[-3000:]


def test_envoy_filter_as_the_agent_rewrites_it_answers_like_the_demo(wasm, upstream, tmp_path):
    jwt_guard = envoy_filter_http_filter(load(ENVOY_FILTER), WASM_PATH)
    wrong, log = run_demo(with_filter(jwt_guard, upstream.port), upstream, tmp_path, "istio-envoyfilter")
    assert not wrong, "\n".join(wrong)
    assert "jwt-guard: configured: 1 providers, 9 rules" in log, log[-3000:]


def validate(bootstrap: dict, upstream: EchoUpstream, tmp_path: Path, name: str) -> tuple[int, str]:
    env = Envoy(bootstrap, workdir=tmp_path, name=name)
    rc = env.run_to_exit(timeout=60, cwd=REPO_ROOT, extra_args=["--mode", "validate"])
    return rc, env.log()


def test_python_json_format_floats_are_accepted(wasm, upstream, tmp_path):
    """The same pluginConfig printed by another Struct marshaller, every number a float
    ("max_lifetime_seconds": 86400.0): Envoy's validation runs the filter's on_configure."""
    plugin = load(WASM_PLUGIN)
    configuration = python_json_format(to_struct(plugin["spec"]["pluginConfig"]))
    assert '"max_lifetime_seconds": 86400.0' in configuration
    rc, log = validate(with_filter(wasm_plugin_filter(plugin, WASM_PATH, configuration), upstream.port),
                       upstream, tmp_path, "istio-json-format")
    assert rc == 0 and PREFIX not in log, log[-3000:]


@pytest.mark.parametrize("value", [86400.5, -1])
def test_integer_fields_refuse_fractions_and_negatives_in_envoy(wasm, upstream, tmp_path, value):
    plugin = load(WASM_PLUGIN)
    config = copy.deepcopy(plugin["spec"]["pluginConfig"])
    config["providers"]["demo"]["max_lifetime_seconds"] = value
    jwt_guard = wasm_plugin_filter(plugin, WASM_PATH, go_jsonpb(to_struct(config)))
    rc, log = validate(with_filter(jwt_guard, upstream.port), upstream, tmp_path, "istio-bad-number")
    lines = [ln for ln in log.splitlines() if PREFIX in ln]
    assert rc != 0 and len(lines) == 1, log[-3000:]
    assert lines[0].split(PREFIX, 1)[1].startswith("providers.demo.max_lifetime_seconds: "), lines[0]


def test_route_binding_names_a_rule_of_the_plugin_that_only_routes_reach():
    """envoy/istio/route-binding.yaml binds the VirtualService route "admin" the way
    envoy/envoy.yaml binds its /admin route; the rule it names exists and has no match."""
    binding = load(REPO_ROOT / "envoy" / "istio" / "route-binding.yaml")
    assert binding["kind"] == "EnvoyFilter"
    (patch,) = binding["spec"]["configPatches"]
    assert patch["applyTo"] == "HTTP_ROUTE" and patch["patch"]["operation"] == "MERGE"
    assert patch["match"]["routeConfiguration"]["vhost"]["route"]["name"] == "admin"
    rule = patch["patch"]["value"]["metadata"]["filter_metadata"]["jwt_guard"]["rule"]
    (named,) = [r for r in load(WASM_PLUGIN)["spec"]["pluginConfig"]["rules"] if r.get("name") == rule]
    assert "match" not in named
    routes = demo_bootstrap()["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0][
        "typed_config"]["route_config"]["virtual_hosts"][0]["routes"]
    (admin,) = [r for r in routes if r["name"] == "admin"]
    assert admin["metadata"] == patch["patch"]["value"]["metadata"]


# --------------------------------------------------------------------------- the native module

NATIVE_ENVOY_FILTER = ISTIO_DIR / "native-envoyfilter.yaml"


def native_envoy_filter_http_filter() -> dict:
    (patch,) = load(NATIVE_ENVOY_FILTER)["spec"]["configPatches"]
    assert patch["applyTo"] == "HTTP_FILTER" and patch["patch"]["operation"] == "INSERT_BEFORE"
    assert patch["match"]["listener"]["filterChain"]["filter"]["subFilter"]["name"] == "envoy.filters.http.router"
    value = patch["patch"]["value"]
    assert value["typed_config"]["@type"] == TYPED_STRUCT
    assert value["typed_config"]["type_url"] == DYNAMIC_MODULE_TYPE
    return value


def test_native_envoy_filter_carries_the_same_policy():
    value = native_envoy_filter_http_filter()
    configuration = value["typed_config"]["value"]["filter_config"]
    assert configuration["@type"] == STRING_VALUE
    assert json.loads(configuration["value"]) == envoy_filter_configuration(load(ENVOY_FILTER))


@pytest.mark.skipif(envoy_version()[:2] != (1, 40), reason="the dynamic module targets Envoy 1.40's ABI")
def test_native_envoy_filter_answers_like_the_demo(upstream, tmp_path):
    if not NATIVE_LIB_PATH.exists():
        pytest.fail(f"{NATIVE_LIB_PATH} is missing: run `make native` (make integration does it)", pytrace=False)
    jwt_guard = native_envoy_filter_http_filter()
    wrong, log = run_demo(with_filter(jwt_guard, upstream.port), upstream, tmp_path, "istio-native")
    assert not wrong, "\n".join(wrong)
    assert "(native): configured: 1 providers, 9 rules" in log, log[-3000:]
