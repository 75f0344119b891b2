"""make oci: build/oci/jwt-guard/ (OCI image layout) and build/oci/jwt-guard.tar hold the built
jwt_guard.wasm as a Wasm image in the compat variant Istio pulls.

Checked without any container tool: every descriptor's digest and size against the blob it
names, the layer read the way Istio's istio-agent reads it (pkg/wasm/imagefetcher.go,
extractOCIStandardImage: the last layer, media type application/vnd.oci.image.layer.v1.tar+gzip,
gunzip, untar, the entry whose base name is plugin.wasm) byte for byte against the .wasm, the
config's diff_id against the uncompressed layer, Docker's manifest.json, and the tarball against
the directory. With a Docker engine or skopeo on the machine, they load the image too."""

from __future__ import annotations

import calendar
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from conftest import in_ci
from harness import REPO_ROOT, WASM_PATH

OCI_DIR = REPO_ROOT / "build" / "oci"
LAYOUT = OCI_DIR / "jwt-guard"
ARCHIVE = OCI_DIR / "jwt-guard.tar"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"

sys.path.insert(0, str(REPO_ROOT / "scripts"))
import oci  # noqa: E402

pytestmark = pytest.mark.wasm_only(reason="the OCI image packages the .wasm for Istio's WasmPlugin")


def version() -> str:
    match = re.search(r'^version = "([^"]+)"', (REPO_ROOT / "Cargo.toml").read_text(), re.M)
    assert match
    return match.group(1)


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def layout(wasm) -> Path:
    if not (LAYOUT / "index.json").exists() or not ARCHIVE.exists():
        pytest.fail(f"{LAYOUT} or {ARCHIVE} is missing: run `make oci` (make integration does it)", pytrace=False)
    return LAYOUT


def blob(layout: Path, descriptor: dict) -> bytes:
    """The blob a descriptor names, after checking its digest and size."""
    algo, _, hexdigest = descriptor["digest"].partition(":")
    assert algo == "sha256" and re.fullmatch(r"[0-9a-f]{64}", hexdigest), descriptor
    data = (layout / "blobs" / "sha256" / hexdigest).read_bytes()
    assert digest(data) == descriptor["digest"], f"blob content does not match its digest: {descriptor}"
    assert len(data) == descriptor["size"], f"blob size {len(data)} != descriptor size: {descriptor}"
    return data


def image(layout: Path) -> tuple[dict, dict, dict, bytes]:
    """(index, manifest, config, layer) of the layout's one image."""
    index = json.loads((layout / "index.json").read_text())
    assert index["schemaVersion"] == 2 and len(index["manifests"]) == 1, index
    entry = index["manifests"][0]
    assert entry["mediaType"] == MANIFEST_TYPE
    manifest = json.loads(blob(layout, entry))
    assert manifest["schemaVersion"] == 2 and manifest["mediaType"] == MANIFEST_TYPE
    assert manifest["config"]["mediaType"] == CONFIG_TYPE
    config = json.loads(blob(layout, manifest["config"]))
    assert len(manifest["layers"]) == 1, "the compat variant has exactly one layer"
    return index, manifest, config, blob(layout, manifest["layers"][0])


def istio_extract(manifest: dict, layer: bytes) -> bytes:
    """What Istio's extractOCIStandardImage + extractWasmPluginBinary return for this image."""
    last = manifest["layers"][-1]
    assert last["mediaType"] == LAYER_TYPE, last
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(layer)), mode="r:") as tar:
        for member in tar:
            if os.path.basename(member.name) == "plugin.wasm":
                f = tar.extractfile(member)
                assert f is not None, member
                return f.read()
    raise AssertionError("plugin.wasm not found in the layer")


def test_layout_holds_the_built_wasm(layout):
    wasm = WASM_PATH.read_bytes()
    assert json.loads((layout / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index, manifest, config, layer = image(layout)
    assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == version()
    assert manifest["annotations"]["module.wasm.image/variant"] == "compat"
    assert istio_extract(manifest, layer) == wasm, "plugin.wasm in the image is not the built jwt_guard.wasm"
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(layer)), mode="r:") as tar:
        members = tar.getmembers()
    assert [(m.name, m.isfile(), m.size) for m in members] == [("plugin.wasm", True, len(wasm))]
    assert config["rootfs"] == {"type": "layers", "diff_ids": [digest(gzip.decompress(layer))]}
    assert config["os"] and config["architecture"]
    # No blob that nothing names.
    named = {index["manifests"][0]["digest"], manifest["config"]["digest"], manifest["layers"][0]["digest"]}
    present = {"sha256:" + p.name for p in (layout / "blobs" / "sha256").iterdir()}
    assert present == named


def test_docker_manifest_names_the_same_blobs(layout):
    _, manifest, _, _ = image(layout)
    (entry,) = json.loads((layout / "manifest.json").read_text())
    assert entry["RepoTags"] == [f"jwt-guard:{version()}"]
    assert entry["Config"] == "blobs/sha256/" + manifest["config"]["digest"].split(":")[1]
    assert entry["Layers"] == ["blobs/sha256/" + manifest["layers"][0]["digest"].split(":")[1]]


def test_archive_is_the_layout(layout):
    in_dir = {p.relative_to(layout).as_posix(): p.read_bytes() for p in layout.rglob("*") if p.is_file()}
    with tarfile.open(ARCHIVE, mode="r:") as tar:
        in_tar = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]
        assert all(not m.name.startswith(("/", "..")) and ".." not in m.name.split("/") for m in tar)
    assert in_tar == in_dir


def test_same_wasm_same_image(layout, tmp_path):
    """Reproducible: packaging the built .wasm again (same SOURCE_DATE_EPOCH) gives the same
    bytes, so the layout on disk is the current build's and its digests are stable."""
    _, manifest, _, _ = image(layout)
    created = manifest["annotations"]["org.opencontainers.image.created"]
    epoch = calendar.timegm(time.strptime(created, "%Y-%m-%dT%H:%M:%SZ"))
    env = dict(os.environ, SOURCE_DATE_EPOCH=str(epoch))
    subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "oci.py"), str(WASM_PATH), str(tmp_path),
                    "--tag", version()], check=True, env=env, capture_output=True)
    again = {p.relative_to(tmp_path / "jwt-guard").as_posix(): p.read_bytes()
             for p in (tmp_path / "jwt-guard").rglob("*") if p.is_file()}
    now = {p.relative_to(layout).as_posix(): p.read_bytes() for p in layout.rglob("*") if p.is_file()}
    assert again == now
    assert (tmp_path / "jwt-guard.tar").read_bytes() == ARCHIVE.read_bytes()


def test_packager_refuses_what_is_not_wasm(tmp_path):
    bad = tmp_path / "x.wasm"
    bad.write_bytes(b"not wasm")
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "oci.py"), str(bad), str(tmp_path),
                           "--tag", "0"], capture_output=True, text=True)
    assert proc.returncode == 1 and "not a Wasm module" in proc.stderr
    assert oci.WASM_NAME == "plugin.wasm"


# ----------------------------------------------------------------- with tools, when present


def docker_answers() -> bool:
    if not shutil.which("docker"):
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0


def test_docker_loads_the_archive(layout, tmp_path):
    """`docker load` of the tarball, then the file Docker put in the image. Needs a Docker
    engine: skipped without one (the archive format is checked above either way)."""
    if not docker_answers():
        if in_ci():
            pytest.fail("no Docker engine answers `docker info` and CI=true (.ci/run starts one)", pytrace=False)
        pytest.skip("no Docker engine answers `docker info`")
    tag = f"jwt-guard:{version()}"
    name = f"jwt-guard-oci-test-{os.getpid()}"
    # An image of that name loaded by somebody else is left alone afterwards.
    existed = subprocess.run(["docker", "image", "inspect", tag], capture_output=True, timeout=60).returncode == 0
    out = subprocess.run(["docker", "load", "-i", str(ARCHIVE)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and f"Loaded image: {tag}" in out.stdout, out.stdout + out.stderr
    try:
        subprocess.run(["docker", "create", "--name", name, tag, "/plugin.wasm"], check=True,
                       capture_output=True, timeout=60)
        subprocess.run(["docker", "cp", f"{name}:/plugin.wasm", str(tmp_path / "plugin.wasm")], check=True,
                       capture_output=True, timeout=60)
        assert (tmp_path / "plugin.wasm").read_bytes() == WASM_PATH.read_bytes()
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, timeout=60)
        if not existed:
            subprocess.run(["docker", "rmi", tag], capture_output=True, timeout=60)


def test_skopeo_reads_the_layout(layout, tmp_path):
    """skopeo (containers/image) copies the layout and the archive, checking every digest."""
    if not shutil.which("skopeo"):
        if in_ci():
            pytest.fail("skopeo is not installed and CI=true (.ci/run installs it): the layout must be "
                        "read by containers/image in CI", pytrace=False)
        pytest.skip("skopeo is not installed (apt-get install skopeo; .ci/run installs it)")
    _, manifest, _, _ = image(layout)
    for source, dest in ((f"oci:{layout}:{version()}", tmp_path / "from-dir"),
                         (f"oci-archive:{ARCHIVE}:{version()}", tmp_path / "from-tar")):
        proc = subprocess.run(["skopeo", "copy", "--quiet", source, f"dir:{dest}"], capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        layer = (dest / manifest["layers"][0]["digest"].split(":")[1]).read_bytes()
        assert istio_extract(manifest, layer) == WASM_PATH.read_bytes()
