#!/usr/bin/env python3
"""Extract one member (by path suffix) from an sdist tarball: used by `make setup` to take
MaxMind's GeoIP2 test database out of the maxminddb source distribution."""
import shutil
import sys
import tarfile
from pathlib import Path


def main() -> int:
    if len(sys.argv) != 4:
        print(f"usage: {sys.argv[0]} SDIST.tar.gz MEMBER_SUFFIX DEST", file=sys.stderr)
        return 2
    sdist, suffix, dest = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    with tarfile.open(sdist, "r:*") as tar:
        members = [m for m in tar.getmembers() if m.isfile() and m.name.endswith("/" + suffix)]
        if len(members) != 1:
            print(f"{sdist}: expected one member ending in {suffix}, found {len(members)}", file=sys.stderr)
            return 1
        src = tar.extractfile(members[0])
        assert src is not None
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_suffix(dest.suffix + ".tmp")
        with open(tmp, "wb") as out:
            shutil.copyfileobj(src, out)
        tmp.replace(dest)
    print(f"{dest}: {dest.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
