#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora (fuzz/seeds/<target>/) and dictionaries (fuzz/dict/)
from what the repository already holds: the PyJWT-minted unit-test tokens
(tests/fixtures/tokens.json), the shipped configurations (envoy/*.yaml), the examples of
docs/configuration.md, and the attack corpus's ideas (tests/integration/test_attacks.py), written
as the targets' input formats; the DPoP proof target's come from fuzz/dpop_seeds.py. Standard library only; deterministic, so the committed seeds are
its output:

    python3 fuzz/seeds.py

Regression inputs (fuzz/seeds/<target>/regression-*) are kept by hand, never rewritten here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from pathlib import Path

import dpop_seeds  # fuzz/dpop_seeds.py (this script's folder is on sys.path)

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "fuzz" / "seeds"
DICTS = ROOT / "fuzz" / "dict"

FIX = json.loads((ROOT / "tests/fixtures/tokens.json").read_text())
NOW, ISS, AUD = FIX["now"], FIX["issuer"], FIX["audience"]
TOKENS: dict[str, str] = FIX["tokens"]
HS = {"HS256": b"0" * 32, "HS384": b"1" * 48, "HS512": b"2" * 64}


def b64(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs(alg: str, header: str, claims: str) -> str:
    """A token over exactly these bytes, signed with the fixtures' HMAC secret."""
    signing_input = f"{b64(header)}.{b64(claims)}"
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    mac = hmac.new(HS[alg], signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64(mac)}"


def compact(value) -> str:
    return json.dumps(value, separators=(",", ":"))


BASE = {"iss": ISS, "aud": AUD, "sub": "alice", "iat": NOW - 10, "exp": NOW + 600}


def write(target: str, seeds: dict[str, bytes]) -> None:
    folder = SEEDS / target
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():
        if not old.name.startswith("regression-"):
            old.unlink()
    for name, data in seeds.items():
        (folder / name).write_bytes(data)


def write_dict(target: str, words: list[str]) -> None:
    DICTS.mkdir(parents=True, exist_ok=True)
    lines = []
    for word in dict.fromkeys(words):
        escaped = "".join(c if 0x20 <= ord(c) < 0x7F and c not in '"\\' else f"\\x{ord(c):02x}" for c in word)
        lines.append(f'"{escaped}"')
    (DICTS / f"{target}.dict").write_text("\n".join(lines) + "\n")


# --------------------------------------------------------------------------- token

def token_seeds() -> dict[str, bytes]:
    seeds: dict[str, bytes] = {}
    later = b"\x00\x00"
    for name, token in sorted(TOKENS.items()):
        seeds[f"fixture-{name}"] = b"\x00" + later + token.encode()
    valid = TOKENS["valid_ES256"]
    header, payload, signature = valid.split(".")
    # An hour later (60 * 61 s): the cache's and a fresh check's answers must still agree.
    seeds["fixture-valid_ES256-later"] = b"\x00" + (60).to_bytes(2, "little") + valid.encode()
    attacks = {
        "alg-none": f"{b64(compact({'alg': 'none'}))}.{payload}.",
        "alg-None": f"{b64(compact({'alg': 'None', 'kid': 'es256'}))}.{payload}.",
        "stripped-signature": f"{header}.{payload}.",
        "jwe-five-parts": f"{header}.{payload}.{signature}.{signature}.{signature}",
        "padding": f"{header}=.{payload}.{signature}",
        "non-canonical-tail": f"{header}.{payload}.{signature[:-1]}{'B' if signature[-1] == 'A' else 'A'}",
        "standard-alphabet": f"{header}.{payload}.{signature.replace('-', '+').replace('_', '/')}",
        "hs-confusion": hs("HS256", compact({"alg": "HS256", "kid": "rs256"}), compact(BASE)),
        "crit": hs("HS256", compact({"alg": "HS256", "kid": "hs256", "crit": ["exp"]}), compact(BASE)),
        "b64-false": hs("HS256", compact({"alg": "HS256", "kid": "hs256", "b64": False}), compact(BASE)),
        "jku": hs("HS256", compact({"alg": "HS256", "kid": "hs256", "jku": "https://evil.example/jwks"}), compact(BASE)),
        "kid-injection": hs("HS256", compact({"alg": "HS256", "kid": "../../dev/null"}), compact(BASE)),
        "dup-sub": hs("HS256", '{"alg":"HS256","kid":"hs256"}', compact(BASE)[:-1] + ',"sub":"admin"}'),
        "big": hs("HS256", compact({"alg": "HS256", "kid": "hs256"}), compact({**BASE, "pad": "x" * 8200})),
    }
    for name, token in attacks.items():
        seeds[f"attack-{name}"] = b"\x00" + later + token.encode()
    # Signed mode: mode 1 (3 flips a signature bit), later, key byte, header, 0xff, claims.
    keys = {"HS256": (0, "hs256"), "HS384": (1, "hs384"), "HS512": (2, "hs512"),
            "ES256": (3, "fz-es256"), "EdDSA": (4, "fz-eddsa")}
    relative = f'{{"iss":"{ISS}","aud":"{AUD}","sub":"alice","iat":$now-10,"exp":$now+600}}'.encode()
    for alg, (index, kid) in keys.items():
        h = compact({"alg": alg, "kid": kid, "typ": "JWT"})
        seeds[f"signed-{alg}"] = b"\x01" + later + bytes([index]) + h.encode() + b"\xff" + relative
        seeds[f"signed-{alg}-no-kid"] = (b"\x01" + later + bytes([index]) + compact({"alg": alg}).encode()
                                          + b"\xff" + compact(BASE).encode())
        seeds[f"signed-{alg}-tampered"] = b"\x03" + later + bytes([index]) + h.encode() + b"\xff" + relative
    # Accepted by the second provider only (audience), judged again a minute later.
    seeds["signed-second-provider-later"] = (b"\x01" + (1).to_bytes(2, "little") + b"\x00"
                                             + compact({"alg": "HS256", "kid": "hs256"}).encode()
                                             + b"\xff" + f'{{"iss":"{ISS}","aud":"billing","exp":$now+600}}'.encode())
    h = compact({"alg": "HS256", "kid": "hs256"}).encode()
    variants = {
        "exp-float": {**BASE, "exp": NOW + 600.5},
        "exp-string": {**BASE, "exp": str(NOW + 600)},
        "exp-huge": {**BASE, "exp": 1e19},
        "nbf-future": {**BASE, "nbf": NOW + 3600},
        "aud-list": {**BASE, "aud": ["billing", AUD]},
        "other-issuer": {**BASE, "iss": "https://other.example"},
        "no-exp": {k: v for k, v in BASE.items() if k != "exp"},
        "lifetime": {**BASE, "exp": NOW + 200000},
        "nested": {**BASE, "ctx": {"a": [1, {"b": [True, None]}]}},
    }
    for name, claims in variants.items():
        seeds[f"signed-{name}"] = b"\x01" + later + b"\x00" + h + b"\xff" + compact(claims).encode()
    return seeds


# --------------------------------------------------------------------------- request

def request_seeds() -> dict[str, bytes]:
    es, admin, user = TOKENS["valid_ES256"], TOKENS["policy_admin"], TOKENS["policy_user"]
    other_claims = compact({**BASE, "iss": "https://other.example", "scope": "read"})
    lines = {
        "orders-bearer": [":method: GET", ":path: /orders", ":authority: api.example.com",
                          f"authorization: Bearer {user}", "@route_name orders"],
        "admin-allowed": [":method: POST", ":path: /admin/users", ":authority: api.example.com",
                          f"authorization: Bearer {admin}", "x-forwarded-for: 127.0.0.9",
                          "x-geo-country: CA", "@peer 127.0.0.1:4000"],
        "admin-cookie": [":method: GET", ":path: /admin", ":authority: x.admin.example.com",
                         f"cookie: a=1; session={admin}; b=2", "x-forwarded-for: 10.1.2.3"],
        "query": [":method: GET", f":path: /orders?x=1&access_token={es}&y=2", ":authority: api.example.com",
                  "@route_name orders"],
        "query-semicolon": [":method: GET", f":path: /x?a=1;ACCESS%5Ftoken={es}", ":authority: h"],
        "x-token": [":method: GET", ":path: /anything", ":authority: h", f"x-token: {es}"],
        "x-api-forwarded": [":method: GET", ":path: /orders", ":authority: h", f"x-api: token:{es}",
                            "@route_name orders"],
        "two-tokens": [":method: GET", ":path: /", ":authority: h", f"authorization: Bearer {es}",
                       f"cookie: session={user}"],
        "same-token-twice": [":method: GET", ":path: /", ":authority: h", f"authorization: bearer\t{es}",
                             f"cookie: SESSION =\"{es}\"", f"cookie: x=\xff; %73ession={es}"],
        "spoofed-identity": [":method: GET", ":path: /", ":authority: h", f"authorization: Bearer {es}",
                             "x-jwt-sub: root", "x-jwt-payload: e30", "x-jwt-guard-dry-run: 200 ok"],
        "dry-run": [":method: GET", ":path: /dry/x", ":authority: h", f"authorization: Bearer {user}",
                    "x-jwt-guard-dry-run: forged"],
        "bound-rule": [":method: GET", ":path: /whatever", ":authority: h", "cookie: auth=$T",
                       "@route_rule bound", "@header {\"alg\":\"HS256\",\"kid\":\"hs256\"}", f"@claims {other_claims}"],
        "unknown-bound-rule": [":method: GET", ":path: /", "@route_rule nope"],
        "anonymous": [":method: GET", ":path: /public/a", ":authority: h"],
        "anonymous-with-forged": [":method: GET", ":path: /public/a", f"authorization: Bearer {TOKENS['bad_signature']}"],
        "maybe-country": [":method: GET", ":path: /maybe", "x-geo-country: KP", "x-geo-country: US"],
        "disabled": [":method: GET", ":path: /healthz", "x-jwt-sub: root", f"authorization: Bearer {TOKENS['expired']}"],
        "minted-claims": [":method: GET", ":path: /admin", ":authority: api.example.com", "authorization: Bearer $T",
                          "x-forwarded-for: 127.0.0.1", "x-geo-country: US",
                          "@claims " + compact({**BASE, "roles": ["admin"], "scope": "orders:write", "tenant": "acme",
                                                "email_verified": True, "ip": "127.0.0.0/8", "sub": "a\nb",
                                                "realm_access": {"roles": ["ops", 7]}})],
        "later-expired": [":method: GET", ":path: /", f"authorization: Bearer {es}", "@later 700"],
        "later-second-provider": [":method: GET", ":path: /orders", ":authority: h", "authorization: Bearer $T",
                                  "@route_name orders", "@later 600",
                                  "@claims " + f'{{"iss":"{ISS}","aud":"billing","scope":"orders:read","exp":$now+900}}'],
        "ambiguous-host": [":method: GET", ":path: /admin", ":authority: api.example.com,evil", f"authorization: Bearer {admin}"],
        "empty-bearer": [":method: GET", ":path: /public", "authorization: Bearer"],
        "non-utf8": [":method: GET", ":path: /x?token=\xfe", "cookie: auth=\xff\xfe"],
    }
    return {name: "\n".join(ls).encode("latin-1") for name, ls in lines.items()}


# --------------------------------------------------------------------------- config

def yaml_json_blocks(path: Path) -> list[str]:
    """The JSON under each `value: |` of an Envoy YAML file."""
    blocks, lines = [], path.read_text().splitlines()
    for index, line in enumerate(lines):
        if line.rstrip().endswith("value: |"):
            indent = len(line) - len(line.lstrip()) + 1
            body = []
            for follow in lines[index + 1:]:
                if follow.strip() and len(follow) - len(follow.lstrip()) < indent:
                    break
                body.append(follow)
            blocks.append("\n".join(body))
    return blocks


def readme_configs() -> list[str]:
    """The configurations of docs/configuration.md (once the README's: the seeds keep that name)."""
    text = (ROOT / "docs" / "configuration.md").read_text()
    found = []
    for block in re.findall(r"```json\n(.*?)```", text, flags=re.S):
        if '"rules"' in block:
            found.append(block)
    return found


def config_seeds() -> dict[str, bytes]:
    seeds: dict[str, bytes] = {}
    for path in sorted((ROOT / "envoy").glob("*.yaml")):
        for index, block in enumerate(yaml_json_blocks(path)):
            seeds[f"envoy-{path.stem}-{index}"] = block.encode()
    es_key = next(k for k in FIX["jwks"]["keys"] if k["kid"] == "es256")
    for index, block in enumerate(readme_configs()):
        seeds[f"readme-{index}"] = block.encode()
        real = block.replace('"x": "...", "y": "..."', f'"x": "{es_key["x"]}", "y": "{es_key["y"]}"')
        seeds[f"readme-{index}-real-key"] = real.encode()
    request = (ROOT / "fuzz/configs/request.json").read_text()
    small_jwks = {"keys": [es_key, {"kty": "oct", "k": b64(HS["HS256"]), "kid": "hs256"}]}
    seeds["fuzz-request"] = (request.replace('"$FIXTURE_JWKS"', compact(small_jwks))
                             .replace("$ISSUER", ISS).encode())
    small = {
        "minimal-disabled": {"rules": [{"match": {"prefix": "/"}, "disabled": True}]},
        "jwks-as-string": {"providers": {"p": {"issuer": ISS, "jwks": compact(small_jwks)}},
                           "rules": [{"match": {}, "provider": "p"}]},
        "remote-discovery": {"providers": {"p": {"issuer": ISS, "remote_jwks": {"cluster": "idp", "discovery": True,
                                                                               "refresh_seconds": 60, "max_stale_seconds": 600}}},
                             "rules": [{"match": {"prefix": "/"}}], "signature_backend": "host"},
        "remote-uri": {"providers": {"p": {"issuer": ISS, "jwks": small_jwks,
                                           "remote_jwks": {"cluster": "idp", "uri": "https://idp.example.com/jwks",
                                                           "timeout_ms": 500, "min_refetch_seconds": 5}}},
                       "rules": [{"name": "r", "provider": "p"}, {"match": {"hosts": ["*.example.com"]}, "providers": ["p"]}],
                       "token_cache_size": 0, "dry_run": True},
        "bad-provider": {"providers": {"p": {"issuer": ISS, "jwks": small_jwks}},
                         "rules": [{"match": {"prefix": "/"}, "provider": "q"}]},
        "unknown-field": {"rules": [{"match": {"prefix": "/"}, "disabled": True, "typo": 1}]},
        "xff": {"client_ip": {"from": "xff", "trusted_hops": 2}, "providers": {"p": {"issuer": ISS, "jwks": small_jwks}},
                "rules": [{"match": {"prefix": "/"}, "source_ips": {"allow": ["::/0"], "deny": ["10.0.0.0/8"]},
                           "bind_ip_claim": "net.ip"}]},
    }
    for name, value in small.items():
        seeds[f"small-{name}"] = json.dumps(value, indent=1).encode()
    return seeds


# --------------------------------------------------------------------------- jwks

def jwks_seeds() -> dict[str, bytes]:
    keys = FIX["jwks"]["keys"]
    oct = lambda n, kid: {"kty": "oct", "k": b64(bytes([n]) * 32), "kid": kid}
    seeds = {
        "fixture": json.dumps(FIX["jwks"]).encode(),
        "keycloak-like": json.dumps({"keys": [
            {**keys[0], "kid": "sig-1", "x5c": ["MIIB"], "x5t": "abc", "x5t#S256": "def"},
            {"kty": "RSA", "use": "enc", "alg": "RSA-OAEP", "kid": "enc-1", "n": keys[0]["n"], "e": "AQAB"},
            next(k for k in keys if k["kid"] == "es256"),
        ]}).encode(),
        "skips": json.dumps({"keys": [
            {"kty": "EC", "crv": "P-521", "x": "a", "y": "b", "kid": "p521"},
            oct(1, "a"), oct(2, "a"), {"kty": "oct", "k": "c2hvcnQ"}, {"kty": "OKP", "crv": "X25519", "x": "AA"},
            next(k for k in keys if k["kid"] == "eddsa"), 7, None,
        ]}).encode(),
        "too-many": json.dumps({"keys": [oct(n % 256, f"k{n}") for n in range(70)]}).encode(),
        "as-string": json.dumps(json.dumps({"keys": [oct(3, "s")]})).encode(),
        "discovery": json.dumps({"issuer": "https://idp.example.com/realms/a/",
                                 "jwks_uri": "https://idp.example.com/realms/a/protocol/openid-connect/certs",
                                 "token_endpoint": "https://idp.example.com/t"}).encode(),
        "discovery-other-issuer": json.dumps({"issuer": "https://evil.example",
                                              "jwks_uri": "https://evil.example/certs"}).encode(),
        "discovery-query": json.dumps({"jwks_uri": "http://idp:8080?x=1"}).encode(),
        "shared-state": json.dumps({"lease_until": 5, "last_attempt": 4, "failures": 2, "last_ok": 3,
                                    "jwks_uri": "https://idp/x"}).encode(),
        "rsa-odd": json.dumps({"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB", "kid": "tiny"},
                                        {"kty": "RSA", "alg": "PS512", "n": keys[0]["n"], "e": "Aw"}]}).encode(),
    }
    return seeds


# --------------------------------------------------------------------------- differential

def differential_seeds() -> dict[str, bytes]:
    base = '{"iss":"https://idp.example.com","aud":"orders","sub":"alice","iat":$now-10,"exp":$now+600}'
    seeds: dict[str, str] = {}
    for alg in ["HS256", "HS384", "HS512", "ES256", "EdDSA"]:
        seeds[f"{alg}-valid"] = f'{alg}\n{{"alg":"{alg}","typ":"JWT"}}\n{base}'
        seeds[f"{alg}-kid"] = f'{alg}\n{{"alg":"{alg}","kid":"k1"}}\n{base}'
        seeds[f"{alg}-tampered"] = f'{alg} tamper=9\n{{"alg":"{alg}"}}\n{base}'
    cases = {
        "expired": '{"iss":"https://idp.example.com","aud":"orders","exp":$now-61}',
        "exp-boundary": '{"iss":"https://idp.example.com","aud":"orders","exp":$now-60}',
        "exp-float": '{"iss":"https://idp.example.com","aud":"orders","exp":$now+0.5}',
        "exp-string": '{"iss":"https://idp.example.com","aud":"orders","exp":"$now"}',
        "exp-negative": '{"iss":"https://idp.example.com","aud":"orders","exp":-1}',
        "nbf": '{"iss":"https://idp.example.com","aud":"orders","exp":$now+600,"nbf":$now+61}',
        "iat-future": '{"iss":"https://idp.example.com","aud":"orders","exp":$now+6000,"iat":$now+3600}',
        "aud-list": '{"iss":"https://idp.example.com","aud":["x","orders"],"exp":$now+600}',
        "aud-empty-list": '{"iss":"https://idp.example.com","aud":[],"exp":$now+600}',
        "aud-mixed": '{"iss":"https://idp.example.com","aud":["orders",1],"exp":$now+600}',
        "iss-list": '{"iss":["https://idp.example.com"],"aud":"orders","exp":$now+600}',
        "no-iss": '{"aud":"orders","exp":$now+600}',
        "sub-number": '{"iss":"https://idp.example.com","aud":"orders","exp":$now+600,"sub":7}',
        "dup-exp": '{"iss":"https://idp.example.com","aud":"orders","exp":$now+600,"exp":$now-600}',
        "dup-role": '{"iss":"https://idp.example.com","aud":"orders","exp":$now+600,"r":{"a":1,"a":2}}',
        "array": '[$now+600,0,"s","https://idp.example.com","orders"]',
        "unicode": '{"iss":"https://idp.example.com","aud":"orders","exp":$now+600,"n":"\\ud800"}',
    }
    for name, claims in cases.items():
        seeds[f"claims-{name}"] = f'HS256\n{{"alg":"HS256"}}\n{claims}'
    headers = {
        "crit": '{"alg":"HS256","crit":["exp"]}',
        "b64": '{"alg":"HS256","b64":false}',
        "enc": '{"alg":"HS256","enc":"A256GCM"}',
        "kid-other": '{"alg":"HS256","kid":"k2"}',
        "jwk-string": '{"alg":"HS256","jwk":"x"}',
        "nonce-number": '{"alg":"HS256","nonce":5}',
        "typ-number": '{"alg":"HS256","typ":5}',
        "dup-alg": '{"alg":"none","alg":"HS256"}',
        "alg-none": '{"alg":"none"}',
        "alg-ES256": '{"alg":"ES256"}',
    }
    for name, header in headers.items():
        seeds[f"header-{name}"] = f"HS256\n{header}\n{base}"
    # Raw tokens hold fixed times: issued in 2001, expiring in 2096.
    valid = hs("HS256", '{"alg":"HS256"}', base.replace("$now-10", "1000000000").replace("$now+600", "4000000000"))
    h, p, s = valid.split(".")
    seeds["raw-padding"] = f"HS256 raw\n{h}.{p}=.{s}"
    seeds["raw-four-parts"] = f"HS256 raw\n{h}.{p}.{s}.{s}"
    seeds["raw-standard-alphabet"] = f"HS256 raw\n{h}.{p}.{s.replace('-', '+').replace('_', '/')}"
    return {name: text.encode() for name, text in seeds.items()}


def main() -> None:
    write("token", token_seeds())
    write("request", request_seeds())
    write("config", config_seeds())
    write("jwks", jwks_seeds())
    write("differential", differential_seeds())
    write("dpop_proof", dpop_seeds.dpop_seeds(NOW))
    write_dict("dpop_proof", dpop_seeds.DICT)
    json_words = ['"alg"', '"kid"', '"typ"', '"crit"', '"b64"', '"enc"', '"jwk"', '"jku"', '"x5c"', '"exp"',
                  '"nbf"', '"iat"', '"iss"', '"aud"', '"sub"', '"jti"', "null", "true", "false", "1e9",
                  "-0", "0.5", "[]", "{}", '""', "\\u0000", '"HS256"', '"ES256"', '"EdDSA"', '"none"']
    write_dict("token", json_words + ["eyJ", "eyJhbGciOiJ", ".", "=", "+", "/", "\xff"])
    write_dict("differential", json_words + ["$now", "$now+", "$now-", " tamper=", " raw", "\n",
                                             ISS, '"orders"', '"k1"', '"k2"'])
    write_dict("request", ["\n", ":path: ", ":method: ", ":authority: ", "authorization: ", "Bearer ",
                           "bearer\t", "cookie: ", "session=", "auth=", "; ", ", ", "x-token: ", "x-api: ",
                           "Token:", "?access_token=", "&token=", ";", "%73", "%", "+", "\"",
                           "x-forwarded-for: ", "x-geo-country: ", "x-jwt-sub: ", "x-jwt-guard-dry-run: ",
                           "@peer ", "@route_rule ", "@route_name ", "@later ", "@claims ", "@header ", "$T",
                           "/admin", "/public", "/healthz", "/orders", "/dry", "/maybe", "orders", "bound",
                           "api.example.com", "127.0.0.1", "::1", "10.9.0.1"] + json_words)
    config_words = ["realm", "providers", "rules", "roles_claim", "scopes_claim", "client_ip", "from",
                    "trusted_hops", "geo", "country_header", "country_claim", "dry_run", "token_cache_size",
                    "signature_backend", "outcome_in_filter_state", "issuer", "audiences", "jwks",
                    "remote_jwks", "cluster", "uri", "refresh_seconds", "timeout_ms", "min_refetch_seconds",
                    "max_stale_seconds", "discovery", "discovery_uri", "from_headers", "name",
                    "value_prefix", "from_params", "from_cookies", "clock_skew_seconds",
                    "max_lifetime_seconds", "require_expiration", "forward", "claim_to_headers", "claim",
                    "header", "forward_payload_header", "match", "prefix", "path", "methods", "hosts",
                    "route_name", "provider", "allow_anonymous", "disabled", "roles", "scopes", "any",
                    "all", "claims", "values", "source_ips", "allow", "deny", "countries",
                    "bind_ip_claim", "kty", "crv", "x", "y", "n", "e", "k", "use", "P-256", "oct", "RSA",
                    "OKP", "Ed25519", "auto", "host", "pure_rust", "peer", "xff", "*.", "/", "::/0"]
    write_dict("config", [f'"{w}"' for w in config_words] + ["{", "}", "[", "]", ":", ",", "null", "true",
                                                               "18446744073709551616", "-1", "0"])
    write_dict("jwks", [f'"{w}"' for w in ["keys", "kty", "kid", "alg", "use", "sig", "enc", "crv", "x", "y",
                                           "n", "e", "k", "EC", "RSA", "OKP", "oct", "P-256", "P-384", "Ed25519",
                                           "RS256", "PS512", "ES384", "HS512", "issuer", "jwks_uri",
                                           "lease_until", "last_ok", "failures", "https://", "http://", "AQAB"]])


if __name__ == "__main__":
    main()
