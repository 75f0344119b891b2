"""Both signature backends pass the same tests (issue #7), the host one inside a real Envoy.

1. tests/wycheproof-envoy, a test-only proxy-wasm module linked with jwt-guard's core, runs the
   Wycheproof files of every algorithm Envoy's `verify_signature` serves (ECDSA P-256/SHA-256,
   P-384/SHA-384 and P-521/SHA-512 in P1363 form; RSA PKCS #1 v1.5, 2048/3072/4096 bits,
   SHA-256/384/512)
   through the production wire format (`verify_signature::arguments`, the foreign function,
   `verify_signature::result`), with the keys, expectations and derived variants the pure-Rust
   unit tests use (src/testing/vectors.rs), and through the pure-Rust `is_valid` beside it, in wasm32.
   It runs when it gets a request, and answers (and logs) one line per file and a summary.
2. Cases made here with `cryptography`, which no Wycheproof file is sure to hold: valid
   signatures whose encoding starts with zero bytes (an RSA signature whose first octet is 0,
   ECDSA signatures with r or s below 2^(8(w-1))), the other ECDSA form (r, n - s), and what
   lenient verifiers accept (the RSA one without its leading zero, or with one more, a DER
   ECDSA signature). The module checks them and their variants with both backends...
3. ...and the same signatures as tokens go through the real jwt_guard.wasm twice, with
   `signature_backend: "host"` and `"pure_rust"`: the same token gets the same answer.

No difference between BoringSSL (through `verify_signature`) and the pure-Rust backend was
found: every vector and variant gets the expected verdict from both (see the module's docs for
the decisions), so nothing here is an expected difference. `make integration` builds the
module (target/wasm32-wasip1/wycheproof-envoy/wycheproof_envoy.wasm); this file builds nothing.
"""

from __future__ import annotations

import re
from typing import Any, Callable

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from conftest import expect_401, expect_upstream, start_stack
from harness import REPO_ROOT, listener, wasm_filter
from tokens import AUDIENCE, ISSUER, KeySet, b64url, b64url_json

pytestmark = pytest.mark.wasm_only(reason="Envoy's verify_signature is a Wasm foreign function; the module checks signatures with ring, whose Wycheproof runs are unit tests (make unit)")

WYCHEPROOF_WASM = REPO_ROOT / "target" / "wasm32-wasip1" / "wycheproof-envoy" / "wycheproof_envoy.wasm"

# The Wycheproof files of the host-served algorithms (src/testing/vectors.rs, HOST_SERVED_FILES), each
# with at least MIN_CHECKED vectors checked by their result (its MIN_CHECKED).
FILES = [
    "ecdsa_secp256r1_sha256_p1363",
    "ecdsa_secp384r1_sha384_p1363",
    "ecdsa_secp521r1_sha512_p1363",
    *(f"rsa_signature_{bits}_{sha}" for bits in (2048, 3072, 4096) for sha in ("sha256", "sha384", "sha512")),
]
MIN_CHECKED = 200

FILE_LINE = re.compile(
    r"wycheproof-envoy: file (?P<file>\w+): (?P<vectors>\d+) vectors \((?P<valid>\d+) valid, (?P<invalid>\d+) "
    r"invalid, (?P<acceptable>\d+) acceptable\), (?P<checked>\d+) checked by result, (?P<refused_keys>\d+) under "
    r"keys the configuration refuses, (?P<variants>\d+) variants; (?P<by_host>\d+) checks answered by "
    r"verify_signature, (?P<refused>\d+) refused before the host, (?P<accepted>\d+) accepted; (?P<wrong>\d+) wrong, "
    r"(?P<differ>\d+) differ from Rust$")
CASE_LINE = re.compile(
    r"wycheproof-envoy: case (?P<name>\w+): verdict (?P<verdict>true|false), (?P<variants>\d+) variants; "
    r"(?P<by_host>\d+) checks answered by verify_signature, (?P<refused>\d+) refused before the host; "
    r"(?P<wrong>\d+) wrong, (?P<differ>\d+) differ from Rust$")
SUMMARY_LINE = re.compile(
    r"wycheproof-envoy: summary: (?P<files>\d+) files, (?P<vectors>\d+) vectors, (?P<variants>\d+) variants, "
    r"(?P<cases>\d+) cases; (?P<by_host>\d+) checks answered by verify_signature, (?P<refused>\d+) refused before "
    r"the host; (?P<wrong>\d+) wrong, (?P<differ>\d+) differ from Rust$")

# --------------------------------------------------------------------------- edge cases

HASHES = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}
CURVES = {"ES256": (ec.SECP256R1(), 32), "ES384": (ec.SECP384R1(), 48), "ES512": (ec.SECP521R1(), 66)}
ORDERS = {  # SEC 2 group orders
    "ES256": 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    "ES384": int("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF"
                 "581A0DB248B0A77AECEC196ACCC52973", 16),
    "ES512": int("01FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"
                 "FA51868783BF2F966B7FCC0148F709A5D03BB5C9B8899C47AEBB6FB71E91386409", 16),
}


class EdgeCases:
    """Keys made for this module, and signed tokens whose signature bytes are edge cases. Each
    case is one signature over one token's signing input, with the verdict jwt-guard must give."""

    MAX_ATTEMPTS = 5000  # a property of one byte in 256: found within ~256 tries

    def __init__(self, keys: KeySet) -> None:
        self.claims = keys.claims
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = {alg: ec.generate_private_key(curve) for alg, (curve, _) in CURVES.items()}
        self.jwks: list[dict] = []
        for alg in ("RS256", "RS512"):
            self._jwk(alg, RSAAlgorithm.to_jwk(self.rsa.public_key(), as_dict=True))
        for alg, key in self.ec.items():
            self._jwk(alg, ECAlgorithm.to_jwk(key.public_key(), as_dict=True))
        self.cases: list[dict] = []
        self.attempt = 0

    def _jwk(self, alg: str, jwk: dict) -> None:
        self.jwks.append({k: v for k, v in jwk.items() if k != "key_ops"} | {"kid": f"edge-{alg}", "alg": alg})

    def jwk(self, alg: str) -> dict:
        return next(j for j in self.jwks if j["alg"] == alg)

    def signing_input(self, alg: str) -> bytes:
        self.attempt += 1
        header = {"alg": alg, "kid": f"edge-{alg}", "typ": "JWT"}
        return f"{b64url_json(header)}.{b64url_json(self.claims(jti=str(self.attempt)))}".encode()

    def add(self, name: str, alg: str, message: bytes, signature: bytes, valid: bool) -> None:
        self.cases.append({"name": name, "alg": alg, "jwk": self.jwk(alg), "message": message.hex(),
                           "signature": signature.hex(), "valid": valid,
                           "token": f"{message.decode()}.{b64url(signature)}"})

    def rsa_sign(self, alg: str, message: bytes) -> bytes:
        return self.rsa.sign(message, padding.PKCS1v15(), HASHES[alg[2:]]())

    def ec_sign(self, alg: str, message: bytes) -> tuple[int, int]:
        return decode_dss_signature(self.ec[alg].sign(message, ec.ECDSA(HASHES[alg[2:]]())))

    def find(self, alg: str, sign: Callable[[bytes], Any], wanted: Callable[[Any], bool]) -> tuple[bytes, Any]:
        """A signing input for `alg` whose signature (as `sign` returns it) is `wanted`."""
        for _ in range(self.MAX_ATTEMPTS):
            message = self.signing_input(alg)
            signature = sign(message)
            if wanted(signature):
                return message, signature
        raise AssertionError(f"no such {alg} signature in {self.MAX_ATTEMPTS} attempts")


def _edge_cases(keys: KeySet) -> tuple[list[dict], list[dict]]:
    """(cases, the JWKs of their keys)."""
    edge = EdgeCases(keys)
    for alg in ("RS256", "RS512"):
        message, sig = edge.find(alg, lambda m, alg=alg: edge.rsa_sign(alg, m), lambda s: s[0] == 0)
        assert len(sig) == 256
        edge.add(f"{alg}_first_octet_zero", alg, message, sig, True)
        # RFC 8017 §8.2.2 step 1: a signature is exactly k octets, so the same integer in k - 1
        # or k + 1 octets is refused (lenient verifiers strip or left-pad).
        edge.add(f"{alg}_first_octet_zero_stripped", alg, message, sig.lstrip(b"\0"), False)
        edge.add(f"{alg}_zero_prefixed", alg, message, b"\0" + sig, False)
    for alg, (_, width) in CURVES.items():
        n, small = ORDERS[alg], 1 << (8 * (width - 1))

        def sign(message: bytes, alg: str = alg) -> tuple[int, int]:
            return edge.ec_sign(alg, message)

        def p1363(r: int, s: int, width: int = width) -> bytes:
            return r.to_bytes(width, "big") + s.to_bytes(width, "big")

        message, (r, s) = edge.find(alg, sign, lambda rs: rs[0] < small)
        edge.add(f"{alg}_r_first_octet_zero", alg, message, p1363(r, s), True)
        message, (r, s) = edge.find(alg, sign, lambda rs: rs[1] < small)
        edge.add(f"{alg}_s_first_octet_zero", alg, message, p1363(r, s), True)
        # Both forms of one signature: JWS has no low-S rule, nor have BoringSSL or p256/p384/p521.
        message, (r, s) = edge.find(alg, sign, lambda rs, n=n: rs[1] > n // 2)
        edge.add(f"{alg}_high_s", alg, message, p1363(r, s), True)
        edge.add(f"{alg}_high_s_negated", alg, message, p1363(r, n - s), True)
        # RFC 7518 §3.4: r || s, never DER (which BoringSSL itself would take).
        der = edge.ec[alg].sign(message, ec.ECDSA(HASHES[alg[2:]]()))
        edge.add(f"{alg}_der_encoded", alg, message, der, False)
    return edge.cases, edge.jwks


@pytest.fixture(scope="module")
def edge(keys: KeySet) -> tuple[list[dict], list[dict]]:
    return _edge_cases(keys)


# --------------------------------------------------------------------------- the module


@pytest.fixture(scope="module")
def run(request, upstream, edge):
    """One run of the module in Envoy: (answer, log lines it wrote)."""
    if not WYCHEPROOF_WASM.exists():
        pytest.fail(f"{WYCHEPROOF_WASM} is missing: `make integration` builds it", pytrace=False)
    cases, _ = edge
    config = {"cases": [{k: c[k] for k in ("name", "jwk", "message", "signature", "valid")} for c in cases]}
    stack = start_stack(request, upstream, "wycheproof-envoy", [
        listener("vectors", 0, [wasm_filter(config, WYCHEPROOF_WASM, name="wycheproof_envoy")])])
    since = stack.envoy.log_size()
    # ~15 s: most of it the pure-Rust checks (RSA up to 4096 bits) in wasm32.
    resp = stack.get("vectors", "/", timeout=300)
    stack.envoy.wait_for_log("wycheproof-envoy: summary:", timeout=10, since=since)
    log = [line.split("wycheproof_envoy: ", 1)[1] for line in stack.envoy.log()[since:].splitlines()
           if "wycheproof_envoy: wycheproof-envoy: " in line]
    return resp, log


def _lines(resp) -> list[str]:
    return resp.body.decode().splitlines()


def test_the_answer_is_the_log(run):
    resp, log = run
    assert resp.header("content-type") == "text/plain", resp
    assert _lines(resp) == log, "the answer and the log must hold the same lines"
    errors = [ln for ln in log if " wrong: " in ln or " backends differ: " in ln]
    assert not errors, "\n".join(errors[:40])
    assert resp.status == 200, resp


def test_every_wycheproof_vector_through_verify_signature(run):
    resp, _ = run
    files = {m["file"]: {k: int(v) for k, v in m.groupdict().items() if k != "file"}
             for m in map(FILE_LINE.match, _lines(resp)) if m}
    assert sorted(files) == sorted(FILES), _lines(resp)
    for name, f in files.items():
        assert f["wrong"] == 0 and f["differ"] == 0, (name, f)
        assert f["valid"] + f["invalid"] + f["acceptable"] == f["vectors"], (name, f)
        assert f["checked"] + f["refused_keys"] == f["vectors"], (name, f)
        assert f["checked"] >= MIN_CHECKED, (name, f)
        assert f["variants"] > 0, (name, f)
        # Every check either reached the host or was refused before it, as the filter does.
        assert f["by_host"] + f["refused"] == f["checked"] + f["variants"], (name, f)
        assert f["by_host"] >= MIN_CHECKED and f["accepted"] > 0, (name, f)
        if name.startswith("rsa_"):
            # Only ECDSA signatures of the wrong size are refused before the host.
            assert f["refused"] == 0, (name, f)


def test_summary(run, edge):
    resp, log = run
    summary = SUMMARY_LINE.match(log[-1])
    assert summary, log[-1]
    s = {k: int(v) for k, v in summary.groupdict().items()}
    assert s["files"] == len(FILES) and s["cases"] == len(edge[0]), s
    assert s["vectors"] >= len(FILES) * MIN_CHECKED, s
    assert s["wrong"] == 0 and s["differ"] == 0, s


def test_edge_cases_through_both_backends(run, edge):
    resp, _ = run
    cases, _ = edge
    seen = {m["name"]: m.groupdict() for m in map(CASE_LINE.match, _lines(resp)) if m}
    assert sorted(seen) == sorted(c["name"] for c in cases), _lines(resp)
    for c in cases:
        line = seen[c["name"]]
        assert line["verdict"] == str(c["valid"]).lower(), (c["name"], line)
        assert line["wrong"] == "0" and line["differ"] == "0", (c["name"], line)
        if c["valid"]:
            assert int(line["variants"]) >= 2, (c["name"], line)  # zero_prefixed and more


# --------------------------------------------------------------------------- the filter


@pytest.fixture(scope="module")
def backends(request, upstream, wasm, edge):
    """The real filter twice, checking the edge keys' signatures by the host and in Rust."""
    _, jwks = edge

    def config(backend: str) -> dict:
        return {"realm": "api", "signature_backend": backend, "token_cache_size": 0,
                "providers": {"corp": {"issuer": ISSUER, "audiences": [AUDIENCE], "jwks": {"keys": jwks}}},
                "rules": [{"match": {"prefix": "/"}, "provider": "corp"}]}

    stack = start_stack(request, upstream, "host-backend", [
        listener("host", 0, [wasm_filter(config("host"), name="jwt_guard_host")]),
        listener("rust", 0, [wasm_filter(config("pure_rust"), name="jwt_guard_rust")]),
    ])
    log = stack.envoy.log()
    assert re.search(r"signatures by the host \(verify_signature\): \[RS256, RS512, ES256, ES384, ES512\]", log), log
    assert re.search(r"signatures by the host \(verify_signature, not used\): \[\], in Rust: "
                     r"\[RS256, RS512, ES256, ES384, ES512\]", log), log
    return stack


def test_the_same_token_gets_the_same_answer_from_both_backends(backends, edge, refused):
    cases, _ = edge
    for c in cases:
        headers = {"Authorization": f"Bearer {c['token']}"}
        for listener_name in ("host", "rust"):
            if c["valid"]:
                expect_upstream(backends.get(listener_name, "/", headers=headers))
            else:
                with refused():
                    expect_401(backends.get(listener_name, "/", headers=headers), "bad_signature")
