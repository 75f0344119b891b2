"""Keys and tokens for the integration tests, made with PyJWT + cryptography: an implementation
independent of the filter's own Rust code. Keys are generated once per test session."""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, HMACAlgorithm, OKPAlgorithm, RSAAlgorithm

ISSUER = "https://idp.example.com"
AUDIENCE = "orders"

RSA_ALGS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"]
HMAC_ALGS = ["HS256", "HS384", "HS512"]
ALL_ALGS = RSA_ALGS + ["ES256", "ES384", "EdDSA"] + HMAC_ALGS


def b64url(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_json(obj: Any) -> str:
    return b64url(json.dumps(obj, separators=(",", ":")))


@dataclass
class SigningKey:
    kid: str
    alg: str
    private: Any  # what jwt.encode takes
    jwk: dict  # public JWK (secret for oct)


def _public_jwk(alg: str, key: Any) -> dict:
    if alg in RSA_ALGS:
        d = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    elif alg in ("ES256", "ES384"):
        d = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    elif alg == "EdDSA":
        d = OKPAlgorithm.to_jwk(key.public_key(), as_dict=True)
    elif alg in HMAC_ALGS:
        d = HMACAlgorithm.to_jwk(key, as_dict=True)
    else:
        raise ValueError(alg)
    d = {k: v for k, v in d.items() if k not in ("key_ops",)}
    return d


class KeySet:
    """One signing key per algorithm (kid = "k-<alg>"), plus extra keys for negative tests."""

    def __init__(self) -> None:
        rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        p256 = ec.generate_private_key(ec.SECP256R1())
        p384 = ec.generate_private_key(ec.SECP384R1())
        ed = ed25519.Ed25519PrivateKey.generate()
        self.keys: dict[str, SigningKey] = {}
        for alg in ALL_ALGS:
            if alg in RSA_ALGS:
                priv: Any = rsa_key
            elif alg == "ES256":
                priv = p256
            elif alg == "ES384":
                priv = p384
            elif alg == "EdDSA":
                priv = ed
            else:
                # distinct secrets per HMAC alg, long enough for each hash
                priv = (alg.encode() + b"-secret-" * 16)[:64]
            jwk = _public_jwk(alg, priv)
            kid = f"k-{alg}"
            jwk.update({"kid": kid, "alg": alg, "use": "sig"})
            self.keys[alg] = SigningKey(kid, alg, priv, jwk)
        # A key that is NOT in any JWKS, for bad_signature (same kid, other key) tests.
        self.rogue_p256 = ec.generate_private_key(ec.SECP256R1())

    def jwks(self, algs: list[str] | None = None) -> dict:
        return {"keys": [self.keys[a].jwk for a in (algs or ALL_ALGS)]}

    def claims(self, **overrides: Any) -> dict:
        now = int(time.time())
        return with_overrides({"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 300},
                              overrides)

    def mint(self, alg: str = "ES256", *, kid: str | None | object = ..., key: Any = None,
             headers: dict | None = None, **claims: Any) -> str:
        """Sign `claims` (defaults from .claims()) with the key of `alg`. kid=None omits the kid;
        key= overrides the signing key (for bad signatures)."""
        sk = self.keys[alg]
        hdr = dict(headers or {})
        if kid is ...:
            hdr["kid"] = sk.kid
        elif kid is not None:
            hdr["kid"] = kid
        payload = self.claims(**claims)
        return jwt.encode(payload, key if key is not None else sk.private, algorithm=alg, headers=hdr)


def with_overrides(base: dict, overrides: dict) -> dict:
    """`base` with members added or replaced; a member set to DROP is removed."""
    out = dict(base)
    for k, v in overrides.items():
        if v is DROP:
            out.pop(k, None)
        else:
            out[k] = v
    return out


class _Drop:
    def __repr__(self) -> str:
        return "DROP"


DROP: Any = _Drop()


def unsigned(header: dict, claims: dict, signature: bytes = b"sig") -> str:
    """A compact JWS built by hand (for alg none, crit, bad claim types...)."""
    return f"{b64url_json(header)}.{b64url_json(claims)}.{b64url(signature) if signature else ''}"


def resign_with(token: str, keyset: KeySet, alg: str, header: dict | None = None,
                claims_raw: bytes | None = None) -> str:
    """Build a token whose header/claims JSON are given raw, correctly signed with `alg`'s key."""
    sk = keyset.keys[alg]
    h = b64url_json(header) if header is not None else token.split(".")[0]
    c = b64url(claims_raw) if claims_raw is not None else token.split(".")[1]
    signing_input = f"{h}.{c}".encode()
    algo = jwt.get_algorithm_by_name(alg)
    prepared = algo.prepare_key(sk.private)
    sig = algo.sign(signing_input, prepared)
    return f"{h}.{c}.{b64url(sig)}"


def json_members(members: list[tuple[str, Any]] | dict) -> bytes:
    """A JSON object written member by member, so a name may appear twice (which a dict, and so
    json.dumps, cannot express). Values are JSON-encoded with json.dumps."""
    items = members.items() if isinstance(members, dict) else members
    return ("{" + ",".join(f"{json.dumps(k)}:{json.dumps(v, separators=(',', ':'))}" for k, v in items)
            + "}").encode()


def sign_raw(header_raw: bytes, claims_raw: bytes, key: Any, alg: str) -> str:
    """A compact JWS over header and claims given as raw JSON bytes (duplicates, escapes, odd
    spacing survive as written), signed by PyJWT's implementation of `alg` with `key` (a
    private key of any KeySet or one made by the test)."""
    signing_input = f"{b64url(header_raw)}.{b64url(claims_raw)}"
    algo = jwt.get_algorithm_by_name(alg)
    sig = algo.sign(signing_input.encode(), algo.prepare_key(key))
    return f"{signing_input}.{b64url(sig)}"
