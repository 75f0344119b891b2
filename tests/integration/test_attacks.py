"""Attack corpus (issue #6 item 2): known JWT attacks and parser-differential tricks, one table,
every case sent through real Envoy with the built jwt_guard.wasm. Each refused case asserts the
exact 401/403 status, reason, body and challenge and that the upstream saw nothing; each
accepted case asserts the upstream saw the request and that the token was removed.

Every token is minted by PyJWT/cryptography (tokens.py), never by the Rust code under test.
Hand-built tokens sign raw header/claims bytes, so duplicates, escapes and non-canonical
encodings are signed *as sent*: only the rule under test can refuse them.

Cases by RFC 8725 (JWT Best Current Practices) section:
  §2.1  alg "none" in any spelling, with and without signature            -> alg-none-*
  §2.2  weak crypto inputs: DER/zero/out-of-range ECDSA, EdDSA S+L,
        RSA signature of the wrong length, high-S ECDSA                   -> sig-*
  §2.3  RS256 -> HS256 confusion (PEM, DER, PKCS#1, n, JWK as secret)      -> hs-confusion-*
  §3.1  algorithm verification: alg must equal the key's (from the JWK)   -> alg-*
  §3.2  only appropriate algorithms: ES256 variants, numbers, missing     -> alg-*
  §3.3  validate all crypto ops: crit/b64/enc (JWE), 5 parts, stripped
        signature, other key with the same kid                           -> header-*, parts-*, sig-*
  §3.4  validate cryptographic inputs: strict base64url (padding, +/,
        white space, trailing bits), strict JSON (RFC 8259: one object,
        UTF-8, no duplicate member names), claim types, nesting depth,
        size bound                                        -> b64-*, json-*, dup-*, claim-*, nest-*, size-*
  §3.8  issuer and subject: other issuer, one issuer behind two providers -> cross-*, shared-*
  §3.9  audience: other audience, another provider's key for my audience -> cross-*, shared-*
  §3.10 kid/jku/x5u/x5c/jwk never choose or fetch a key; kid is only a
        lookup name (injection strings), kid-less search is bounded       -> kid-*, keyhdr-*, kidless-*
  §3.11 explicit typing: typ at+jwt accepted, typ not a string refused    -> typ-*

Replay of a valid token is out of scope for a stateless verifier (no jti store): the `replay`
case pins that the same token is accepted twice. DPoP proofs (RFC 9449), whose jti is stored,
have their own corpus in test_attacks_dpop.py.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import quote

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID
from jwt.algorithms import ECAlgorithm

from conftest import expect_401, expect_403, expect_upstream, start_stack
from harness import EchoUpstream, listener, wasm_filter
from tokens import AUDIENCE, DROP, ISSUER, KeySet, b64url, json_members, sign_raw, unsigned, with_overrides

FOUR_ISSUER = "https://four.example.com"
SINGLE_ISSUER = "https://single.example.com"
SHARED_ISSUER = "https://shared.example.com"
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
ED25519_L = 2**252 + 27742317777372353535851937790883648493


# --------------------------------------------------------------------------- the world


@dataclass
class World:
    """Session keys (KeySet) plus the keys only this module uses, and the attacker's key server."""

    keys: KeySet
    key_server: EchoUpstream  # jku/x5u point here; it must never be asked anything
    attacker: Any = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    four: list = field(default_factory=lambda: [ec.generate_private_key(ec.SECP256R1()) for _ in range(4)])
    single: Any = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    ka: Any = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    kb: Any = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.key_server.port}"

    def attacker_jwk(self) -> dict:
        return dict(ECAlgorithm.to_jwk(self.attacker.public_key(), as_dict=True), kid="k-ES256", use="sig")

    def attacker_x5c(self) -> list[str]:
        """A self-made chain [leaf (attacker's key), CA], standard base64 DER as RFC 7515 §4.1.6 says."""
        ca_key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)

        def cert(subject: str, issuer: str, public: Any, signer: Any, ca: bool) -> bytes:
            c = (x509.CertificateBuilder()
                 .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                 .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
                 .public_key(public).serial_number(x509.random_serial_number())
                 .not_valid_before(now - datetime.timedelta(days=1))
                 .not_valid_after(now + datetime.timedelta(days=30))
                 .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
                 .sign(signer, hashes.SHA256()))
            return c.public_bytes(serialization.Encoding.DER)

        leaf = cert("idp.example.com", "Totally Legit CA", self.attacker.public_key(), ca_key, False)
        root = cert("Totally Legit CA", "Totally Legit CA", ca_key.public_key(), ca_key, True)
        return [base64.b64encode(leaf).decode(), base64.b64encode(root).decode()]


def ec_jwk(private: Any, kid: str | None) -> dict:
    jwk = ECAlgorithm.to_jwk(private.public_key(), as_dict=True)
    if kid is not None:
        jwk.update(kid=kid, alg="ES256", use="sig")
    return jwk  # without kid: no alg either, ES256 comes from the curve


def attack_config(w: World) -> dict:
    return {
        "realm": "api",
        "roles_claim": "realm_access.roles",
        "providers": {
            # No HMAC key, no max lifetime; header, query and cookie locations.
            "main": {
                "issuer": ISSUER,
                "audiences": [AUDIENCE],
                "jwks": w.keys.jwks(["ES256", "ES384", "RS256", "EdDSA"]),
                "from_params": ["access_token"],
                "from_cookies": ["session"],
            },
            "four": {"issuer": FOUR_ISSUER, "audiences": [AUDIENCE],
                     "jwks": {"keys": [ec_jwk(k, f"t{i + 1}") for i, k in enumerate(w.four)]}},
            "single": {"issuer": SINGLE_ISSUER, "audiences": [AUDIENCE],
                       "jwks": {"keys": [ec_jwk(w.single, None)]}},
            # One issuer behind two providers with other audiences and keys.
            "a": {"issuer": SHARED_ISSUER, "audiences": ["a"], "jwks": {"keys": [ec_jwk(w.ka, "ka")]}},
            "b": {"issuer": SHARED_ISSUER, "audiences": ["b"], "jwks": {"keys": [ec_jwk(w.kb, "kb")]}},
        },
        "rules": [
            {"match": {"prefix": "/main"}, "provider": "main"},
            {"match": {"prefix": "/admin"}, "provider": "main", "roles": {"any": ["admin"]}},
            {"match": {"prefix": "/four"}, "provider": "four"},
            {"match": {"prefix": "/single"}, "provider": "single"},
            {"match": {"prefix": "/shared"}, "providers": ["a", "b"]},
        ],
    }


@pytest.fixture(scope="module")
def world(keys):
    server = EchoUpstream().start()
    yield World(keys, server)
    server.stop()


# Every case under each signature backend, with the verified-token cache on and off: the
# answers must not depend on who checks the signature or on whether the token was seen before.
VARIANTS = {
    "host+cache": {},
    "host+nocache": {"token_cache_size": 0},
    "rust+cache": {"signature_backend": "pure_rust"},
    "rust+nocache": {"signature_backend": "pure_rust", "token_cache_size": 0},
}


@pytest.fixture(scope="module", params=list(VARIANTS))
def stack(request, upstream, world, wasm):
    cfg = dict(attack_config(world), **VARIANTS[request.param])
    return start_stack(request, upstream, f"attacks-{request.param}", [listener("attacks", 0, [wasm_filter(cfg)])])


# --------------------------------------------------------------------------- token helpers


def hdr(w: World, of: str = "ES256", **extra: Any) -> dict:
    """The usual header for the session key of algorithm `of`; extra members added or replaced
    (`alg` too), DROP removes one."""
    return with_overrides({"alg": of, "kid": w.keys.keys[of].kid, "typ": "JWT"}, extra)


def raw(x: dict | list | bytes) -> bytes:
    return x if isinstance(x, bytes) else json_members(x)


def sign(w: World, header: dict | list | bytes, claims: dict | list | bytes, *, alg: str = "ES256",
         key: Any = None) -> str:
    """Header and claims as given (dict, member list with duplicates, or raw bytes), signed with
    `alg` by `key` (default: the session key of `alg`)."""
    return sign_raw(raw(header), raw(claims), key if key is not None else w.keys.keys[alg].private, alg)


def sign_input(w: World, signing_input: str, alg: str = "ES256", key: Any = None) -> str:
    """Signs the exact text of `signing_input` (non-canonical encodings included)."""
    algo = jwt.get_algorithm_by_name(alg)
    sig = algo.sign(signing_input.encode(), algo.prepare_key(key if key is not None else w.keys.keys[alg].private))
    return f"{signing_input}.{b64url(sig)}"


def valid(w: World, **claims: Any) -> str:
    return sign(w, hdr(w), w.keys.claims(**claims))


def parts(token: str) -> list[str]:
    return token.split(".")


def unb64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def with_sig(token: str, sig: bytes) -> str:
    h, p, _ = parts(token)
    return f"{h}.{p}.{b64url(sig)}"


def hs256(w: World, secret: bytes, kid: str | None) -> str:
    """HS256 over the usual claims with `secret` as the HMAC key (PyJWT refuses PEM secrets, so
    the MAC is computed with hmac directly)."""
    header = {"alg": "HS256", "typ": "JWT"} | ({"kid": kid} if kid else {})
    signing_input = f"{b64url(json_members(header))}.{b64url(json_members(w.keys.claims()))}"
    return f"{signing_input}.{b64url(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())}"


def rsa_public(w: World, fmt: str) -> bytes:
    pub = w.keys.keys["RS256"].private.public_key()
    if fmt == "pem":
        return pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    if fmt == "der":
        return pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if fmt == "pkcs1":
        return pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
    if fmt == "n":
        return unb64(w.keys.keys["RS256"].jwk["n"])
    if fmt == "jwk":
        return json.dumps(w.keys.keys["RS256"].jwk).encode()
    raise ValueError(fmt)


def es256_rs(token: str) -> tuple[int, int]:
    sig = unb64(parts(token)[2])
    return int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")


def rs_bytes(r: int, s: int) -> bytes:
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def tweak_rs(w: World, change: Callable[[int, int], tuple[int, int]]) -> str:
    """A valid ES256 token whose (r, s) are replaced by change(r, s), encoded as r || s."""
    token = valid(w)
    return with_sig(token, rs_bytes(*change(*es256_rs(token))))


def high_s(w: World) -> str:
    """A valid ES256 token with low s whose signature is replaced by (r, n - s), its high-S twin."""
    while True:
        token = valid(w)
        r, s = es256_rs(token)
        if s <= P256_N // 2:
            return with_sig(token, rs_bytes(r, P256_N - s))


def der_signature(w: World) -> str:
    """ES256 over the usual signing input, but DER-encoded (what OpenSSL returns) instead of r||s."""
    signing_input = ".".join(parts(valid(w))[:2])
    der = w.keys.keys["ES256"].private.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
    decode_dss_signature(der)  # it is DER
    return f"{signing_input}.{b64url(der)}"


def eddsa_s_plus_l(w: World) -> str:
    token = sign(w, hdr(w, "EdDSA"), w.keys.claims(), alg="EdDSA")
    sig = unb64(parts(token)[2])
    s = int.from_bytes(sig[32:], "little") + ED25519_L
    return with_sig(token, sig[:32] + s.to_bytes(32, "little"))


def rsa_leading_zero(w: World) -> str:
    token = sign(w, hdr(w, "RS256"), w.keys.claims(), alg="RS256")
    return with_sig(token, b"\x00" + unb64(parts(token)[2]))


URLSAFE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def stray_bits(part: str) -> str:
    """The same bytes with the unused low bits of the last character set (non-canonical)."""
    assert len(part) % 4 in (2, 3), part
    return part[:-1] + URLSAFE[URLSAFE.index(part[-1]) | 1]


def claims_b64_of_len_mod(w: World, mods: tuple[int, ...], **extra: Any) -> str:
    """base64url of the usual claims (padded with a `pad` claim) whose length mod 4 is in `mods`."""
    for n in range(8):
        enc = b64url(json_members(w.keys.claims(pad="p" * n, **extra)))
        if len(enc) % 4 in mods:
            return enc
    raise AssertionError("unreachable")


def noncanonical_payload(w: World) -> str:
    h = b64url(json_members(hdr(w)))
    return sign_input(w, f"{h}.{stray_bits(claims_b64_of_len_mod(w, (2, 3)))}")


def noncanonical_signature(w: World) -> str:
    h, p, s = parts(valid(w))
    return f"{h}.{p}.{stray_bits(s)}"  # 64 bytes -> 86 chars: 4 unused bits


def padded_payload(w: World) -> str:
    h = b64url(json_members(hdr(w)))
    p = claims_b64_of_len_mod(w, (2, 3))
    return sign_input(w, f"{h}.{p}{'=' * (-len(p) % 4)}")


def std_alphabet(w: World) -> str:
    """Payload in the standard alphabet (with + or /), signed over exactly that text."""
    h = b64url(json_members(hdr(w)))
    for n in range(64):
        p = base64.b64encode(json_members(w.keys.claims(note="?>" * n + "~"))).decode().rstrip("=")
        if "+" in p or "/" in p:
            return sign_input(w, f"{h}.{p}")
    raise AssertionError("no + or / produced")


def inside(w: World, char: str) -> str:
    """`char` inserted in the middle of the payload, signed over exactly that text."""
    h = b64url(json_members(hdr(w)))
    p = b64url(json_members(w.keys.claims()))
    return sign_input(w, f"{h}.{p[:20]}{char}{p[20:]}")


def nested(depth: int) -> Any:
    v: Any = "bottom"
    for _ in range(depth):
        v = {"d": v}
    return v


def of_length(w: World, total: int) -> str:
    """A valid ES256 token exactly `total` bytes long (pad claim; header varied when the
    base64 length arithmetic makes one header impossible)."""
    for header in (hdr(w), hdr(w, typ=DROP), hdr(w, typ="at+jwt")):
        for n in range(total):
            t = sign(w, header, w.keys.claims(pad="x" * n))
            if len(t) == total:
                return t
            if len(t) > total:
                break
    raise AssertionError(f"no token of length {total}")


def attacker_signed(w: World, members: dict, with_kid: bool) -> str:
    """Signed with the attacker's own P-256 key, header carrying `members` (jwk/jku/x5u/x5c)
    and the legitimate kid k-ES256 or no kid at all."""
    return sign(w, hdr(w, **members, **({} if with_kid else {"kid": DROP})), w.keys.claims(), key=w.attacker)


def shared(w: World, key: Any, kid: str | None, aud: str) -> str:
    h = {"alg": "ES256", "typ": "JWT"} | ({"kid": kid} if kid else {})
    return sign(w, h, w.keys.claims(iss=SHARED_ISSUER, aud=aud), key=key)


def other_token(w: World) -> str:
    return valid(w, sub="bob")


# --------------------------------------------------------------------------- the table


@dataclass
class Req:
    """Where the token goes. Default: `Authorization: Bearer <token>` on /main/x."""

    token: str | None = None
    cookie: str | None = None  # Cookie: session=<cookie>
    query: str | None = None  # ?access_token=<query>, already URL-encoded
    path: str = "/main/x"
    repeat: int = 1


OK = "ok"
C = Callable[[World], "Req | str"]

CASES: list[tuple[str, str, C]] = [
    # ---- §2.1 alg none, every spelling, with and without a signature
    *[(f"alg-{a}-{sig_name}", "unsupported_algorithm",
       (lambda a, s: lambda w: unsigned({"alg": a, "typ": "JWT"}, w.keys.claims(), s))(a, s))
      for a in ("none", "None", "NONE", "nOnE") for sig_name, s in (("sig", b"sig"), ("empty-sig", b""))],
    ("alg-none-with-kid", "unsupported_algorithm",
     lambda w: unsigned({"alg": "none", "kid": "k-ES256"}, w.keys.claims(), b"")),
    ("alg-none-valid-es256-signature", "unsupported_algorithm",
     lambda w: (lambda _, p, s: f"{b64url(json_members({'alg': 'none', 'kid': 'k-ES256'}))}.{p}.{s}")(
         *parts(valid(w)))),
    # ---- §3.1/§3.2 alg spellings and types (all correctly signed with the ES256 key)
    ("alg-trailing-space", "unsupported_algorithm", lambda w: sign(w, hdr(w, alg="ES256 "), w.keys.claims())),
    ("alg-leading-space", "unsupported_algorithm", lambda w: sign(w, hdr(w, alg=" ES256"), w.keys.claims())),
    ("alg-lowercase", "unsupported_algorithm", lambda w: sign(w, hdr(w, alg="es256"), w.keys.claims())),
    ("alg-empty-string", "unsupported_algorithm", lambda w: sign(w, hdr(w, alg=""), w.keys.claims())),
    ("alg-number", "malformed", lambda w: sign(w, hdr(w, alg=256), w.keys.claims())),
    ("alg-null", "malformed", lambda w: sign(w, hdr(w, alg=None), w.keys.claims())),
    ("alg-array", "malformed", lambda w: sign(w, hdr(w, alg=["ES256"]), w.keys.claims())),
    ("alg-missing", "malformed", lambda w: sign(w, hdr(w, alg=DROP), w.keys.claims())),
    ("alg-json-escape-is-es256", OK,
     lambda w: sign(w, b'{"alg":"\\u0045S256","kid":"k-ES256","typ":"JWT"}', w.keys.claims())),
    ("alg-es384-with-es256-kid", "unsupported_algorithm",
     lambda w: sign(w, hdr(w, "ES384", kid="k-ES256"), w.keys.claims(), alg="ES384")),
    ("alg-ps256-with-rs256-kid", "unsupported_algorithm",
     lambda w: sign(w, hdr(w, "PS256", kid="k-RS256"), w.keys.claims(), alg="PS256")),
    ("alg-rs256-with-es256-kid", "unsupported_algorithm",
     lambda w: sign(w, hdr(w, "RS256", kid="k-ES256"), w.keys.claims(), alg="RS256")),
    ("alg-eddsa-no-kid-eddsa-key-ok", OK,
     lambda w: sign(w, hdr(w, "EdDSA", kid=DROP), w.keys.claims(), alg="EdDSA")),
    # ---- §2.3 RS256 -> HS256 confusion: the RSA public key as HMAC secret
    *[(f"hs-confusion-{fmt}-rs256-kid", "unsupported_algorithm",
       (lambda fmt: lambda w: hs256(w, rsa_public(w, fmt), "k-RS256"))(fmt))
      for fmt in ("pem", "der", "pkcs1", "n", "jwk")],
    *[(f"hs-confusion-{fmt}-no-kid", "unknown_key",
       (lambda fmt: lambda w: hs256(w, rsa_public(w, fmt), None))(fmt))
      for fmt in ("pem", "der", "n")],
    ("hs-confusion-ec-point-es256-kid", "unsupported_algorithm",
     lambda w: hs256(w, w.keys.keys["ES256"].private.public_key().public_bytes(
         serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint), "k-ES256")),
    # ---- §3.10 kid is a lookup name only
    *[(f"kid-{name}", "unknown_key", (lambda kid: lambda w: sign(w, hdr(w, kid=kid), w.keys.claims()))(kid))
      for name, kid in (
          ("path-traversal", "../../../../dev/null"),
          ("path-traversal-to-key", "../../../../../work/envoy/k-ES256"),
          ("sql", "' OR '1'='1"),
          ("sql-union", "x' UNION SELECT 'k-ES256' --"),
          ("command", "k-ES256; curl http://127.0.0.1:9/ #"),
          ("command-subst", "$(cat /etc/passwd)`id`|nc 127.0.0.1 9"),
          ("nul-byte", "a\u0000b"),
          ("real-kid-then-nul", "k-ES256\u0000x"),
          ("case-variant", "K-ES256"),
          ("trailing-space", "k-ES256 "),
          ("empty", ""),
          ("4kb", "k" * 4096),
      )],
    ("kid-10kb-too-large", "too_large", lambda w: sign(w, hdr(w, kid="k" * 10240), w.keys.claims())),
    ("kid-number", "malformed", lambda w: sign(w, hdr(w, kid=1), w.keys.claims())),
    ("kid-null", "malformed", lambda w: sign(w, hdr(w, kid=None), w.keys.claims())),
    # A key without kid is a candidate for any token (as in jwt_authn): the token's kid names none.
    ("kid-on-provider-whose-key-has-no-kid", OK,
     lambda w: Req(sign(w, {"alg": "ES256", "kid": "x"}, w.keys.claims(iss=SINGLE_ISSUER), key=w.single),
                   path="/single/x")),
    ("kid-on-provider-whose-key-has-no-kid-attacker", "bad_signature",
     lambda w: Req(sign(w, {"alg": "ES256", "kid": "x"}, w.keys.claims(iss=SINGLE_ISSUER), key=w.attacker),
                   path="/single/x")),
    # ---- §3.10 key-supplying headers never supply the key (attacker-signed)
    *[(f"keyhdr-{name}-attacker-{'kid' if with_kid else 'no-kid'}", "bad_signature",
       (lambda build, with_kid: lambda w: attacker_signed(w, build(w), with_kid))(build, with_kid))
      for name, build in (
          ("jwk", lambda w: {"jwk": w.attacker_jwk()}),
          ("jku", lambda w: {"jku": f"{w.url}/jwks.json"}),
          ("x5u", lambda w: {"x5u": f"{w.url}/cert.pem"}),
          ("x5c", lambda w: {"x5c": w.attacker_x5c()}),
          ("all-four", lambda w: {"jwk": w.attacker_jwk(), "jku": f"{w.url}/jwks.json",
                                  "x5u": f"{w.url}/cert.pem", "x5c": w.attacker_x5c()}),
      ) for with_kid in (True, False)],
    # ... and their mere presence on a correctly signed token is no reason to refuse it
    ("keyhdr-jwk-on-valid-token", OK, lambda w: sign(w, hdr(w, jwk=w.attacker_jwk()), w.keys.claims())),
    ("keyhdr-jku-on-valid-token", OK, lambda w: sign(w, hdr(w, jku=f"{w.url}/jwks.json"), w.keys.claims())),
    ("keyhdr-x5u-on-valid-token", OK, lambda w: sign(w, hdr(w, x5u=f"{w.url}/cert.pem"), w.keys.claims())),
    ("keyhdr-x5c-on-valid-token", OK, lambda w: sign(w, hdr(w, x5c=w.attacker_x5c()), w.keys.claims())),
    # ---- §3.3/§3.4 structure
    ("parts-jwe-compact-5", "malformed",
     lambda w: ".".join([b64url(json_members({"alg": "RSA-OAEP", "enc": "A256GCM", "kid": "k-RS256"})),
                         b64url(b"k" * 256), b64url(b"iv" * 6), b64url(b"ciphertext"), b64url(b"t" * 16)])),
    ("parts-1", "malformed", lambda w: parts(valid(w))[0]),
    ("parts-2", "malformed", lambda w: ".".join(parts(valid(w))[:2])),
    ("parts-4", "malformed", lambda w: valid(w) + "." + parts(valid(w))[2]),
    ("parts-4-trailing-dot", "malformed", lambda w: valid(w) + "."),
    ("parts-6", "malformed", lambda w: valid(w) + "." + valid(w)[:10] + ".x.y"),
    ("parts-empty-header", "malformed", lambda w: "." + ".".join(parts(valid(w))[1:])),
    ("parts-empty-payload", "malformed", lambda w: f"{parts(valid(w))[0]}..{parts(valid(w))[2]}"),
    ("b64-padding-in-payload", "malformed", padded_payload),
    ("b64-padding-in-signature", "malformed", lambda w: valid(w) + "=="),
    ("b64-standard-alphabet", "malformed", std_alphabet),
    ("b64-space-inside", "malformed", lambda w: inside(w, " ")),
    ("b64-tab-inside", "malformed", lambda w: inside(w, "\t")),
    ("b64-newline-inside-query", "malformed", lambda w: Req(query=quote(inside(w, "\n"), safe=""))),
    ("b64-noncanonical-payload-bits", "malformed", noncanonical_payload),
    ("b64-noncanonical-signature-bits", "malformed", noncanonical_signature),
    ("b64-control-signed-as-sent", OK, lambda w: inside(w, "")),
    # ---- §3.4 the JSON itself (RFC 8259 / RFC 7515 §5.2), correctly signed
    ("json-claims-array", "malformed", lambda w: sign(w, hdr(w), b"[1,2]")),
    ("json-claims-string", "malformed", lambda w: sign(w, hdr(w), b'"alice"')),
    ("json-claims-bom", "malformed", lambda w: sign(w, hdr(w), b"\xef\xbb\xbf" + json_members(w.keys.claims()))),
    ("json-claims-trailing-garbage", "malformed", lambda w: sign(w, hdr(w), json_members(w.keys.claims()) + b"x")),
    ("json-claims-two-objects", "malformed",
     lambda w: sign(w, hdr(w), json_members(w.keys.claims()) + json_members({"sub": "admin"}))),
    ("json-claims-comment", "malformed",
     lambda w: sign(w, hdr(w), b"/*x*/" + json_members(w.keys.claims()))),
    ("json-claims-lone-surrogate", "malformed",
     lambda w: sign(w, hdr(w), json_members(w.keys.claims())[:-1] + b',"name":"\\ud800"}')),
    ("json-claims-invalid-utf8", "malformed",
     lambda w: sign(w, hdr(w), json_members(w.keys.claims())[:-1] + b',"name":"\xff\xfe"}')),
    ("json-claims-surrounding-whitespace", OK,
     lambda w: sign(w, hdr(w), b" \n\t" + json_members(w.keys.claims()) + b" \r\n")),
    # ---- §3.4 duplicate member names (all correctly signed)
    ("dup-header-alg", "malformed",
     lambda w: sign(w, [("alg", "ES256"), ("kid", "k-ES256"), ("alg", "none")], w.keys.claims())),
    ("dup-header-alg-none-first", "malformed",
     lambda w: sign(w, [("alg", "none"), ("kid", "k-ES256"), ("alg", "ES256")], w.keys.claims())),
    ("dup-header-kid", "malformed",
     lambda w: sign(w, [("alg", "ES256"), ("kid", "k-ES256"), ("kid", "nope")], w.keys.claims())),
    ("dup-claims-sub", "malformed",
     lambda w: sign(w, hdr(w), list(w.keys.claims().items()) + [("sub", "admin")])),
    ("dup-claims-sub-escaped-name", "malformed",
     lambda w: sign(w, hdr(w), json_members(w.keys.claims())[:-1] + b',"s\\u0075b":"admin"}')),
    ("dup-claims-exp", "malformed",
     lambda w: sign(w, hdr(w), list(w.keys.claims().items()) + [("exp", int(time.time()) + 10**8)])),
    ("dup-claims-iss", "malformed",
     lambda w: sign(w, hdr(w), list(w.keys.claims(iss="https://evil.example.com").items()) + [("iss", ISSUER)])),
    ("dup-nested-roles", "malformed",
     lambda w: Req(sign(w, hdr(w), json_members(w.keys.claims())[:-1]
                        + b',"realm_access":{"roles":["user"],"roles":["admin"]}}'), path="/admin/x")),
    ("dup-nested-roles-control-user", "403 missing_role",
     lambda w: Req(valid(w, realm_access={"roles": ["user"]}), path="/admin/x")),
    ("dup-nested-roles-control-admin", OK,
     lambda w: Req(valid(w, realm_access={"roles": ["admin"]}), path="/admin/x")),
    # ---- §3.4 registered claim types
    ("claim-exp-string", "malformed", lambda w: valid(w, exp=str(int(time.time()) + 300))),
    ("claim-nbf-string", "malformed", lambda w: valid(w, nbf=str(int(time.time())))),
    ("claim-exp-bool", "malformed", lambda w: valid(w, exp=True)),
    ("claim-exp-float", OK, lambda w: valid(w, exp=int(time.time()) + 300.5)),
    ("claim-exp-1e20-beyond-u64", "malformed", lambda w: valid(w, exp=10**20)),
    ("claim-exp-1e17-far-future", OK, lambda w: valid(w, exp=10**17)),
    # NumericDate: the u64 range however the number is written (src/token/jws.rs numeric_date).
    ("claim-exp-u64-max", OK, lambda w: valid(w, exp=2**64 - 1)),
    ("claim-exp-1e18-as-float", OK, lambda w: valid(w, exp=1e18)),
    ("claim-iat-negative", "malformed", lambda w: valid(w, iat=-1)),
    ("claim-aud-object", "malformed", lambda w: valid(w, aud={"aud": AUDIENCE})),
    ("claim-aud-number", "malformed", lambda w: valid(w, aud=1)),
    ("claim-aud-array-with-number", "malformed", lambda w: valid(w, aud=[AUDIENCE, 1])),
    ("claim-aud-null", "malformed", lambda w: valid(w, aud=None)),
    ("claim-aud-empty-array", "bad_audience", lambda w: valid(w, aud=[])),
    ("claim-iss-number", "malformed", lambda w: valid(w, iss=1)),
    ("claim-iss-null", "malformed", lambda w: valid(w, iss=None)),
    ("claim-sub-object", "malformed", lambda w: valid(w, sub={"id": "alice"})),
    ("claim-jti-array", "malformed", lambda w: valid(w, jti=["a", "b"])),
    ("claim-jti-number", "malformed", lambda w: valid(w, jti=7)),
    ("claim-private-nonce-number", OK, lambda w: valid(w, nonce=12345)),
    ("claim-private-nonce-object", OK, lambda w: valid(w, nonce={"n": [1, {"x": None}]})),
    # ---- §3.4 nesting and size
    ("nest-100-claims", OK, lambda w: valid(w, deep=nested(100))),
    ("nest-200-claims", "malformed", lambda w: valid(w, deep=nested(200))),
    ("nest-200-header", "malformed", lambda w: sign(w, hdr(w, deep=nested(200)), w.keys.claims())),
    ("size-header-over-8192", "too_large", lambda w: sign(w, hdr(w, x="h" * 6200), w.keys.claims())),
    ("size-claims-over-8192", "too_large", lambda w: valid(w, pad="c" * 6200)),
    ("size-exactly-8192", OK, lambda w: of_length(w, 8192)),
    ("size-8193", "too_large", lambda w: of_length(w, 8193)),
    # ---- §2.2/§3.3 signatures
    ("sig-other-key-same-kid", "bad_signature", lambda w: sign(w, hdr(w), w.keys.claims(), key=w.keys.rogue_p256)),
    ("sig-stripped", "bad_signature", lambda w: ".".join(parts(valid(w))[:2]) + "."),
    ("sig-of-another-token", "bad_signature", lambda w: with_sig(valid(w), unb64(parts(other_token(w))[2]))),
    ("sig-es256-der", "bad_signature", der_signature),
    ("sig-es256-r-zero", "bad_signature", lambda w: tweak_rs(w, lambda r, s: (0, s))),
    ("sig-es256-s-zero", "bad_signature", lambda w: tweak_rs(w, lambda r, s: (r, 0))),
    ("sig-es256-r-is-n", "bad_signature", lambda w: tweak_rs(w, lambda r, s: (P256_N, s))),
    ("sig-es256-s-is-n", "bad_signature", lambda w: tweak_rs(w, lambda r, s: (r, P256_N))),
    ("sig-es256-truncated", "bad_signature", lambda w: (lambda t: with_sig(t, unb64(parts(t)[2])[:63]))(valid(w))),
    # s' = n - s verifies mathematically; RustCrypto p256 (NORMALIZE_S = false), BoringSSL and
    # Envoy's jwt_authn all accept it. Pinned: accepted (a token is not a unique identifier).
    ("sig-es256-high-s", OK, high_s),
    ("sig-eddsa-s-plus-l", "bad_signature", eddsa_s_plus_l),
    ("sig-rs256-leading-zero-byte", "bad_signature", rsa_leading_zero),
    # ---- §3.3 header members that change the meaning of the JWS
    ("header-crit-exp", "malformed", lambda w: sign(w, hdr(w, crit=["exp"]), w.keys.claims())),
    ("header-crit-empty", "malformed", lambda w: sign(w, hdr(w, crit=[]), w.keys.claims())),
    ("header-b64-false", "malformed", lambda w: sign(w, hdr(w, b64=False), w.keys.claims())),
    ("header-b64-true", "malformed", lambda w: sign(w, hdr(w, b64=True), w.keys.claims())),
    ("header-enc", "malformed", lambda w: sign(w, hdr(w, enc="A256GCM"), w.keys.claims())),
    # ---- §3.11 typ
    ("typ-at+jwt", OK, lambda w: sign(w, hdr(w, typ="at+jwt"), w.keys.claims())),
    ("typ-missing", OK, lambda w: sign(w, hdr(w, typ=DROP), w.keys.claims())),
    ("typ-number", "malformed", lambda w: sign(w, hdr(w, typ=1), w.keys.claims())),
    # typ is not checked against a list: another kind of JWT from the same issuer with an
    # accepted audience is accepted (explicit typing, §3.11, is not enforced).
    ("typ-logout+jwt-accepted", OK, lambda w: sign(w, hdr(w, typ="logout+jwt"), w.keys.claims())),
    # ---- §3.8/§3.9 cross-JWT confusion
    ("cross-other-issuer", "bad_issuer", lambda w: valid(w, iss="https://evil.example.com")),
    ("cross-other-audience", "bad_audience", lambda w: valid(w, aud="billing")),
    ("cross-issuer-of-another-provider", "bad_issuer", lambda w: valid(w, iss=SHARED_ISSUER)),
    # ---- §3.10 kid-less key search is bounded (MAX_KEYS_PER_TOKEN = 3)
    *[(f"kidless-four-keys-key{i + 1}", OK,
       (lambda i: lambda w: Req(sign(w, {"alg": "ES256"}, w.keys.claims(iss=FOUR_ISSUER), key=w.four[i]),
                                path="/four/x"))(i))
      for i in range(3)],
    ("kidless-four-keys-key4-not-tried", "bad_signature",
     lambda w: Req(sign(w, {"alg": "ES256"}, w.keys.claims(iss=FOUR_ISSUER), key=w.four[3]), path="/four/x")),
    ("kidless-four-keys-key4-with-kid", OK,
     lambda w: Req(sign(w, {"alg": "ES256", "kid": "t4"}, w.keys.claims(iss=FOUR_ISSUER), key=w.four[3]),
                   path="/four/x")),
    ("kidless-single-key-without-kid", OK,
     lambda w: Req(sign(w, {"alg": "ES256"}, w.keys.claims(iss=SINGLE_ISSUER), key=w.single), path="/single/x")),
    ("kidless-attacker-key", "bad_signature",
     lambda w: sign(w, hdr(w, kid=DROP), w.keys.claims(), key=w.attacker)),
    # ---- §3.8/§3.9 one issuer behind providers A (aud a, KA) and B (aud b, KB), rule [A, B]
    ("shared-token-for-a", OK, lambda w: Req(shared(w, w.ka, "ka", "a"), path="/shared/x")),
    ("shared-token-for-b", OK, lambda w: Req(shared(w, w.kb, "kb", "b"), path="/shared/x")),
    ("shared-token-for-b-without-kid", OK, lambda w: Req(shared(w, w.kb, None, "b"), path="/shared/x")),
    ("shared-ka-aud-c-first-reason", "bad_audience", lambda w: Req(shared(w, w.ka, "ka", "c"), path="/shared/x")),
    # B would say bad_audience, but A (first candidate) does not know kid kb: A's reason wins.
    ("shared-kb-aud-a-first-reason", "unknown_key", lambda w: Req(shared(w, w.kb, "kb", "a"), path="/shared/x")),
    # A's key cannot mint tokens for B's audience (and vice versa).
    ("shared-ka-aud-b", "bad_audience", lambda w: Req(shared(w, w.ka, "ka", "b"), path="/shared/x")),
    ("shared-kb-kid-ka", "bad_signature", lambda w: Req(shared(w, w.kb, "ka", "a"), path="/shared/x")),
    # ---- replay: out of scope (stateless, no jti store): the same valid token twice is accepted
    ("replay", OK, lambda w: Req(valid(w), repeat=2)),
    # ---- RFC 6750 §2: one token per request
    ("same-token-header-and-cookie", OK, lambda w: (lambda t: Req(t, cookie=t))(valid(w))),
    ("same-token-header-and-query", OK, lambda w: (lambda t: Req(t, query=t))(valid(w))),
    ("different-tokens-header-and-cookie", "malformed", lambda w: Req(valid(w), cookie=other_token(w))),
    ("different-tokens-cookie-and-query", "malformed", lambda w: Req(cookie=valid(w), query=other_token(w))),
]


def _ids_are_unique() -> None:
    ids = [c[0] for c in CASES]
    dup = {i for i in ids if ids.count(i) > 1}
    assert not dup, dup


_ids_are_unique()


def send(stack, req: Req):
    headers: list[tuple[str, str]] = []
    if req.token is not None:
        headers.append(("Authorization", f"Bearer {req.token}"))
    if req.cookie is not None:
        headers.append(("Cookie", f"theme=dark; session={req.cookie}"))
    path = req.path + (f"?access_token={req.query}&keep=1" if req.query is not None else "")
    return stack.get("attacks", path, headers=headers)


@pytest.mark.parametrize("expect, build", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_attack(stack, world, upstream, refused, expect, build):
    built = build(world)
    req = built if isinstance(built, Req) else Req(token=built)
    # Twice at least: the second time an accepted token comes from the cache (when it is on).
    for _ in range(max(req.repeat, 2)):
        if expect == OK:
            before = upstream.count
            echoed = expect_upstream(send(stack, req))
            assert upstream.count == before + 1
            assert "authorization" not in echoed["headers"], "the token header must be removed"
            if req.cookie is not None:
                assert echoed["headers"].get("cookie") == "theme=dark", echoed
            if req.query is not None:
                assert echoed["path"] == f"{req.path}?keep=1", echoed
        else:
            with refused():
                resp = send(stack, req)
            if expect.startswith("403 "):
                expect_403(resp, expect.removeprefix("403 "))
            else:
                expect_401(resp, expect)
    assert world.key_server.count == 0, "jku/x5u was fetched"


def test_key_server_was_never_asked(stack, world):
    """Runs after the table: not one request from Envoy to the jku/x5u URLs."""
    assert world.key_server.hits == [] and world.key_server.count == 0
