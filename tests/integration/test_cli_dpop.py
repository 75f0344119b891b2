"""`jwt-guard token --dpop-key` and `jwt-guard dpop` (DPoP, RFC 9449) against independent judges:
the proofs and the bound tokens checked by PyJWT and cryptography, thumbprints computed here;
and the README's DPoP commands, run by bash against Envoy with the shipped envoy/envoy.yaml."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import time
from typing import Any

import jwt
import pytest
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from harness import REPO_ROOT
from test_cli import _other_key, _private_key_files, _readme_blocks, cli, demo_envoy, run_cli  # noqa: F401
from tokens import ALL_ALGS, AUDIENCE, HMAC_ALGS, ISSUER, RSA_ALGS, b64url

# ------------------------------------------------- dpop: proofs and bound tokens, checked by PyJWT

def _rfc7638_thumbprint(jwk: dict) -> str:
    """RFC 7638, written here: the required members only, sorted, no white space, SHA-256."""
    required = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"), "OKP": ("crv", "kty", "x")}[jwk["kty"]]
    canonical = json.dumps({name: jwk[name] for name in required}, separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode()).digest())


def _python_public_jwk(alg: str, private: Any) -> dict:
    """The client key's public JWK as PyJWT writes it from the key object (not from the proof)."""
    cls = RSAAlgorithm if alg in RSA_ALGS else ECAlgorithm if alg in ("ES256", "ES384") else OKPAlgorithm
    jwk = cls.to_jwk(private.public_key(), as_dict=True)
    return {k: v for k, v in jwk.items() if k in ("kty", "crv", "x", "y", "n", "e")}


def test_dpop_proofs_and_bound_tokens_verify_with_pyjwt(cli, keys, tmp_path):
    """Every asymmetric algorithm, JWK and PEM client keys: the proof's header (typ, alg, a
    public jwk that is the client key's), its signature checked by PyJWT with that jwk, its
    claims (htu without query and fragment, ath = SHA-256 of the token), and the token's cnf.jkt
    = the RFC 7638 thumbprint, computed here, of the client key."""
    issuer_key = next(path for alg, path in _private_key_files(keys, tmp_path) if alg == "ES256")
    now = int(time.time())
    checked = 0
    for alg, path in _private_key_files(keys, tmp_path):
        if alg in HMAC_ALGS:
            continue
        proc = run_cli(cli, "token", "--key", str(issuer_key), "--alg", "ES256", "--kid", keys.keys["ES256"].kid,
                       "--iss", ISSUER, "--aud", AUDIENCE, "--sub", "alice", "--dpop-key", str(path))
        assert proc.returncode == 0, (path.name, proc.stderr)
        token = proc.stdout.strip()
        claims = jwt.decode(token, keys.keys["ES256"].private.public_key(), algorithms=["ES256"], audience=AUDIENCE)
        expected_jwk = _python_public_jwk(alg, keys.keys[alg].private)
        assert claims["cnf"] == {"jkt": _rfc7638_thumbprint(expected_jwk)}, path.name

        proc = run_cli(cli, "dpop", "--key", str(path), "--alg", alg, "--method", "POST",
                       "--url", "https://API.example.com:8443/orders/7?page=2#top", "--token", token, "--nonce", "n-1")
        assert proc.returncode == 0, (path.name, proc.stderr)
        assert proc.stdout.endswith("\n") and proc.stdout.count("\n") == 1, proc.stdout
        proof = proc.stdout.strip()
        header = jwt.get_unverified_header(proof)
        assert header == {"typ": "dpop+jwt", "alg": alg, "jwk": expected_jwk}, path.name
        body = jwt.decode(proof, jwt.PyJWK(header["jwk"], algorithm=alg).key, algorithms=[alg])
        assert set(body) == {"jti", "htm", "htu", "iat", "ath", "nonce"}, body
        assert (body["htm"], body["htu"], body["nonce"]) == ("POST", "https://API.example.com:8443/orders/7", "n-1")
        assert body["ath"] == b64url(hashlib.sha256(token.encode()).digest()), path.name
        assert isinstance(body["jti"], str) and len(body["jti"]) >= 16 and abs(body["iat"] - now) < 120
        with pytest.raises(jwt.InvalidSignatureError):  # PyJWT really checks the signature
            jwt.decode(proof, _other_key(alg), algorithms=[alg])
        checked += 1
    assert checked == len(ALL_ALGS) * 2 - len(HMAC_ALGS) * 2 + 1  # JWK and PEM each, PKCS#1 RSA too


def test_dpop_options_and_refusals(cli, keys, tmp_path):
    path = next(p for alg, p in _private_key_files(keys, tmp_path) if alg == "EdDSA" and p.suffix == ".pem")
    first, second = (run_cli(cli, "dpop", "--key", str(path), "--url", "http://localhost:10000/dpop")
                     for _ in range(2))
    claims = [jwt.decode(p.stdout.strip(), keys.keys["EdDSA"].private.public_key(), algorithms=["EdDSA"])
              for p in (first, second)]
    assert claims[0]["jti"] != claims[1]["jti"] and claims[0]["htm"] == "GET" and "ath" not in claims[0]
    proc = run_cli(cli, "dpop", "--key", str(path), "--url", "http://h/x", "--jti", "j-1", "--iat", "1700000000")
    assert proc.returncode == 0, proc.stderr
    claims = jwt.decode(proc.stdout.strip(), keys.keys["EdDSA"].private.public_key(), algorithms=["EdDSA"])
    assert (claims["jti"], claims["iat"], claims["htu"]) == ("j-1", 1700000000, "http://h/x")
    hmac = next(p for alg, p in _private_key_files(keys, tmp_path) if alg == "HS256")
    for argv, code in ((["--key", str(hmac), "--url", "http://h/"], 4),
                       (["--key", str(path), "--url", "/relative"], 2),
                       (["--key", str(path)], 2),
                       (["--key", str(path), "--url", "http://h/", "--alg", "ES256"], 4)):
        proc = run_cli(cli, "dpop", *argv)
        assert (proc.returncode, proc.stdout) == (code, ""), (argv, proc.stderr)
    proc = run_cli(cli, "token", "--key", str(path), "--dpop-key", str(hmac))
    assert proc.returncode == 4 and "asymmetric" in proc.stderr, proc.stderr


def test_the_readme_dpop_commands_run_as_written(cli, demo_envoy, tmp_path):
    """The README's DPoP examples (tokens and proofs from the CLI, keys from openssl), run by
    bash with curl against Envoy running envoy/envoy.yaml: each answers what its comment says."""
    for tool in ("curl", "bash", "openssl"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is needed to run the README's DPoP commands", pytrace=False)
    _, port, _ = demo_envoy
    mint, _ = _readme_blocks("### Try it by hand")
    (dpop,) = _readme_blocks("### DPoP-bound tokens")
    mint = mint[mint.index("mint() {"):mint.index("TOKEN=")]
    script, expected = [mint], []
    for line in dpop.splitlines():
        if line.startswith("curl "):
            comment = line.split("  #", 1)[1].split()
            expected.append((int(comment[0]), comment[1] if len(comment) > 1 else None))
            line = line.split("  #")[0].replace("curl -i", "curl -s -w ' %{http_code}\\n'")
        script.append(line)
    assert len(expected) == 4
    script = ("\n".join(script).replace("target/cli/jwt-guard", str(cli))
              .replace("localhost:10000", f"127.0.0.1:{port}")
              .replace("client.pem", str(tmp_path / "client.pem")).replace("thief.pem", str(tmp_path / "thief.pem")))
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    parts = re.split(r" (\d{3})\n", proc.stdout)  # body, status, body, status, ..., ""
    answers = [(int(status), json.loads(body).get("reason") if status != "200" else None)
               for body, status in zip(parts[0::2], parts[1::2])]
    assert answers == expected, (script, proc.stdout)
