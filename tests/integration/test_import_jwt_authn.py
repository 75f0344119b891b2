"""`jwt-guard import jwt-authn`, judged by real Envoy: for every configuration of the corpus
(tests/import/jwt_authn/*.yaml: the examples of Envoy's jwt_authn documentation and proto
comments, and this project's own jwt_authn configuration), one Envoy runs two listeners side by
side: `authn` with Envoy's jwt_authn filter and the ORIGINAL configuration, `guard` with
jwt-guard (JWTG_RUNTIME: the .wasm or the native module) and the configuration
`target/cli/jwt-guard import jwt-authn` printed. The same requests go to both: tokens minted by
PyJWT (tokens.py) valid, expired, not yet valid, badly signed, of a wrong issuer or audience,
malformed, and none, in every location of every provider, on every rule's paths and on a path no
rule matches. The status classes (2xx, 401, 403) must be equal, except where INTENDED below says
why they differ; any other difference fails the test.

The corpus files carry placeholders where keys go (`inline_string: PUBLIC-KEY`): the test puts
its own key set there, and serves the remote key sets (cluster example_jwks_cluster) from
jwks_server.py on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from conftest import start_stack
from harness import REPO_ROOT, listener, request, static_cluster, wasm_filter
from jwks_server import JwksServer
from tokens import KeySet

CLI = Path(os.environ.get("JWT_GUARD_CLI", REPO_ROOT / "target" / "cli" / "jwt-guard"))
CORPUS = REPO_ROOT / "tests" / "import" / "jwt_authn"
JWT_AUTHN_TYPE = "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication"
LOSSY = {"docs-group-requirement.yaml"}  # the import exits 5 without --allow-lossy
WRONG_ISSUER = "https://wrong-issuer.example.net"
ALG = "ES256"

FILES = sorted(p.name for p in CORPUS.glob("*.yaml"))
BOOTSTRAP = CORPUS / "bootstrap" / "per-route.yaml"


@dataclass(frozen=True)
class Case:
    path: str
    provider: str | None  # jwt_authn provider whose location and issuer the token uses
    location: str  # "none", "header:<name>:<prefix>", "param:<name>", "cookie:<name>"
    kind: str  # valid, expired, not_yet_valid, bad_signature, wrong_issuer, wrong_audience, malformed, missing


def status_class(status: int) -> str:
    return "2xx" if 200 <= status < 300 else str(status)


# ------------------------------------------------------------------ intended differences
# (jwt_authn class, jwt-guard class, predicate on the case, reason). Every row is documented in
# docs/migration.md ("From Envoy jwt_authn", intentional differences).
Intended = tuple[str, str, Callable[[Case, str], bool], str]

# Paths whose rule narrows the audiences (provider_and_audiences): the provider's own tokens
# carry an audience the rule does not accept there.
AUDIENCE_OVERRIDES = {("docs-single-requirement.yaml", "/api/")}


def audience_mismatch(case: Case, file: str) -> bool:
    if case.kind == "wrong_audience":
        return True
    overridden = any(f == file and case.path.startswith(p) for f, p in AUDIENCE_OVERRIDES)
    return overridden and case.kind in ("valid", "bad_signature")


INTENDED: list[Intended] = [
    ("403", "401", audience_mismatch,
     "audience mismatch: jwt_authn answers 403 (and checks the audience before the signature), "
     "jwt-guard 401 bad_audience, or bad_signature first (RFC 6750: a token for another audience "
     "is an invalid token)"),
    ("401", "403", lambda c, f: f == "docs-group-requirement.yaml" and c.path.startswith("/all")
     and c.kind == "valid",
     "requires_all of two providers is not expressible: the import fails closed (403 ip_denied "
     "for a valid token), jwt_authn asks for the second token (401)"),
]


def intended(authn: str, guard: str, case: Case, file: str) -> str | None:
    for a, g, pred, reason in INTENDED:
        if a == authn and g == guard and pred(case, file):
            return reason
    return None


# ------------------------------------------------------------------ the corpus, with keys


def with_keys(message: dict, jwks: dict) -> dict:
    """The corpus configuration with the test's key set in every local_jwks."""
    out = json.loads(json.dumps(message))
    for provider in out.get("providers", {}).values():
        if "local_jwks" in provider:
            provider["local_jwks"] = {"inline_string": json.dumps(jwks)}
    return out


def locations(provider: dict) -> list[str]:
    """Where jwt_authn reads this provider's token (its defaults when it names none)."""
    headers = provider.get("from_headers") or []
    params = provider.get("from_params") or []
    cookies = provider.get("from_cookies") or []
    if not headers and not params and not cookies:
        return ["header:authorization:Bearer ", "param:access_token"]
    return ([f"header:{h['name']}:{h.get('value_prefix', '')}" for h in headers]
            + [f"param:{p}" for p in params] + [f"cookie:{c}" for c in cookies])


def rule_paths(message: dict) -> list[str]:
    """A path inside every rule's match, and one no rule matches."""
    paths = []
    for rule in message.get("rules", []):
        m = rule.get("match", {})
        if "prefix" in m:
            paths.append(m["prefix"].rstrip("/") + "/x")
        elif "path" in m:
            paths.append(m["path"])
    paths.append("/zz-no-rule-matches")
    # "/" + "/x" is "/x": keep each once, in order.
    return list(dict.fromkeys(paths))


def mint(keys: KeySet, kind: str, provider: dict) -> str | None:
    issuer = provider["issuer"]
    audiences = provider.get("audiences") or ["any-audience"]
    audience = audiences if isinstance(audiences, str) else audiences[0]
    now = int(time.time())
    if kind == "missing":
        return None
    if kind == "malformed":
        return "not.a-token"
    if kind == "valid":
        return keys.mint(ALG, iss=issuer, aud=audience)
    if kind == "expired":
        return keys.mint(ALG, iss=issuer, aud=audience, iat=now - 7200, exp=now - 3600)
    if kind == "not_yet_valid":
        return keys.mint(ALG, iss=issuer, aud=audience, nbf=now + 3600)
    if kind == "bad_signature":
        return keys.mint(ALG, iss=issuer, aud=audience, key=keys.rogue_p256)
    if kind == "wrong_issuer":
        return keys.mint(ALG, iss=WRONG_ISSUER, aud=audience)
    if kind == "wrong_audience":
        return keys.mint(ALG, iss=issuer, aud="not-an-audience-of-anyone")
    raise ValueError(kind)


def send(port: int, path: str, location: str, token: str | None) -> int:
    headers: list[tuple[str, str]] = []
    if token is not None:
        kind, _, rest = location.partition(":")
        if kind == "header":
            name, _, prefix = rest.partition(":")
            headers.append((name, prefix + token))
        elif kind == "param":
            path = f"{path}?{rest}={token}"
        elif kind == "cookie":
            headers.append(("cookie", f"{rest}={token}"))
    return request(port, path, headers=headers).status


def cases(message: dict, paths: list[str]) -> list[Case]:
    out = [Case(path, None, "none", "missing") for path in paths]
    for path in paths:
        for name, provider in message.get("providers", {}).items():
            for location in locations(provider):
                for kind in ("valid", "expired", "not_yet_valid", "bad_signature", "wrong_issuer",
                             "wrong_audience", "malformed"):
                    if kind == "wrong_audience" and not provider.get("audiences"):
                        continue
                    out.append(Case(path, name, location, kind))
    return out


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def cli() -> Path:
    if not CLI.exists():
        pytest.fail(f"{CLI} is missing: run `make cli`", pytrace=False)
    return CLI


def run_import(cli: Path, source: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(cli), "import", "jwt-authn", str(source), *extra], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def idp(keys: KeySet):
    server = JwksServer(keys.jwks([ALG])).start()
    yield server
    server.stop()


@pytest.mark.parametrize("file", FILES)
def test_imported_config_decides_as_jwt_authn(request: pytest.FixtureRequest, file: str, cli: Path, wasm: str,
                                              keys: KeySet, upstream, idp: JwksServer, tmp_path: Path) -> None:
    original = yaml.safe_load((CORPUS / file).read_text())
    message = with_keys(original, keys.jwks([ALG]))
    if "rules" not in message:
        # Without rules jwt_authn verifies nothing (every request passes, as the import keeps):
        # give each provider a path of its own, so its keys and locations are judged too.
        message["rules"] = [{"match": {"prefix": f"/{name}"}, "requires": {"provider_name": name}}
                            for name in message["providers"]]
    source = tmp_path / file
    source.write_text(yaml.safe_dump(message, sort_keys=False))

    plain = run_import(cli, source)
    if file in LOSSY:
        assert plain.returncode == 5 and plain.stdout == "", (plain.returncode, plain.stdout, plain.stderr)
        assert "NOT EXPRESSIBLE" in plain.stderr
    else:
        assert plain.returncode == 0, plain.stderr
        assert "NOT EXPRESSIBLE" not in plain.stderr
    done = run_import(cli, source, "--allow-lossy")
    assert done.returncode == 0, done.stderr
    config = json.loads(done.stdout)

    authn_filter = {"name": "envoy.filters.http.jwt_authn",
                    "typed_config": {"@type": JWT_AUTHN_TYPE, **message}}
    stack = start_stack(request, upstream, f"import-{Path(file).stem}",
                        [listener("authn", http_filters=[authn_filter]),
                         listener("guard", http_filters=[wasm_filter(config)])],
                        extra_clusters=[static_cluster("example_jwks_cluster", idp.port)])
    authn_port, guard_port = stack.ports["authn"], stack.ports["guard"]

    # jwt-guard fetches remote keys in the background: wait for them before judging.
    remote = [p for p in message.get("providers", {}).values() if "remote_jwks" in p]
    for provider in remote:
        token = mint(keys, "valid", provider)
        location = locations(provider)[0]
        deadline = time.monotonic() + 10
        path = rule_paths(message)[0]
        while time.monotonic() < deadline:
            if send(guard_port, path, location, token) != 401:
                break
            time.sleep(0.2)

    compare(keys, message, rule_paths(message), authn_port, guard_port, file)


def compare(keys: KeySet, message: dict, paths: list[str], authn_port: int, guard_port: int, file: str) -> None:
    """Every case on both listeners: equal status classes, or a row of INTENDED."""
    unexplained, explained = [], []
    all_cases = cases(message, paths)
    for case in all_cases:
        provider = message["providers"].get(case.provider) if case.provider else None
        token = mint(keys, case.kind, provider) if provider else None
        a = status_class(send(authn_port, case.path, case.location, token))
        g = status_class(send(guard_port, case.path, case.location, token))
        if a == g:
            continue
        reason = intended(a, g, case, file)
        line = f"{case}: jwt_authn {a}, jwt-guard {g}"
        (explained if reason else unexplained).append(line + (f"  [{reason[:40]}...]" if reason else ""))
    assert not unexplained, f"{file}: {len(unexplained)} unexplained differences:\n" + "\n".join(unexplained)
    # What the table explained, for the record (pytest -s shows it).
    print(f"{file}: {len(all_cases)} cases x 2 listeners, {len(explained)} intended differences")
    for line in explained:
        print("  " + line)


def test_per_route_configs_bound_by_route_metadata(request: pytest.FixtureRequest, cli: Path, wasm: str,
                                                   keys: KeySet, upstream, tmp_path: Path) -> None:
    """A bootstrap with requirement_map and per-route configs: jwt_authn's routes keep their
    typed_per_filter_config; jwt-guard's routes get the metadata the import's report names."""
    boot = yaml.safe_load(BOOTSTRAP.read_text())
    hcm = boot["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    authn_filter = hcm["http_filters"][0]
    message = with_keys({k: v for k, v in authn_filter["typed_config"].items() if k != "@type"},
                        keys.jwks([ALG]))
    authn_filter["typed_config"] = {"@type": JWT_AUTHN_TYPE, **message}
    source = tmp_path / "per-route.yaml"
    source.write_text(yaml.safe_dump(boot, sort_keys=False))
    done = run_import(cli, source)
    assert done.returncode == 0, done.stderr
    config = json.loads(done.stdout)
    bindings = dict(re.findall(r"^changed default  route (\S+)\.typed_per_filter_config: .*\{rule: ([^}]+)\}\}",
                               done.stderr, re.M))
    assert bindings == {"admin": "admin", "health": "jwt-authn-disabled", "orders": "orders",
                        "missing": "not-in-the-map"}, done.stderr

    routes = hcm["route_config"]["virtual_hosts"][0]["routes"]
    guard_routes = []
    for route in routes:
        bound = {k: v for k, v in route.items() if k != "typed_per_filter_config"}
        if route["name"] in bindings:
            bound["metadata"] = {"filter_metadata": {"jwt_guard": {"rule": bindings[route["name"]]}}}
        guard_routes.append(bound)
    stack = start_stack(request, upstream, "import-per-route",
                        [listener("authn", http_filters=[authn_filter], routes=routes),
                         listener("guard", http_filters=[wasm_filter(config)], routes=guard_routes)])
    paths = ["/admin/x", "/health/x", "/orders/x", "/missing/x", "/other/x"]
    compare(keys, message, paths, stack.ports["authn"], stack.ports["guard"], "bootstrap/per-route.yaml")


def test_corpus_is_not_empty_and_cites_its_sources() -> None:
    assert len(FILES) >= 6, FILES
    for name in [*FILES, "bootstrap/per-route.yaml"]:
        head = (CORPUS / name).read_text().splitlines()[0]
        assert head.startswith("# Source:"), f"{name}: first line must cite the source"


def test_lossy_config_exits_5_without_allow_lossy(cli: Path, keys: KeySet, tmp_path: Path) -> None:
    source = tmp_path / "lossy.yaml"
    source.write_text(yaml.safe_dump({
        "providers": {"p": {"issuer": "https://idp.example.com",
                            "local_jwks": {"inline_string": json.dumps(keys.jwks([ALG]))}}},
        "bypass_cors_preflight": True}))
    plain = run_import(cli, source)
    assert plain.returncode == 5, plain
    assert plain.stdout == ""
    assert "NOT EXPRESSIBLE  bypass_cors_preflight" in plain.stderr
    lossy = run_import(cli, source, "--allow-lossy")
    assert lossy.returncode == 0, lossy.stderr
    json.loads(lossy.stdout)
