"""ES512 (ECDSA P-521 with SHA-512, RFC 7518 §3.4) end to end in real Envoy (issue #20).

Tokens are minted by PyJWT + cryptography. One Envoy runs jwt-guard on several listeners with the
same P-521 key: inline with each `signature_backend` (`auto`, `pure_rust`, `host`: Envoy's
BoringSSL through `verify_signature` in the .wasm; the native module checks ES512 in Rust, ring
having no P-521), fetched from a remote JWKS, and beside them Envoy's own `jwt_authn` with the
same key set, which must give the same status to every request. Checked: a valid token passes
(and again from the token cache); a tampered one (signature, header or claims) is 401
`bad_signature`; an ES512 token on a P-256 key is refused; a P-521 key without `alg` serves
ES512 only; a key set with a P-521 key is accepted at configuration, inline and fetched, and a
malformed P-521 key is refused (inline: Envoy does not start, naming the field; fetched: the key
is skipped and counted).
"""

from __future__ import annotations

import base64
import json
import re
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from conftest import expect_401, expect_upstream, start_stack
from harness import Envoy, bootstrap, listener, static_cluster, wasm_filter
from jwks_server import JwksServer
from test_cli import cli, run_cli  # noqa: F401  (cli: the fixture)
from tokens import AUDIENCE, ISSUER, b64url

JWT_AUTHN_TYPE = "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication"
REMOTE_URI = "https://idp.example.com/jwks.json"
PREFIX = "jwt-guard: invalid configuration: "


class Key:
    """A private key and its public JWK."""

    def __init__(self, curve: ec.EllipticCurve, alg: str, kid: str, with_alg: bool = True) -> None:
        self.alg, self.kid = alg, kid
        self.private = ec.generate_private_key(curve)
        jwk = ECAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        self.jwk = {k: v for k, v in jwk.items() if k != "key_ops"} | {"kid": kid, "use": "sig"}
        if with_alg:
            self.jwk["alg"] = alg

    def mint(self, alg: str | None = None, kid: Any = ..., **claims: Any) -> str:
        now = int(time.time())
        payload = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 300, **claims}
        headers = {} if kid is None else {"kid": self.kid if kid is ... else kid}
        return jwt.encode(payload, self.private, algorithm=alg or self.alg, headers=headers)


P521 = Key(ec.SECP521R1(), "ES512", "p521")
P521_NO_ALG = Key(ec.SECP521R1(), "ES512", "p521-no-alg", with_alg=False)
OTHER_P521 = Key(ec.SECP521R1(), "ES512", "p521")  # same kid, another key: bad signatures
P256 = Key(ec.SECP256R1(), "ES256", "p256")
JWKS = {"keys": [P521.jwk, P521_NO_ALG.jwk, P256.jwk]}


def long_x(jwk: dict) -> dict:
    """The JWK with its x coordinate one octet too long (a zero octet in front: 67 octets).
    One short is accepted, left-padded (a dropped leading zero octet, as minimal-integer
    encoders write half of all P-521 coordinates: tests/parity's jwt_verify_lib key set)."""
    x = base64.urlsafe_b64decode(jwk["x"] + "==")
    return {**jwk, "x": b64url(b"\x00" + x), "kid": "long-x"}


def guard(jwks: dict | None = None, **extra: Any) -> dict:
    provider: dict[str, Any] = {"issuer": ISSUER, "audiences": [AUDIENCE]}
    if jwks is not None:
        provider["jwks"] = jwks
    provider.update(extra.pop("provider", {}))
    return {"realm": "api", "providers": {"corp": provider},
            "rules": [{"match": {"prefix": "/"}, "provider": "corp"}], **extra}


def jwt_authn(jwks: dict) -> dict:
    return {"name": "envoy.filters.http.jwt_authn", "typed_config": {
        "@type": JWT_AUTHN_TYPE,
        "providers": {"corp": {"issuer": ISSUER, "audiences": [AUDIENCE],
                               "local_jwks": {"inline_string": json.dumps(jwks)}}},
        "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "corp"}}]}}


GUARDS = ("auto", "pure_rust", "host", "remote")


@pytest.fixture(scope="module")
def idp():
    # One good P-521 key and one malformed P-521 key: the second is skipped, never the set.
    server = JwksServer({"keys": [P521.jwk, long_x(P521_NO_ALG.jwk)]}).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def stack(request, upstream, wasm, idp):
    remote = {"cluster": "idp", "uri": REMOTE_URI, "refresh_seconds": 300, "timeout_ms": 1000,
              "min_refetch_seconds": 30}
    listeners = [
        listener("auto", 0, [wasm_filter(guard(JWKS), name="guard_auto")]),
        listener("pure_rust", 0, [wasm_filter(guard(JWKS, signature_backend="pure_rust"), name="guard_rust")]),
        listener("host", 0, [wasm_filter(guard(JWKS, signature_backend="host"), name="guard_host")]),
        listener("remote", 0, [wasm_filter(guard(provider={"remote_jwks": remote}), name="guard_remote")]),
        listener("p256_only", 0, [wasm_filter(guard({"keys": [P256.jwk]}), name="guard_p256")]),
        listener("jwt_authn", 0, [jwt_authn(JWKS)]),
    ]
    stack = start_stack(request, upstream, "es512", listeners, extra_clusters=[static_cluster("idp", idp.port)])
    deadline = time.monotonic() + 10
    while stack.get("remote", "/x", headers=bearer(P521.mint())).status != 200:
        assert time.monotonic() < deadline, "the remote P-521 key set was not in force after 10 s"
        time.sleep(0.1)
    return stack


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def tampered(token: str) -> dict[str, str]:
    """Each part of a valid token changed, still well-formed: each must be a bad signature."""
    header, claims, sig = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(sig + "=="))
    assert len(raw) == 132, "JOSE r || s of P-521: 2 x 66 octets"
    out = {}
    for name, index in (("r first octet", 0), ("r last octet", 65), ("s first octet", 66), ("s last octet", 131)):
        flipped = bytearray(raw)
        flipped[index] ^= 1
        out[f"signature, {name}"] = f"{header}.{claims}.{b64url(bytes(flipped))}"
    other = json.loads(base64.urlsafe_b64decode(claims + "=="))
    other["sub"] = "mallory"
    out["claims"] = f"{header}.{b64url(json.dumps(other, separators=(',', ':')))}.{sig}"
    out["header"] = f"{b64url(json.dumps({'alg': 'ES512', 'kid': 'p521', 'typ': 'at+jwt'}))}.{claims}.{sig}"
    n = int("01ff" + "ff" * 31 + "fa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409", 16)
    r, s = int.from_bytes(raw[:66], "big"), int.from_bytes(raw[66:], "big")
    if r + n < 1 << 528:
        out["r + n"] = f"{header}.{claims}.{b64url((r + n).to_bytes(66, 'big') + s.to_bytes(66, 'big'))}"
    return out


def test_a_valid_es512_token_passes_every_backend_and_jwt_authn(stack):
    everywhere = (*GUARDS, "jwt_authn")
    inline = ("auto", "pure_rust", "host", "jwt_authn")  # the remote set holds P521 only
    for token, names in ((P521.mint(), everywhere), (P521.mint(kid=None), everywhere), (P521_NO_ALG.mint(), inline)):
        for name in names:
            for _ in range(2):  # the second time from jwt-guard's token cache
                expect_upstream(stack.get(name, "/x", headers=bearer(token)))


def test_a_tampered_es512_token_is_a_bad_signature(stack, refused):
    for what, token in {**tampered(P521.mint()), "another P-521 key, same kid": OTHER_P521.mint()}.items():
        for name in GUARDS:
            with refused():
                resp = stack.get(name, "/x", headers=bearer(token))
            assert resp.status == 401 and resp.json()["reason"] == "bad_signature", (what, name, resp)
            expect_401(resp, "bad_signature")
        assert stack.get("jwt_authn", "/x", headers=bearer(token)).status == 401, what


def test_an_es512_token_is_refused_on_a_p256_key(stack, refused):
    # The kid of the P-256 key: the key's algorithm is ES256, never the token's.
    with refused():
        expect_401(stack.get("auto", "/x", headers=bearer(P521.mint(kid="p256"))), "unsupported_algorithm")
    # No kid, and no key of ES512: nothing to try.
    with refused():
        expect_401(stack.get("p256_only", "/x", headers=bearer(P521.mint(kid=None))), "unknown_key")
    # The other way round: an ES256 token naming the P-521 key.
    with refused():
        expect_401(stack.get("auto", "/x", headers=bearer(P256.mint(kid="p521"))), "unsupported_algorithm")
    # A P-521 key without alg serves ES512 only.
    for alg, key in (("ES256", ec.SECP256R1()), ("ES384", ec.SECP384R1())):
        forged = jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 300},
                            ec.generate_private_key(key), algorithm=alg, headers={"kid": "p521-no-alg"})
        with refused():
            expect_401(stack.get("auto", "/x", headers=bearer(forged)), "unsupported_algorithm")
    # Envoy's jwt_authn refuses the same tokens.
    for token in (P521.mint(kid="p256"), P256.mint(kid="p521")):
        assert stack.get("jwt_authn", "/x", headers=bearer(token)).status == 401


def test_the_fetched_p521_key_is_used_and_the_malformed_one_skipped(stack):
    stats = stack.envoy.stats("jwt_guard.jwks")
    assert stats.get("wasmcustom.jwt_guard.jwks.corp.keys") == 1, stats
    assert stats.get("wasmcustom.jwt_guard.jwks.corp.keys_skipped") == 1, stats
    line = next(ln for ln in stack.envoy.log().splitlines() if "key skipped" in ln)
    assert "keys[1]" in line and "x must be a P-521 coordinate: at most 66 octets" in line, line


@pytest.mark.wasm_only(reason="the start-up line names the Wasm signature backends (verify_signature or Rust)")
def test_the_host_checks_es512_unless_told_otherwise(stack):
    def lines(vm: str) -> list[str]:
        stack.envoy.wait_for_log(f" {vm}: jwt-guard: configured:", timeout=10)
        return [ln for ln in stack.envoy.log().splitlines() if f" {vm}: jwt-guard: configured:" in ln]

    host = "signatures by the host (verify_signature): [ES512, ES256], in Rust: []"
    rust = "signatures by the host (verify_signature, not used): [], in Rust: [ES512, ES256]"
    for vm, wanted in (("guard_auto", host), ("guard_host", host), ("guard_rust", rust)):
        assert all(wanted in ln for ln in lines(vm)), (vm, lines(vm))


def test_malformed_p521_keys_are_refused_at_configuration(upstream, wasm, tmp_path):
    bad = {
        "x one octet too long": (long_x(P521.jwk), "x must be a P-521 coordinate: at most 66 octets"),
        "not a point of the curve": ({**P521.jwk, "y": P521.jwk["x"]}, "not a point of P-521"),
        "a private key": ({**P521.jwk, "d": P521.jwk["x"]}, "d is not a member of a public EC key"),
        "P-521 key with alg ES256": ({**P521.jwk, "alg": "ES256"}, "not a valid ES256 public key"),
        "P-256 key with alg ES512": ({**P256.jwk, "alg": "ES512"}, 'needs kty "EC" and crv "P-521"'),
    }
    for what, (jwk, message) in bad.items():
        env = Envoy(bootstrap([listener("bad", 0, [wasm_filter(guard({"keys": [P256.jwk, jwk]}))])], upstream.port),
                    workdir=tmp_path / re.sub(r"\W+", "-", what), name="es512-bad")
        try:
            assert env.run_to_exit(timeout=60) != 0, what
            lines = [ln for ln in env.log().splitlines() if PREFIX in ln]
        finally:
            env.stop()
        assert len(lines) == 1, (what, lines)
        detail = lines[0].split(PREFIX, 1)[1]
        assert detail.startswith("providers.corp.jwks.keys[1]: "), (what, detail)
        assert message in detail, (what, detail)


def test_the_cli_signs_es512_tokens_and_dpop_proofs(stack, cli, tmp_path):
    """`jwt-guard token` and `jwt-guard dpop` with a P-521 key, as a private JWK and as PKCS#8:
    PyJWT verifies both, the filter (host and Rust backends) and jwt_authn accept the token, and
    a JWK whose `d` is not the private half of its `x`, `y` is refused."""
    jwk = {k: v for k, v in ECAlgorithm.to_jwk(P521.private, as_dict=True).items() if k != "key_ops"}
    public = {k: jwk[k] for k in ("kty", "crv", "x", "y")}
    (tmp_path / "p521.jwk.json").write_text(json.dumps(jwk))
    (tmp_path / "p521.pem").write_bytes(P521.private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    for name in ("p521.jwk.json", "p521.pem"):
        path = str(tmp_path / name)
        proc = run_cli(cli, "token", "--key", path, "--kid", "p521", "--iss", ISSUER, "--aud", AUDIENCE,
                       "--sub", "alice", "--exp-in", "300")
        assert proc.returncode == 0, (name, proc.stderr)
        token = proc.stdout.strip()
        assert jwt.get_unverified_header(token) == {"alg": "ES512", "kid": "p521", "typ": "JWT"}, name
        claims = jwt.decode(token, P521.private.public_key(), algorithms=["ES512"], audience=AUDIENCE, issuer=ISSUER)
        assert claims["sub"] == "alice" and claims["exp"] - claims["iat"] == 300, claims
        with pytest.raises(jwt.InvalidSignatureError):
            jwt.decode(token, OTHER_P521.private.public_key(), algorithms=["ES512"], audience=AUDIENCE)
        for listener_name in ("auto", "pure_rust", "host", "jwt_authn"):
            expect_upstream(stack.get(listener_name, "/x", headers=bearer(token)))

        proc = run_cli(cli, "dpop", "--key", path, "--url", "http://h/x?q=1", "--token", token)
        assert proc.returncode == 0, (name, proc.stderr)
        proof = proc.stdout.strip()
        header = jwt.get_unverified_header(proof)
        assert header == {"typ": "dpop+jwt", "alg": "ES512", "jwk": public}, name
        body = jwt.decode(proof, jwt.PyJWK(header["jwk"], algorithm="ES512").key, algorithms=["ES512"])
        assert body["htu"] == "http://h/x" and body["htm"] == "GET", body

    other_d = ECAlgorithm.to_jwk(OTHER_P521.private, as_dict=True)["d"]
    (tmp_path / "mixed.jwk.json").write_text(json.dumps({**jwk, "d": other_d}))
    proc = run_cli(cli, "token", "--key", str(tmp_path / "mixed.jwk.json"), "--iss", ISSUER)
    assert proc.returncode != 0 and proc.stdout == "", proc
    assert "not the public half of its d" in proc.stderr, proc.stderr
