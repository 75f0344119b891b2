#!/usr/bin/env python3
"""make run: the echo upstream (127.0.0.1:10001), the demo JWKS server (127.0.0.1:10002, serving
envoy/demo-keys/demo-jwks.json) plus Envoy with envoy/envoy.yaml in the foreground (listener
:10000, admin 127.0.0.1:9901). Ctrl-C stops all three."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "scripts"))
sys.path.insert(0, str(REPO_ROOT / "tests" / "integration"))

from harness import NATIVE_LIB_DIR, WASM_PATH, EchoUpstream, envoy_binary, for_this_envoy, for_this_runtime  # noqa: E402
from jwks_server import JwksServer  # noqa: E402

DEMO_JWKS = REPO_ROOT / "envoy" / "demo-keys" / "demo-jwks.json"

HELP = """
jwt-guard: Envoy on http://localhost:10000 (admin http://127.0.0.1:9901), upstream echo on 127.0.0.1:10001,
JWKS server on 127.0.0.1:10002 (keys are fetched at start: the first token may get 401 keys_unavailable)

In another shell, with the command-line tool (`make cli` builds target/cli/jwt-guard) and the
DEMO ONLY key of envoy/demo-keys/:

  mint() { target/cli/jwt-guard token --key envoy/demo-keys/demo-es256.key.pem --kid demo-es256 \\
             --iss https://idp.example.com --aud orders "$@"; }
  TOKEN=$(mint --sub alice --claim roles='["admin"]' --claim email_verified=true)
  curl -i localhost:10000/public                                          # 200, anonymous
  curl -i localhost:10000/orders                                          # 401 missing
  curl -i -H "Authorization: Bearer $TOKEN" localhost:10000/orders        # 200
  curl -i -H "Authorization: Bearer $TOKEN" localhost:10000/admin         # 200 (roles admin)
  curl -i -H "Authorization: Bearer $(mint --sub bob)" localhost:10000/admin   # 403 missing_role
  curl -i -H "Authorization: Bearer $TOKEN" -H "X-Forwarded-For: 81.2.69.160" localhost:10000/geo   # 200 (GB)
  target/cli/jwt-guard explain envoy/envoy.yaml --jwks demo=envoy/demo-keys/demo-jwks.json \\
      --path /admin --route-rule admin --header "authorization: Bearer $(mint --sub bob)"   # why: 403 missing_role
  curl -s 127.0.0.1:9901/stats | grep jwt_guard

  `target/cli/jwt-guard token --help` lists every claim option (--exp-in, --claim NAME=JSON, ...).
  Ctrl-C stops Envoy, the upstream and the JWKS server.
"""


def main() -> int:
    if not WASM_PATH.exists():
        print(f"{WASM_PATH} is missing: run `make build` (make run does)", file=sys.stderr)
        return 1
    try:
        upstream = EchoUpstream(port=10001, verbose=True).start()
    except OSError as e:
        print(f"cannot listen on 127.0.0.1:10001 for the echo upstream: {e}", file=sys.stderr)
        return 1
    try:
        idp = JwksServer(json.loads(DEMO_JWKS.read_text()), port=10002).start()
    except OSError as e:
        upstream.stop()
        print(f"cannot listen on 127.0.0.1:10002 for the JWKS server: {e}", file=sys.stderr)
        return 1
    config = "envoy/envoy.yaml"
    text = (REPO_ROOT / config).read_text()
    # An older Envoy (ENVOY_VERSION) gets its spelling, JWTG_RUNTIME=native the dynamic module in
    # place of the Wasm filter: see harness.py.
    adapted = for_this_runtime(for_this_envoy(text))
    if adapted != text:
        config = str(Path(tempfile.mkdtemp(prefix="jwtg-run-")) / "envoy.yaml")
        Path(config).write_text(adapted)
    os.environ.setdefault("ENVOY_DYNAMIC_MODULES_SEARCH_PATH", str(NATIVE_LIB_DIR))
    cmd = [envoy_binary(), "-c", config, "--concurrency", "1", "--use-dynamic-base-id", "-l", "info"]
    print(" ".join(cmd), flush=True)
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdin=subprocess.DEVNULL)
    print(HELP, flush=True)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
            return 0
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()
    finally:
        upstream.stop()
        idp.stop()


if __name__ == "__main__":
    sys.exit(main())
