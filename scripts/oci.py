#!/usr/bin/env python3
"""make oci: jwt_guard.wasm as an OCI image, without a registry or any container tool.

    python3 scripts/oci.py WASM OUT_DIR [--name jwt-guard] [--tag 0.1.0]

writes

    OUT_DIR/jwt-guard/      an OCI image layout (oci-layout, index.json, blobs/sha256/...) that
                            also holds Docker's manifest.json
    OUT_DIR/jwt-guard.tar   that directory as one tarball: `docker load -i` takes it (through
                            manifest.json on Docker 20.10+, through index.json with the
                            containerd image store), and so do `skopeo copy oci-archive:...`
                            and `oras cp --from-oci-layout` once unpacked

The image is the Wasm image specification's "compat" variant, the one every Istio version that
pulls Wasm from OCI registries (1.12 and later; pkg/wasm/imagefetcher.go) accepts, and Envoy
Gateway too: one layer, media type application/vnd.oci.image.layer.v1.tar+gzip, holding
`plugin.wasm`; the manifest carries the annotation module.wasm.image/variant=compat. Pushed
with `docker push`, the same image gets Docker media types, which Istio accepts as well.
(The spec's "oci" variant, a raw application/vnd.module.wasm.content.layer.v1+wasm layer,
must have exactly two layers for Istio and cannot be loaded by Docker: narrower.)

Reproducible: the layer's tar entry and gzip header carry SOURCE_DATE_EPOCH (default 0) as
their time, and JSON is written with sorted keys, so the same .wasm gives the same digests.
Standard library only.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import shutil
import sys
import tarfile
import time
from pathlib import Path

LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_TYPE = "application/vnd.oci.image.index.v1+json"
WASM_NAME = "plugin.wasm"  # the name Istio's fetcher looks for (filepath.Base == "plugin.wasm")


def canonical(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tar_bytes(entries: list[tuple[str, bytes]], mtime: int) -> bytes:
    """A tar of regular files (and their directories), owned by root, all with the same time."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        dirs: set[str] = set()
        for name, data in entries:
            parts = name.split("/")[:-1]
            for depth in range(1, len(parts) + 1):
                path = "/".join(parts[:depth])
                if path not in dirs:
                    dirs.add(path)
                    info = tarfile.TarInfo(path + "/")
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, mtime
                    info.uid = info.gid = 0
                    info.uname = info.gname = ""
                    tar.addfile(info)
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, mtime
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def gzip_bytes(data: bytes, mtime: int) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=mtime, compresslevel=9) as gz:
        gz.write(data)
    return buf.getvalue()


def build(wasm: bytes, name: str, tag: str, epoch: int) -> dict[str, bytes]:
    """{path inside the layout: content} for the whole image layout."""
    layer_tar = tar_bytes([(WASM_NAME, wasm)], epoch)
    layer = gzip_bytes(layer_tar, epoch)
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
    # os/architecture are required fields. A Wasm module runs anywhere, but `docker load`
    # (20.10) refuses os "wasip1" ("unknown operating system or architecture"), and Istio
    # ignores both (it reads the layer): linux/amd64 is what `docker build` of a `FROM scratch`
    # compat image records on amd64.
    config = canonical({
        "architecture": "amd64",
        "os": "linux",
        "created": created,
        "config": {"Labels": {"org.opencontainers.image.title": name,
                              "org.opencontainers.image.version": tag}},
        "rootfs": {"type": "layers", "diff_ids": [sha256(layer_tar)]},
        "history": [{"created": created, "created_by": f"scripts/oci.py: {WASM_NAME} ({len(wasm)} bytes)"}],
    })
    manifest = canonical({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": CONFIG_TYPE, "digest": sha256(config), "size": len(config)},
        "layers": [{"mediaType": LAYER_TYPE, "digest": sha256(layer), "size": len(layer)}],
        "annotations": {
            "module.wasm.image/variant": "compat",
            "org.opencontainers.image.title": name,
            "org.opencontainers.image.version": tag,
            "org.opencontainers.image.created": created,
        },
    })
    index = canonical({
        "schemaVersion": 2,
        "mediaType": INDEX_TYPE,
        "manifests": [{
            "mediaType": MANIFEST_TYPE, "digest": sha256(manifest), "size": len(manifest),
            # The tag inside the layout (oci:DIR:TAG, --from-oci-layout DIR:TAG), and the name
            # the containerd image store gives the image on `docker load`.
            "annotations": {"org.opencontainers.image.ref.name": tag,
                            "io.containerd.image.name": f"docker.io/library/{name}:{tag}"},
        }],
    })
    blob = lambda data: "blobs/sha256/" + sha256(data).split(":", 1)[1]  # noqa: E731
    docker_manifest = canonical([{"Config": blob(config), "RepoTags": [f"{name}:{tag}"], "Layers": [blob(layer)]}])
    return {
        "oci-layout": canonical({"imageLayoutVersion": "1.0.0"}),
        "index.json": index,
        "manifest.json": docker_manifest,
        blob(config): config,
        blob(layer): layer,
        blob(manifest): manifest,
    }


def write(files: dict[str, bytes], out: Path, name: str, epoch: int) -> tuple[Path, Path]:
    layout = out / name
    if layout.exists():
        shutil.rmtree(layout)
    for path, data in files.items():
        target = layout / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    archive = out / f"{name}.tar"
    archive.write_bytes(tar_bytes(sorted(files.items()), epoch))
    return layout, archive


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("wasm", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--name", default="jwt-guard")
    ap.add_argument("--tag", required=True)
    args = ap.parse_args()
    wasm = args.wasm.read_bytes()
    if wasm[:4] != b"\0asm":
        print(f"{args.wasm}: not a Wasm module", file=sys.stderr)
        return 1
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH") or 0)
    files = build(wasm, args.name, args.tag, epoch)
    layout, archive = write(files, args.out, args.name, epoch)
    index = json.loads(files["index.json"])
    manifest = json.loads(files[index["manifests"][0]["digest"].replace("sha256:", "blobs/sha256/")])
    layer = manifest["layers"][0]
    print(f"{layout}/  OCI image layout, tag {args.tag}")
    print(f"{archive}  {archive.stat().st_size} bytes (docker load -i {archive})")
    print(f"manifest {index['manifests'][0]['digest']}")
    print(f"layer    {layer['digest']} ({layer['size']} bytes, {LAYER_TYPE}: {WASM_NAME}, {len(wasm)} bytes)")
    print(f"wasm     {sha256(wasm)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
