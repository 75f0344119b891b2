"""DPoP (RFC 9449) for the integration tests: client keys, their RFC 7638 thumbprints, tokens
bound to them (`cnf.jkt`) and proofs, all made here with hashlib, PyJWT and cryptography, never
by the filter's Rust code. Every header member and claim of a proof can be replaced or dropped
(tokens.DROP), and a proof can be signed by another key than the one its `jwk` shows.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from tokens import DROP, KeySet, b64url, json_members, sign_raw, with_overrides

DPOP_TYP = "dpop+jwt"
# The contract's default `algorithms`, in its order (the order of the challenge's algs).
DEFAULT_ALGS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]

# RFC 7638 §3.2 (and RFC 8037 §2 for OKP): the members a thumbprint hashes, per key type.
_THUMBPRINT_MEMBERS = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"), "OKP": ("crv", "kty", "x"),
                       "oct": ("k", "kty")}


def thumbprint(jwk: dict) -> str:
    """RFC 7638: base64url(SHA-256) of the required members, sorted, as JSON without white space."""
    members = _THUMBPRINT_MEMBERS[jwk["kty"]]
    canonical = json.dumps({m: jwk[m] for m in sorted(members)}, separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode()).digest())


def ath(token: str) -> str:
    """RFC 9449 §4.2: base64url(SHA-256(ASCII access token))."""
    return b64url(hashlib.sha256(token.encode("ascii")).digest())


@dataclass
class ClientKey:
    """A DPoP client's key pair. `alg` is the algorithm its proofs use by default."""

    alg: str
    private: Any

    @property
    def jwk(self) -> dict:
        """The public JWK as a client puts it in a proof (no kid, alg or use)."""
        return _jwk(self.private.public_key())

    @property
    def private_jwk(self) -> dict:
        """The JWK with its private members (d, and p, q, dp, dq, qi for RSA)."""
        return _jwk(self.private)

    @property
    def thumbprint(self) -> str:
        return thumbprint(self.jwk)


def _jwk(key: Any) -> dict:
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        d = RSAAlgorithm.to_jwk(key, as_dict=True)
    elif isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        d = ECAlgorithm.to_jwk(key, as_dict=True)
    else:
        d = OKPAlgorithm.to_jwk(key, as_dict=True)
    return {k: v for k, v in d.items() if k not in ("key_ops", "alg", "kid", "use")}


def new_client_key(alg: str = "ES256") -> ClientKey:
    if alg.startswith(("RS", "PS")):
        return ClientKey(alg, rsa.generate_private_key(public_exponent=65537, key_size=2048))
    if alg == "ES256":
        return ClientKey(alg, ec.generate_private_key(ec.SECP256R1()))
    if alg == "ES384":
        return ClientKey(alg, ec.generate_private_key(ec.SECP384R1()))
    if alg == "ES512":
        return ClientKey(alg, ec.generate_private_key(ec.SECP521R1()))
    if alg == "EdDSA":
        return ClientKey(alg, ed25519.Ed25519PrivateKey.generate())
    raise ValueError(alg)


def bound_token(keys: KeySet, client: ClientKey | None, alg: str = "ES256", **claims: Any) -> str:
    """An access token from the session issuer, with a fresh jti (so it starts out of the
    verified-token cache), bound to `client` by cnf.jkt (client None: not bound)."""
    claims.setdefault("jti", uuid.uuid4().hex)
    if client is not None:
        claims.setdefault("cnf", {"jkt": client.thumbprint})
    return keys.mint(alg, **claims)


def proof(client: ClientKey, method: str, url: str, token: str | None = None, *,
          header: dict | None = None, claims: dict | None = None,
          sign_with: Any = None, sign_alg: str | None = None, raw_claims: bytes | None = None) -> str:
    """A DPoP proof for `method` `url`, signed by `client` (with a fresh jti, iat now and, with
    a token, its ath). `header` / `claims`: members to add or replace (DROP removes one), e.g.
    header={"typ": "jwt"}, header={"jwk": client.private_jwk}, claims={"ath": DROP}.
    `sign_with` / `sign_alg`: sign with another private key (or HMAC secret) and algorithm
    than the client's (the header's `alg` stays what `header` says, by default sign_alg)."""
    alg = sign_alg or client.alg
    hdr = with_overrides({"typ": DPOP_TYP, "alg": alg, "jwk": client.jwk}, header or {})
    base = {"jti": uuid.uuid4().hex, "htm": method, "htu": url, "iat": int(time.time())}
    if token is not None:
        base["ath"] = ath(token)
    body = raw_claims if raw_claims is not None else json_members(with_overrides(base, claims or {}))
    return sign_raw(json_members(hdr), body, sign_with if sign_with is not None else client.private, alg)


def decode_unverified(compact: str) -> tuple[dict, dict]:
    """(header, claims) of a proof, for tests that look at what they sent."""
    return jwt.get_unverified_header(compact), jwt.decode(compact, options={"verify_signature": False})


__all__ = ["DEFAULT_ALGS", "DPOP_TYP", "DROP", "ClientKey", "ath", "bound_token", "decode_unverified",
           "new_client_key", "proof", "thumbprint"]
