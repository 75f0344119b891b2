"""DPoP (RFC 9449) for the bench: one ES256 proof key, per token algorithm a token bound to it
(`cnf.jkt`, the RFC 7638 thumbprint of the proof key) and a file of pre-minted proofs.

"DPoP: cached token + a fresh proof every request": every request carries that one token
(`Authorization: DPoP <token>`, a token cache hit after the first) and the next proof of the
file, each with its own `jti`, so jwt-guard verifies a proof signature, checks method, URI,
age and `ath`, and records the `jti` in its replay store on every request. A proof is never
sent twice: the wrk script reads the file from the listener's next unused line on (wrk.py),
and a run that would need more proofs than the file holds fails the bench (bench.py) rather
than measuring replays.

Every proof names the same `htu`, `http://DPOP_HOST/`: the DPoP requests carry `Host:
DPOP_HOST` (jwt-guard builds the request URI from `:scheme`, `:authority` and the path), so
one file serves the Wasm and the module listener of an algorithm alike (their replay stores
are separate: shared data in V8, process memory in the module). The files of two algorithms
never share a `jti` (a prefix drawn per file): the module keeps one store for all listeners.

Proofs are minted with `cryptography` (not by the code under test), in parallel, and kept in
build/bench/dpop/ for the next run while their `iat` leaves enough of MAX_AGE_S for it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from .tokens import SigningKey, load_or_create_key, mint

DPOP_HOST = "dpop.bench.test"
HTU = f"http://{DPOP_HOST}/"
PROOF_ALG = "ES256"
MAX_AGE_S = 3600  # the most jwt-guard accepts: proofs minted once serve a whole `make bench`
# Entries of the replay store: the module's store is shared by the ES256 and the RS256
# listener, so it holds the proofs of both for the whole run (every entry stays MAX_AGE_S).
# At 16 entries a bucket, 4 Mi entries (256 Ki buckets) keep the fullest bucket far from 16
# with a million proofs (a full bucket refuses: dpop_replay_unavailable would fail the bench).
REPLAY_CAPACITY = 4 * 1024 * 1024
CONFIG = {"max_age_seconds": MAX_AGE_S, "algorithms": [PROOF_ALG], "replay_capacity": REPLAY_CAPACITY}
# Proofs a listener may use per second of load: above every rate a DPoP row reached here (one
# ES256 signature a request, about 10,000/s on one worker), with room for a faster machine.
# BENCH_DPOP_RATE raises it; the bench says so when a run ran out.
DEFAULT_RATE = 15_000
CHUNK = 5_000


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def public_jwk(private: ec.EllipticCurvePrivateKey) -> dict:
    numbers = private.public_key().public_numbers()
    return {"kty": "EC", "crv": "P-256", "x": b64(numbers.x.to_bytes(32, "big")),
            "y": b64(numbers.y.to_bytes(32, "big"))}


def thumbprint(jwk: dict) -> str:
    """RFC 7638: SHA-256 of the required members, sorted, without whitespace."""
    required = {k: jwk[k] for k in ("crv", "kty", "x", "y")}
    return b64(hashlib.sha256(json.dumps(required, sort_keys=True, separators=(",", ":")).encode()).digest())


def token_hash(token: str) -> str:
    return b64(hashlib.sha256(token.encode()).digest())


def proof(private: ec.EllipticCurvePrivateKey, jti: str, iat: int, ath: str, *, htu: str = HTU) -> str:
    header = {"typ": "dpop+jwt", "alg": PROOF_ALG, "jwk": public_jwk(private)}
    claims = {"jti": jti, "htm": "GET", "htu": htu, "iat": iat, "ath": ath}
    signing_input = ".".join(b64(json.dumps(x, separators=(",", ":")).encode()) for x in (header, claims))
    r, s = decode_dss_signature(private.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    return f"{signing_input}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def _mint_chunk(pem: bytes, prefix: str, start: int, count: int, iat: int, ath: str) -> list[str]:
    private = serialization.load_pem_private_key(pem, password=None)
    return [proof(private, f"{prefix}-{i:09d}", iat, ath) for i in range(start, start + count)]


@dataclass
class DpopPool:
    """One algorithm's bound token and its proofs (`proofs_path`, one a line, all one length,
    so the wrk script seeks to the listener's next line)."""

    alg: str
    token: str
    token_path: Path
    proofs_path: Path
    count: int
    probe: str  # a valid proof kept out of the file: the checks send it twice (the second: a replay)
    foreign_probe: str  # a valid proof by another key than the token's cnf.jkt
    minted: int
    mint_seconds: float


def load_or_mint(key: SigningKey, need: int, reserve_s: int, out_dir: Path) -> DpopPool:
    """The pool for tokens of `key`: read back when it holds `need` proofs for this token and
    their `iat` stays within MAX_AGE_S for `reserve_s` more seconds, else minted again."""
    out_dir.mkdir(parents=True, exist_ok=True)
    proof_key = load_or_create_key(PROOF_ALG, out_dir / "key").private
    jkt = thumbprint(public_jwk(proof_key))
    meta_path = out_dir / f"{key.kid}.json"
    token_path, proofs_path = out_dir / f"{key.kid}.token.txt", out_dir / f"{key.kid}.proofs.txt"
    now = int(time.time())
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    reusable = (meta.get("jkt") == jkt and meta.get("count", 0) >= need and proofs_path.exists()
                and meta.get("iat", 0) + MAX_AGE_S - reserve_s > now)
    minted, t0 = 0, time.monotonic()
    if reusable:
        token = meta["token"]
    else:
        token = mint(key, "dpop-user", now, cnf={"jkt": jkt})
        pem = proof_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())
        prefix, ath = secrets.token_hex(6), token_hash(token)
        with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            chunks = pool.map(_mint_chunk, *zip(*[(pem, prefix, s, min(CHUNK, need - s), now, ath)
                                                   for s in range(0, need, CHUNK)]))
            lines = [p for chunk in chunks for p in chunk]
        if len({len(p) for p in lines}) != 1:
            raise RuntimeError("DPoP proofs of different lengths: the wrk script could not seek")
        proofs_path.write_text("\n".join(lines) + "\n")
        token_path.write_text(token + "\n")
        meta = {"kid": key.kid, "jkt": jkt, "iat": now, "count": need, "prefix": prefix, "token": token}
        meta_path.write_text(json.dumps(meta) + "\n")
        minted = need
    probe_iat = int(time.time())
    return DpopPool(
        key.alg, token, token_path, proofs_path, meta["count"],
        probe=proof(proof_key, f"probe-{secrets.token_hex(8)}", probe_iat, token_hash(token)),
        foreign_probe=proof(ec.generate_private_key(ec.SECP256R1()), f"probe-{secrets.token_hex(8)}",
                            probe_iat, token_hash(token)),
        minted=minted, mint_seconds=time.monotonic() - t0)
