"""Signing keys and pools of pre-minted tokens, one per algorithm.

Keys live in build/bench/keys/ and pools in build/bench/tokens/, named after the key's id, so a
second run reuses both and mints nothing (RSA signing of thousands of tokens takes a while). A
pool is minted again when its key changed (another file name), when it holds too few tokens, or
when its tokens expire within MIN_VALIDITY_S.

Every token carries the same claims except `sub` and `jti`: iss, aud, iat, exp (iat + 24 h),
roles ["admin"] and scope "orders:read orders:write", so every contender has the same work.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, HMACAlgorithm, OKPAlgorithm, RSAAlgorithm

ISSUER = "https://idp.example.com"
AUDIENCE = "orders"
ROLES = ["admin"]
SCOPE = "orders:read orders:write"

LIFETIME_S = 24 * 3600
MIN_VALIDITY_S = 4 * 3600


# --------------------------------------------------------------------------- algorithms


@dataclass(frozen=True)
class Algorithm:
    """How to make, store and publish a key of one JWS algorithm."""

    name: str
    generate: Callable[[], Any]
    public_jwk: Callable[[Any], dict]
    is_secret: bool = False  # HMAC: the key is bytes, stored as hex


def _rsa() -> Any:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _hmac_secret() -> bytes:
    import secrets

    return secrets.token_bytes(32)  # RFC 7518 §3.2: at least the hash size


ALGORITHMS: dict[str, Algorithm] = {a.name: a for a in (
    Algorithm("ES256", lambda: ec.generate_private_key(ec.SECP256R1()),
              lambda k: ECAlgorithm.to_jwk(k.public_key(), as_dict=True)),
    Algorithm("RS256", _rsa, lambda k: RSAAlgorithm.to_jwk(k.public_key(), as_dict=True)),
    Algorithm("PS256", _rsa, lambda k: RSAAlgorithm.to_jwk(k.public_key(), as_dict=True)),
    Algorithm("EdDSA", ed25519.Ed25519PrivateKey.generate,
              lambda k: OKPAlgorithm.to_jwk(k.public_key(), as_dict=True)),
    Algorithm("HS256", _hmac_secret, lambda k: HMACAlgorithm.to_jwk(k, as_dict=True), is_secret=True),
)}


# --------------------------------------------------------------------------- keys


@dataclass
class SigningKey:
    alg: str
    kid: str
    private: Any  # what jwt.encode takes
    jwk: dict  # the public JWK (for HS256: the secret), with kid, alg and use

    @property
    def jwks(self) -> dict:
        return {"keys": [self.jwk]}


def _dump(alg: Algorithm, key: Any) -> bytes:
    if alg.is_secret:
        return key.hex().encode()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _load(alg: Algorithm, data: bytes) -> Any:
    if alg.is_secret:
        return bytes.fromhex(data.decode())
    return serialization.load_pem_private_key(data, password=None)


def signing_key(alg_name: str, private: Any) -> SigningKey:
    """The key with its JWK; the kid is derived from the public JWK, so it names the key."""
    alg = ALGORITHMS[alg_name]
    jwk = {k: v for k, v in alg.public_jwk(private).items() if k != "key_ops"}
    digest = hashlib.sha256(json.dumps(jwk, sort_keys=True).encode()).hexdigest()[:12]
    kid = f"bench-{alg_name.lower()}-{digest}"
    jwk.update({"kid": kid, "alg": alg_name, "use": "sig"})
    return SigningKey(alg_name, kid, private, jwk)


def load_or_create_key(alg_name: str, keys_dir: Path) -> SigningKey:
    alg = ALGORITHMS[alg_name]
    path = keys_dir / f"{alg_name.lower()}.key"
    if path.exists():
        return signing_key(alg_name, _load(alg, path.read_bytes()))
    keys_dir.mkdir(parents=True, exist_ok=True)
    private = alg.generate()
    path.write_bytes(_dump(alg, private))
    path.chmod(0o600)
    return signing_key(alg_name, private)


def rogue_key(key: SigningKey) -> SigningKey:
    """A fresh key of the same algorithm that claims the same kid: its tokens must be refused."""
    other = signing_key(key.alg, ALGORITHMS[key.alg].generate())
    return SigningKey(key.alg, key.kid, other.private, other.jwk)


# --------------------------------------------------------------------------- tokens


def mint(key: SigningKey, sub: str, now: int, *, signer: SigningKey | None = None, **extra: Any) -> str:
    claims: dict[str, Any] = {
        "iss": ISSUER, "aud": AUDIENCE, "sub": sub, "jti": str(uuid.uuid4()),
        "iat": now, "exp": now + LIFETIME_S, "roles": ROLES, "scope": SCOPE,
    }
    claims.update(extra)
    return jwt.encode(claims, (signer or key).private, algorithm=key.alg, headers={"kid": key.kid})


@dataclass
class TokenPool:
    """`fresh`: the rotation of the "every token new" workload; `cycled`: the 1,000 tokens of
    the "cycled" workload. The two never share a token, so a cycled run cannot leave tokens in
    a cache that a following "every token new" run would then hit."""

    key: SigningKey
    fresh: list[str]
    cycled: list[str]
    fresh_path: Path
    cycled_path: Path
    minted: int  # tokens minted by this run (0: all read from disk)
    mint_seconds: float


def load_or_mint_pool(key: SigningKey, fresh: int, cycled: int, tokens_dir: Path) -> TokenPool:
    tokens_dir.mkdir(parents=True, exist_ok=True)
    store = tokens_dir / f"{key.kid}.json"
    need = fresh + cycled
    now = int(time.time())
    tokens: list[str] = []
    minted, t0 = 0, time.monotonic()
    if store.exists():
        saved = json.loads(store.read_text())
        if saved.get("exp", 0) - now >= MIN_VALIDITY_S and len(saved.get("tokens", [])) >= need:
            tokens = saved["tokens"][:need]
    if not tokens:
        tokens = [mint(key, f"user-{i:05d}", now) for i in range(need)]
        minted = need
        store.write_text(json.dumps({"kid": key.kid, "alg": key.alg, "iat": now, "exp": now + LIFETIME_S,
                                     "tokens": tokens}) + "\n")
    assert len(set(tokens)) == need
    fresh_path, cycled_path = tokens_dir / f"{key.kid}.fresh.txt", tokens_dir / f"{key.kid}.cycled.txt"
    fresh_path.write_text("\n".join(tokens[:fresh]) + "\n")
    cycled_path.write_text("\n".join(tokens[fresh:]) + "\n")
    return TokenPool(key, tokens[:fresh], tokens[fresh:], fresh_path, cycled_path,
                     minted, time.monotonic() - t0)


@dataclass
class CheckTokens:
    """Tokens for the answer checks made before measuring, minted for this run."""

    forged: str  # right kid, another key
    no_role: str  # valid, roles ["user"]: the policy listeners answer 403


def check_tokens(key: SigningKey) -> CheckTokens:
    now = int(time.time())
    return CheckTokens(
        forged=mint(key, "mallory", now, signer=rogue_key(key)),
        no_role=mint(key, "bob", now, roles=["user"]),
    )
