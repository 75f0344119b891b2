#!/usr/bin/env python3
"""Mint a token accepted by envoy/envoy.yaml, signed with the DEMO ONLY key in envoy/demo-keys/.

    .venv/bin/python scripts/mint.py --sub alice --roles admin --scope "orders:read orders:write"
    curl -i -H "Authorization: Bearer $(.venv/bin/python scripts/mint.py --roles admin)" localhost:10000/admin
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import secrets
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from jwt.algorithms import ECAlgorithm

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_KEY = REPO_ROOT / "envoy" / "demo-keys" / "demo-es256.key.pem"
DEMO_KID = "demo-es256"
DEMO_ISSUER = "https://idp.example.com"
DEMO_AUDIENCE = "orders"


def demo_key() -> Any:
    return load_pem_private_key(DEMO_KEY.read_bytes(), password=None)


def claims(sub: str = "alice", ttl: int = 300, **extra: Any) -> dict:
    now = int(time.time())
    c: dict[str, Any] = {"iss": DEMO_ISSUER, "aud": DEMO_AUDIENCE, "sub": sub, "iat": now, "exp": now + ttl}
    for k, v in extra.items():
        if v is None:
            c.pop(k, None)
        else:
            c[k] = v
    return c


def mint(payload: dict, kid: str | None = DEMO_KID, key: Any = None) -> str:
    headers = {"kid": kid} if kid else {}
    return jwt.encode(payload, key or demo_key(), algorithm="ES256", headers=headers)


def jwk_thumbprint(jwk: dict) -> str:
    """RFC 7638: SHA-256 of the key's required members, sorted, without white space."""
    required = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"), "OKP": ("crv", "kty", "x")}[jwk["kty"]]
    canonical = json.dumps({k: jwk[k] for k in required}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


def public_jwk(key: Any) -> dict:
    """An EC key's public JWK (public members only), as a DPoP proof carries it."""
    jwk = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {k: jwk[k] for k in ("kty", "crv", "x", "y")}


def dpop_proof(key: Any, method: str, url: str, token: str, jti: str | None = None) -> str:
    """A DPoP proof (RFC 9449 §4.2) for one request, signed ES256 by an EC P-256 client key."""
    ath = base64.urlsafe_b64encode(hashlib.sha256(token.encode()).digest()).rstrip(b"=").decode()
    payload = {"jti": jti or secrets.token_urlsafe(16), "htm": method, "htu": url, "iat": int(time.time()),
               "ath": ath}
    return jwt.encode(payload, key, algorithm="ES256", headers={"typ": "dpop+jwt", "jwk": public_jwk(key)})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sub", default="alice")
    ap.add_argument("--roles", default="", help="comma-separated roles (claim 'roles')")
    ap.add_argument("--scope", default=None, help="space-separated scopes (claim 'scope')")
    ap.add_argument("--ttl", type=int, default=3600, help="seconds until exp (default 3600)")
    ap.add_argument("--aud", default=DEMO_AUDIENCE)
    ap.add_argument("--iss", default=DEMO_ISSUER)
    ap.add_argument("--claim", action="append", default=[], metavar="NAME=JSON",
                    help='extra claim, value as JSON if it parses (e.g. email_verified=true, tenant=acme)')
    args = ap.parse_args()
    extra: dict[str, Any] = {"aud": args.aud, "iss": args.iss}
    if args.roles:
        extra["roles"] = [r for r in args.roles.split(",") if r]
    if args.scope is not None:
        extra["scope"] = args.scope
    for item in args.claim:
        name, _, raw = item.partition("=")
        try:
            extra[name] = json.loads(raw)
        except json.JSONDecodeError:
            extra[name] = raw
    print(mint(claims(args.sub, args.ttl, **extra)))


if __name__ == "__main__":
    main()
