"""Seeds and dictionary of the `dpop_proof` fuzz target (fuzz/fuzz_targets/dpop_proof.rs), for
fuzz/seeds.py. Standard library only and deterministic: a proof the harness signs is written as
`@header`/`@claims` directives; the raw ones (a whole `dpop` line, signature and all) are signed
here with the harness's Ed25519 key (seed 32 × 0x24, fuzz/src/lib.rs) by the RFC 8032 §6
reference algorithm below, so the fuzzer also starts from valid proofs it mutates byte by byte.
The cases follow docs/configuration.md's DPoP section (issue #18): one valid proof per way to
be valid, then one fault at a time, in the order jwt-guard checks them.
"""

from __future__ import annotations

import base64
import hashlib
import json

# --------------------------------------------------------------------------- Ed25519 (RFC 8032 §6)

_P = 2**255 - 19
_Q = 2**252 + 27742317777372353535851937790883648493
_D = -121665 * pow(121666, _P - 2, _P) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)


def _add(a: tuple, b: tuple) -> tuple:
    x = (a[1] - a[0]) * (b[1] - b[0]) % _P
    y = (a[1] + a[0]) * (b[1] + b[0]) % _P
    c = 2 * a[3] * b[3] * _D % _P
    d = 2 * a[2] * b[2] % _P
    e, f, g, h = y - x, d - c, d + c, y + x
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _mul(s: int, point: tuple) -> tuple:
    out = (0, 1, 1, 0)
    while s > 0:
        if s & 1:
            out = _add(out, point)
        point = _add(point, point)
        s >>= 1
    return out


def _recover_x(y: int, sign: int) -> int:
    x2 = (y * y - 1) * pow(_D * y * y + 1, _P - 2, _P)
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P != 0:
        x = x * _SQRT_M1 % _P
    return _P - x if (x & 1) != sign else x


_GY = 4 * pow(5, _P - 2, _P) % _P
_GX = _recover_x(_GY, 0)
_G = (_GX, _GY, 1, _GX * _GY % _P)


def _compress(point: tuple) -> bytes:
    zinv = pow(point[2], _P - 2, _P)
    x, y = point[0] * zinv % _P, point[1] * zinv % _P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def _expand(seed: bytes) -> tuple[int, bytes]:
    h = hashlib.sha512(seed).digest()
    a = int.from_bytes(h[:32], "little")
    a &= (1 << 254) - 8
    a |= 1 << 254
    return a, h[32:]


def ed25519_public(seed: bytes) -> bytes:
    return _compress(_mul(_expand(seed)[0], _G))


def ed25519_sign(seed: bytes, message: bytes) -> bytes:
    a, prefix = _expand(seed)
    public = _compress(_mul(a, _G))
    r = int.from_bytes(hashlib.sha512(prefix + message).digest(), "little") % _Q
    big_r = _compress(_mul(r, _G))
    k = int.from_bytes(hashlib.sha512(big_r + public + message).digest(), "little") % _Q
    return big_r + ((r + k * a) % _Q).to_bytes(32, "little")


# --------------------------------------------------------------------------- seeds

HARNESS_SEED = bytes([0x24] * 32)
TOKEN = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln"  # the target's default access token
HTU = "https://api.example.com/orders"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


def raw_eddsa_proof(now: int, **claims: object) -> str:
    """A whole proof by the harness's Ed25519 key, its `jwk` in the header."""
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": _b64(ed25519_public(HARNESS_SEED))}
    header = {"typ": "dpop+jwt", "alg": "EdDSA", "jwk": jwk}
    body = {"jti": "raw-1", "htm": "GET", "htu": HTU, "iat": now,
            "ath": _b64(hashlib.sha256(TOKEN.encode()).digest()), **claims}
    signing_input = f"{_b64(_compact(header).encode())}.{_b64(_compact(body).encode())}"
    return f"{signing_input}.{_b64(ed25519_sign(HARNESS_SEED, signing_input.encode()))}"


ES_HEADER = '{"typ":"dpop+jwt","alg":"ES256","jwk":$jwk}'
CLAIMS = {"jti": "j1", "htm": "GET", "htu": HTU, "iat": "$now", "ath": "$ath"}


def _claims(**change: object) -> str:
    """The claims JSON with `$now…` and `$ath` left for the target; None drops a claim."""
    claims = {k: v for k, v in {**CLAIMS, **change}.items() if v is not None}
    text = _compact(claims)
    for word in ("$now", "$now-301", "$now+61", "$now-300", "$now+60"):
        text = text.replace(f'"{word}"', word)
    return text


def _signed(claims: str | None = None, header: str = ES_HEADER, extra: str = "") -> bytes:
    return f"@header {header}\n@claims {claims or _claims()}\n{extra}".encode()


def dpop_seeds(now: int) -> dict[str, bytes]:
    bound = "@jkt $es256\n"
    seeds: dict[str, bytes] = {
        # Valid, each its own way.
        "valid-es256": _signed(extra=bound),
        "valid-eddsa": _signed(header='{"typ":"dpop+jwt","alg":"EdDSA","jwk":$jwk}',
                               extra="@key eddsa\n@jkt $eddsa\n"),
        "valid-nonce": _signed(_claims(nonce="$nonce"), extra=bound + "@nonce\n"),
        "valid-oldest": _signed(_claims(iat="$now-300"), extra=bound),
        "valid-skew": _signed(_claims(iat="$now+60"), extra=bound),
        "valid-htu-query-and-case": _signed(_claims(htu="HTTPS://API.Example.com:443/orders?x=1#f"), extra=bound),
        "valid-http-port": _signed(_claims(htu="http://api.example.com/orders"),
                                   extra=bound + ":scheme: http\n:authority: api.example.com:80\n"),
        "valid-post": _signed(_claims(htm="POST"), extra=bound + ":method: POST\n"),
        "valid-other-token": _signed(extra=bound + "@token eyJhbGciOiJSUzI1NiJ9.e30.c2ln\n"),
        "raw-eddsa": f"@jkt $eddsa\ndpop: {raw_eddsa_proof(now)}\n".encode(),
        "raw-eddsa-spaces": f"@jkt $eddsa\ndpop:   {raw_eddsa_proof(now)} \n".encode(),
        # One fault at a time.
        "no-proof": b"@jkt $es256\n",
        "two-lines": _signed(extra=bound + "dpop: $P\ndpop: $P\n"),
        "comma-list": _signed(extra=bound + "dpop: $P, $P\n"),
        "typ-jwt": _signed(header='{"typ":"jwt","alg":"ES256","jwk":$jwk}', extra=bound),
        "typ-upper": _signed(header='{"typ":"DPOP+JWT","alg":"ES256","jwk":$jwk}', extra=bound),
        "crit": _signed(header='{"typ":"dpop+jwt","alg":"ES256","crit":["exp"],"jwk":$jwk}', extra=bound),
        "alg-none": _signed(header='{"typ":"dpop+jwt","alg":"none","jwk":$jwk}', extra=bound),
        "alg-hs256-oct": _signed(header='{"typ":"dpop+jwt","alg":"HS256","jwk":{"kty":"oct","k":"MDAw"}}',
                                 extra="@jkt x\n"),
        "alg-kty-mismatch": _signed(header='{"typ":"dpop+jwt","alg":"EdDSA","jwk":$jwk}', extra=bound),
        "jwk-private": _signed(header='{"typ":"dpop+jwt","alg":"ES256","jwk":{"kty":"EC","crv":"P-256",'
                                      '"x":"x","y":"y","d":"d"}}', extra=bound),
        "no-jwk": _signed(header='{"typ":"dpop+jwt","alg":"ES256"}', extra=bound),
        "tampered": _signed(extra=bound + "@tamper\n"),
        "no-jti": _signed(_claims(jti=None), extra=bound),
        "jti-long": _signed(_claims(jti="j" * 257), extra=bound),
        "iat-string": _signed(_claims(iat="1800000000"), extra=bound),
        "wrong-htm": _signed(_claims(htm="get"), extra=bound),
        "wrong-htu-path": _signed(_claims(htu="https://api.example.com/Orders"), extra=bound),
        "wrong-htu-host": _signed(_claims(htu="https://api.example.com.evil/orders"), extra=bound),
        "htu-userinfo": _signed(_claims(htu="https://user@api.example.com/orders"), extra=bound),
        "no-ath": _signed(_claims(ath=None), extra=bound),
        "expired": _signed(_claims(iat="$now-301"), extra=bound),
        "future": _signed(_claims(iat="$now+61"), extra=bound),
        "later-expired": _signed(extra=bound + "@later 301\n"),
        "nonce-missing": _signed(extra=bound + "@nonce\n"),
        "nonce-wrong": _signed(_claims(nonce="not-a-nonce"), extra=bound + "@nonce\n"),
        "jkt-other-key": _signed(extra="@jkt $eddsa\n"),
        "unbound": _signed(),
        "raw-garbage": b"@jkt $es256\ndpop: eyJ.eyJ.\n",
    }
    return seeds


DICT = ['"typ"', '"alg"', '"jwk"', '"crit"', '"jti"', '"htm"', '"htu"', '"iat"', '"ath"', '"nonce"', '"kty"',
        '"crv"', '"x"', '"y"', '"d"', '"k"', '"dpop+jwt"', '"ES256"', '"EdDSA"', '"RS256"', '"HS256"', '"none"',
        '"EC"', '"OKP"', '"P-256"', '"Ed25519"', "$jwk", "$ath", "$nonce", "$now", "$now+", "$now-", "$P",
        "$es256", "$eddsa", "@header ", "@claims ", "@key eddsa", "@tamper", "@token ", "@jkt ", "@nonce",
        "@later ", "\n", "dpop: ", ":method: ", ":scheme: ", ":authority: ", ":path: ", "https://", "http://",
        ":443", ":80", "?", "#", ",", ".", "eyJ", "null", "1e9", "-0", "0.5", "{}", "[]"]
