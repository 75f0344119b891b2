"""The shipped envoy/envoy.yaml, started for real (its ports set to 0, bound by Envoy) by
scripts/demo.py: every demo request must get the answer the demo table promises."""

from __future__ import annotations

import subprocess
import sys

from harness import REPO_ROOT


def test_demo_against_shipped_config(wasm):
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "demo.py"), "--free-ports", "--check"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "answers as expected" in proc.stdout, proc.stdout
