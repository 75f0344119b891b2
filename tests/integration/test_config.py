"""Configuration: a refused filter configuration stops Envoy (non-zero exit) with one log line
naming the field; every shipped envoy/*.yaml passes `envoy --mode validate`."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import pytest

from harness import REPO_ROOT, Envoy, bootstrap, for_this_envoy, geo_keys_field, listener, request, wasm_filter
from tokens import ISSUER, KeySet

PREFIX = "jwt-guard: invalid configuration: "


def good_config(keys: KeySet) -> dict:
    return {
        "realm": "api",
        "providers": {"corp": {"issuer": ISSUER, "jwks": keys.jwks(["ES256", "RS256"])}},
        "rules": [{"match": {"prefix": "/"}, "provider": "corp"}],
    }


def _bad_configs(keys: KeySet) -> list[tuple[str, object, str]]:
    """(id, filter configuration, field path the error line must start with after PREFIX)."""
    def mut(f):
        c = good_config(keys)
        f(c)
        return c

    bad_ec = dict(keys.keys["ES256"].jwk, x="AAAA")
    return [
        ("unknown top-level field", mut(lambda c: c.update(bogus_field=1)), "bogus_field"),
        ("unknown provider field", mut(lambda c: c["providers"]["corp"].update(isuer="x")), "providers.corp.isuer"),
        ("unknown rule field", mut(lambda c: c["rules"][0].update(allow_anonymus=True)), "rules[0].allow_anonymus"),
        ("rule names missing provider",
         mut(lambda c: c["rules"].append({"match": {"prefix": "/x"}, "provider": "nope"})), "rules[1].provider"),
        ("empty issuer", mut(lambda c: c["providers"]["corp"].update(issuer="")), "providers.corp.issuer"),
        ("missing issuer", mut(lambda c: c["providers"]["corp"].pop("issuer")), "providers.corp"),
        ("bad JWK", mut(lambda c: c["providers"]["corp"].update(jwks={"keys": [bad_ec]})), "providers.corp.jwks.keys[0]"),
        ("JWKS string not JSON", mut(lambda c: c["providers"]["corp"].update(jwks="{not json")),
         "providers.corp.jwks"),
        ("empty realm", mut(lambda c: c.update(realm="")), "realm"),
        ("xff trusted_hops 0", mut(lambda c: c.update(client_ip={"from": "xff", "trusted_hops": 0})), "client_ip.trusted_hops"),
        ("bad CIDR", mut(lambda c: c["rules"][0].update(source_ips={"allow": ["10.0.0.0/33"]})),
         "rules[0].source_ips.allow[0]"),
        ("configuration not JSON", "{realm: api", ""),
        ("empty rules list", mut(lambda c: c.update(rules=[])), "rules"),
        # Issue #15: a due refresh must have its whole time before the keys are dropped (keys
        # were dropped at every refresh with max_stale_seconds equal to refresh_seconds).
        ("max_stale_seconds equal to refresh_seconds",
         mut(lambda c: c["providers"]["corp"].update(remote_jwks={
             "cluster": "idp", "uri": "https://idp.example.com/jwks.json", "refresh_seconds": 10,
             "min_refetch_seconds": 5, "max_stale_seconds": 10})),
         "providers.corp.remote_jwks.max_stale_seconds"),
        # An identity header with `_`: upstreams read it as the `-` spelling.
        ("identity header with an underscore",
         mut(lambda c: c["providers"]["corp"].update(claim_to_headers=[{"claim": "sub", "header": "x_user_sub"}])),
         "providers.corp.claim_to_headers[0].header"),
    ]


@pytest.fixture(scope="module")
def bad_runs(keys, wasm, upstream, tmp_path_factory):
    """Run Envoy once per bad configuration, a few at a time; {id: (exit code, log)}. Listener and
    admin on port 0: Envoy is expected to exit, nothing is ever sent to it."""
    cases = _bad_configs(keys)

    def run(case):
        cid, cfg, _ = case
        env = Envoy(bootstrap([listener("bad", 0, [wasm_filter(cfg)])], upstream.port),
                    workdir=tmp_path_factory.mktemp("bad"), name="bad")
        try:
            rc = env.run_to_exit(timeout=60)
            return cid, (rc, env.log())
        finally:
            env.stop()

    with ThreadPoolExecutor(max_workers=3) as pool:
        return dict(pool.map(run, cases))


def test_good_config_starts(keys, wasm, upstream, tmp_path):
    """Control for the cases below: the unmodified configuration is accepted."""
    env = Envoy(bootstrap([listener("good", 0, [wasm_filter(good_config(keys))])], upstream.port),
                workdir=tmp_path, name="good")
    try:
        env.start()
    finally:
        env.cleanup()
    assert PREFIX not in env.log()


def test_refusals_are_logged_at_debug_level_only(keys, wasm, upstream, tmp_path):
    """With debug logging each refusal names its status, reason, method and path; at info, none."""
    for level, expected in (("debug", True), ("info", False)):
        env = Envoy(bootstrap([listener("log", 0, [wasm_filter(good_config(keys))])], upstream.port),
                    workdir=tmp_path, log_level=level, name=f"log-{level}")
        try:
            env.start()
            assert request(env.listener_ports()["log"], "/orders/7").status == 401
            env.stop()
            assert ("jwt-guard: 401 missing for GET /orders/7" in env.log()) == expected, level
        finally:
            env.cleanup()


def test_bad_configurations_are_refused(keys, bad_runs):
    failures = []
    for cid, _cfg, needle in _bad_configs(keys):
        rc, log = bad_runs[cid]
        lines = [ln for ln in log.splitlines() if PREFIX in ln]
        if rc == 0:
            failures.append(f"{cid}: Envoy exited 0")
        if len(lines) != 1:
            failures.append(f"{cid}: expected exactly one '{PREFIX}...' line, got {len(lines)}:\n"
                            + "\n".join(log.splitlines()[-15:]))
            continue
        line = lines[0]
        if "[error]" not in line and "[critical]" not in line:
            failures.append(f"{cid}: not logged at error/critical: {line}")
        detail = line.split(PREFIX, 1)[1]
        if not detail.startswith(needle + ":" if needle else ""):
            failures.append(f"{cid}: expected the field path {needle!r}, got {detail!r}")
    assert not failures, "\n".join(failures)


# --------------------------------------------------------------------------- shipped configs

SHIPPED = sorted((REPO_ROOT / "envoy").glob("*.yaml"))


def test_shipped_configs_exist():
    assert [p.name for p in SHIPPED if p.name == "envoy.yaml"] == ["envoy.yaml"]


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_config_validates(path, wasm, tmp_path):
    """As shipped, for the newest Envoy. An older one (ENVOY_VERSION=1.36.4) refuses the newer
    geoip fields and nothing else: the file in its spelling (harness.for_this_envoy) validates."""
    text = path.read_text()
    if for_this_envoy(text) != text:
        env = Envoy(path, workdir=tmp_path, name="validate-as-shipped")
        rc = env.run_to_exit(timeout=60, cwd=REPO_ROOT, extra_args=["--mode", "validate"])
        assert rc != 0 and re.search(r"no\s+such\s+field:\s+'(geo_field_keys|country_db_path)'", env.log()), \
            env.log_tail(30)
        assert geo_keys_field() == "geo_headers_to_add"
        path = tmp_path / path.name
        path.write_text(for_this_envoy(text))
    env = Envoy(path, workdir=tmp_path, name="validate")
    rc = env.run_to_exit(timeout=60, cwd=REPO_ROOT, extra_args=["--mode", "validate"])
    assert rc == 0, env.log_tail(30)
