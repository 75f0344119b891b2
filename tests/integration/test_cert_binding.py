"""RFC 8705 certificate-bound access tokens over real mutual TLS, in both runtimes.

A test CA, a server certificate and two client certificates are minted here with Python's
`cryptography`; tokens carry `cnf.x5t#S256` = base64url(SHA-256(DER client certificate)),
computed here with hashlib, never by the filter's code. Envoy terminates TLS and hands the
filter its digest of the client certificate (`connection.sha256_peer_certificate_digest` /
attribute ConnectionSha256PeerCertificateDigest).

Listeners: `mtls` requires a client certificate; `tls` asks for one but lets a client without
one in; `plain` has no TLS at all. One configuration with a rule per provider flavour:
/bound (certificate_binding {}), /strict (required: true), /plain (off), /lenient (off, with
accept_unchecked_bindings).
"""

from __future__ import annotations

import datetime
import hashlib
import http.client
import ipaddress
import ssl
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from conftest import NotForwarded, expect_401, expect_upstream, start_stack
from harness import Response, listener, wasm_filter
from tokens import AUDIENCE, ISSUER, KeySet, b64url

TLS_TYPE = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
CACHE_HIT = "wasmcustom.jwt_guard.token_cache.hit"


@dataclass
class Cert:
    cert_pem: str
    key_pem: str
    der: bytes
    cert_file: Path
    key_file: Path

    @property
    def thumbprint(self) -> str:
        """RFC 8705 §3.1: base64url (no padding) of the SHA-256 of the DER certificate."""
        return b64url(hashlib.sha256(self.der).digest())


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _issue(directory: Path, cn: str, ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
           *, server: bool = False) -> tuple[Cert, x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    issuer_cert, issuer_key = ca if ca else (None, key)
    builder = (x509.CertificateBuilder()
               .subject_name(_name(cn))
               .issuer_name(issuer_cert.subject if issuer_cert else _name(cn))
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1)))
    if ca is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
    elif server:
        builder = (builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                         critical=False)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False))
    else:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    cert = builder.sign(issuer_key, hashes.SHA256())
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    cert_file, key_file = directory / f"{cn}.crt", directory / f"{cn}.key"
    cert_file.write_text(cert_pem)
    key_file.write_text(key_pem)
    return Cert(cert_pem, key_pem, cert.public_bytes(serialization.Encoding.DER), cert_file, key_file), cert, key


@dataclass
class Pki:
    ca: Cert
    server: Cert
    alice: Cert
    mallory: Cert


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca, ca_cert, ca_key = _issue(directory, "test-ca", None)
    server, _, _ = _issue(directory, "server", (ca_cert, ca_key), server=True)
    alice, _, _ = _issue(directory, "alice", (ca_cert, ca_key))
    mallory, _, _ = _issue(directory, "mallory", (ca_cert, ca_key))
    assert alice.thumbprint != mallory.thumbprint
    return Pki(ca, server, alice, mallory)


def tls_socket(pki: Pki, require_client_certificate: bool) -> dict:
    return {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": TLS_TYPE,
            "require_client_certificate": require_client_certificate,
            "common_tls_context": {
                "tls_certificates": [{"certificate_chain": {"inline_string": pki.server.cert_pem},
                                      "private_key": {"inline_string": pki.server.key_pem}}],
                "validation_context": {"trusted_ca": {"inline_string": pki.ca.cert_pem}},
            },
        },
    }


def config(keys: KeySet) -> dict:
    def provider(**extra) -> dict:
        return {"issuer": ISSUER, "audiences": [AUDIENCE], "jwks": keys.jwks(["ES256"]), **extra}

    return {
        "realm": "api",
        "providers": {
            "bound": provider(certificate_binding={}),
            "strict": provider(certificate_binding={"required": True}),
            "plain": provider(),
            "lenient": provider(accept_unchecked_bindings=True),
        },
        "rules": [{"match": {"prefix": f"/{name}"}, "provider": name}
                  for name in ("bound", "strict", "plain", "lenient")],
    }


@pytest.fixture(scope="module")
def stack(request, upstream, keys, pki):
    filters = [wasm_filter(config(keys), name="cert_binding")]
    listeners = []
    for name, require in (("mtls", True), ("tls", False), ("plain", None)):
        lst = listener(name, 0, filters)
        if require is not None:
            lst["filter_chains"][0]["transport_socket"] = tls_socket(pki, require)
        listeners.append(lst)
    return start_stack(request, upstream, "cert_binding", listeners)


def tls_get(stack, pki: Pki, listener_name: str, path: str, token: str, cert: Cert | None) -> Response:
    """One request on a fresh TLS connection, presenting `cert` (or no certificate)."""
    context = ssl.create_default_context(cadata=pki.ca.cert_pem)
    if cert is not None:
        context.load_cert_chain(cert.cert_file, cert.key_file)
    conn = http.client.HTTPSConnection("127.0.0.1", stack.ports[listener_name], context=context, timeout=10)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
        resp = conn.getresponse()
        data = resp.read()
        pairs = [(k.lower(), v) for k, v in resp.getheaders()]
        joined: dict[str, str] = {}
        for k, v in pairs:
            joined[k] = v if k not in joined else joined[k] + ", " + v
        return Response(resp.status, joined, pairs, data)
    finally:
        conn.close()


def bound_to(keys: KeySet, cert: Cert) -> str:
    # A fresh jti: each token starts out of the verified-token cache.
    return keys.mint("ES256", jti=uuid.uuid4().hex, cnf={"x5t#S256": cert.thumbprint})


def test_the_matching_certificate_is_accepted(stack, keys, pki):
    token = bound_to(keys, pki.alice)
    for path in ("/bound", "/strict"):
        for lst in ("mtls", "tls"):
            expect_upstream(tls_get(stack, pki, lst, path, token, pki.alice))


def test_another_certificate_is_refused(stack, keys, pki):
    token = bound_to(keys, pki.alice)
    with NotForwarded(stack.upstream):
        for path in ("/bound", "/strict"):
            expect_401(tls_get(stack, pki, "mtls", path, token, pki.mallory), "certificate_mismatch")


def test_no_certificate_is_refused(stack, keys, pki):
    token = bound_to(keys, pki.alice)
    with NotForwarded(stack.upstream):
        for path in ("/bound", "/strict"):
            expect_401(tls_get(stack, pki, "tls", path, token, None), "certificate_missing")
            expect_401(stack.get("plain", path, headers={"Authorization": f"Bearer {token}"}),
                       "certificate_missing")


def test_a_malformed_thumbprint_matches_no_certificate(stack, keys, pki):
    hex_digest = hashlib.sha256(pki.alice.der).hexdigest()
    padded = pki.alice.thumbprint + "="
    with NotForwarded(stack.upstream):
        for value in (hex_digest, padded, pki.alice.thumbprint[:-2], 7):
            token = keys.mint("ES256", jti=uuid.uuid4().hex, cnf={"x5t#S256": value})
            expect_401(tls_get(stack, pki, "mtls", "/bound", token, pki.alice), "certificate_mismatch")


def test_unbound_tokens_pass_unless_binding_is_required(stack, keys, pki):
    token = keys.mint("ES256", jti=uuid.uuid4().hex)
    expect_upstream(tls_get(stack, pki, "mtls", "/bound", token, pki.alice))
    expect_upstream(stack.get("plain", "/bound", headers={"Authorization": f"Bearer {token}"}))
    with NotForwarded(stack.upstream):
        expect_401(tls_get(stack, pki, "mtls", "/strict", token, pki.alice), "certificate_binding_required")


def test_a_bound_token_is_never_a_bearer_token_by_accident(stack, keys, pki):
    """cnf.x5t#S256 on a provider without certificate_binding, and cnf.jkt (DPoP, not verified
    here) anywhere, are refused, unless the provider opts out with accept_unchecked_bindings."""
    x5t = bound_to(keys, pki.alice)
    jkt = keys.mint("ES256", jti=uuid.uuid4().hex, cnf={"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"})
    with NotForwarded(stack.upstream):
        expect_401(tls_get(stack, pki, "mtls", "/plain", x5t, pki.alice), "binding_unchecked")
        for path in ("/plain", "/bound", "/strict"):
            expect_401(tls_get(stack, pki, "mtls", path, jkt, pki.alice), "binding_unchecked")
    # The explicit opt-out: both pass as bearer tokens, with any certificate or none.
    for token in (x5t, jkt):
        expect_upstream(tls_get(stack, pki, "mtls", "/lenient", token, pki.mallory))
        expect_upstream(stack.get("plain", "/lenient", headers={"Authorization": f"Bearer {token}"}))


def test_a_cached_token_is_checked_against_each_requests_certificate(stack, keys, pki):
    """All on one listener: the native module keeps a cache per listener's filter configuration
    (and worker), the Wasm filter one per VM."""
    token = bound_to(keys, pki.alice)
    expect_upstream(tls_get(stack, pki, "mtls", "/bound", token, pki.alice))
    before = stack.envoy.stats(CACHE_HIT).get(CACHE_HIT, 0)
    with NotForwarded(stack.upstream):
        expect_401(tls_get(stack, pki, "mtls", "/bound", token, pki.mallory), "certificate_mismatch")
    expect_upstream(tls_get(stack, pki, "mtls", "/bound", token, pki.alice))
    assert stack.envoy.stats(CACHE_HIT).get(CACHE_HIT, 0) - before == 2, "the token was not served from the cache"
    # A token refused for its certificate is in the cache too (its signature is good): the
    # next request with the right certificate is a hit, and the wrong one is still refused.
    token = bound_to(keys, pki.alice)
    with NotForwarded(stack.upstream):
        expect_401(tls_get(stack, pki, "tls", "/bound", token, None), "certificate_missing")
        before = stack.envoy.stats(CACHE_HIT).get(CACHE_HIT, 0)
        expect_401(tls_get(stack, pki, "tls", "/bound", token, pki.mallory), "certificate_mismatch")
    expect_upstream(tls_get(stack, pki, "tls", "/bound", token, pki.alice))
    assert stack.envoy.stats(CACHE_HIT).get(CACHE_HIT, 0) - before == 2, "the token was not served from the cache"
