"""The shipped envoy/envoy.yaml, started for real (its ports set to 0, bound by Envoy) by
scripts/demo.py: every demo request must get the answer the demo table promises, DPoP's (RFC 9449)
included: a bound token with its proof accepted (and neither reaching the upstream), the proof
replayed, the token sent as a bearer token, and with a thief's own proof key, refused."""

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
    # The DPoP rows are in the table, each with the answer it shows (--check compared them).
    table = {line.rsplit(None, 2)[0]: line.split()[-2:] for line in proc.stdout.splitlines()
             if line.startswith("/orders, ") and "DPoP" in line}
    assert list(table.values()) == [["200", "-"], ["401", "dpop_proof_replayed"], ["401", "dpop_bound_as_bearer"],
                                    ["401", "dpop_key_mismatch"], ["401", "dpop_proof_mismatch"]], proc.stdout
