"""docs/comparison.md's first table, measured: every row is a behaviour where jwt-guard and
Envoy's own `jwt_authn` answer the same input differently (or where a user would expect them to
differ), and this module sends that input to both, in one real Envoy with two listeners per
configuration: `authn-*` runs Envoy's jwt_authn filter, `guard-*` runs jwt-guard
(JWTG_RUNTIME: the .wasm or the native module). Tokens are minted by PyJWT (tokens.py).

The table and this module cannot drift apart: the table's first column is a row key, each key
has exactly one measurement here (ROWS), and the row's jwt-guard and jwt_authn cells must be,
word for word, what the measurement renders from the two answers: `401 `reason`` for
jwt-guard (its JSON body's reason), `401 "text"` for jwt_authn (its plain-text body), `200` for
a request that reached the upstream, and for rows about what reaches the upstream, what the
upstream received. A row without a measurement, or a measurement without a row, fails.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from conftest import start_stack
from harness import REPO_ROOT, Response, Stack, listener, request, wasm_filter
from tokens import AUDIENCE, DROP, ISSUER, KeySet, b64url, b64url_json, sign_raw

DOC = REPO_ROOT / "docs" / "comparison.md"
CLI = REPO_ROOT / "target" / "cli" / "jwt-guard"
JWT_AUTHN_TYPE = "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication"
OTHER_ISSUER = "https://other-idp.example.net"
PATH = "/api/orders"  # every rule covers /api
UNMATCHED = "/elsewhere"  # no rule of either filter covers it

# --------------------------------------------------------------------------- the table


def table() -> dict[str, list[str]]:
    """{row key: [input, jwt-guard, jwt_authn, why]} of the first table of docs/comparison.md
    (the one before the first `## ` heading)."""
    text = DOC.read_text()
    head = text.split("\n## ", 1)[0]
    lines = [ln for ln in head.splitlines() if ln.startswith("|")]
    assert len(lines) > 2, f"{DOC}: no table before the first ## heading"
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header == ["", "input", "jwt-guard", "`jwt_authn` (Envoy 1.40)", "why jwt-guard answers so"], header
    rows: dict[str, list[str]] = {}
    for line in lines[2:]:
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
        assert len(cells) == 5, f"{DOC}: row with {len(cells)} cells: {line}"
        assert cells[0] not in rows, f"{DOC}: row {cells[0]!r} twice"
        rows[cells[0]] = [c.replace("\\|", "|") for c in cells[1:]]
    return rows


# --------------------------------------------------------------------------- answers


def guard_answer(resp: Response) -> str:
    """jwt-guard's answer: `200` (reached the upstream) or the status and the body's reason."""
    if resp.status == 200:
        return "200"
    body = resp.json()
    assert body["status"] == resp.status, resp
    return f"{resp.status} `{body['reason']}`"


def authn_answer(resp: Response) -> str:
    """jwt_authn's answer: `200` or the status and its plain-text body."""
    if resp.status == 200:
        return "200"
    return f'{resp.status} "{resp.body.decode().strip()}"'


def cases(answers: list[tuple[str, str]]) -> str:
    """Several inputs of one row: `(a) ...; (b) ...` in the order of the input cell."""
    if len(answers) == 1:
        return answers[0][1]
    return "; ".join(f"({label}) {answer}" for label, answer in answers)


# --------------------------------------------------------------------------- configurations


@dataclass
class Pair:
    """One configuration, as jwt_authn and jwt-guard spell it: listeners authn-<name> and
    guard-<name> of the module's Envoy."""

    name: str
    authn: dict  # the JwtAuthentication message
    guard: dict  # the jwt-guard configuration


def authn_provider(jwks: dict, **fields: Any) -> dict:
    provider = {"issuer": ISSUER, "audiences": [AUDIENCE], "local_jwks": {"inline_string": json.dumps(jwks)}}
    provider.update(fields)
    return {k: v for k, v in provider.items() if v is not None}


def guard_provider(jwks: dict, **fields: Any) -> dict:
    provider = {"issuer": ISSUER, "audiences": [AUDIENCE], "jwks": jwks}
    provider.update(fields)
    return provider


def pair(name: str, jwks: dict, authn_fields: dict | None = None, guard_fields: dict | None = None) -> Pair:
    """Provider `p` over `jwks`, required on /api by both; nothing else configured, so each
    filter's own defaults apply unless the fields say otherwise."""
    return Pair(
        name,
        {"providers": {"p": authn_provider(jwks, **(authn_fields or {}))},
         "rules": [{"match": {"prefix": "/api"}, "requires": {"provider_name": "p"}}]},
        {"realm": "api", "providers": {"p": guard_provider(jwks, **(guard_fields or {}))},
         "rules": [{"match": {"prefix": "/api"}, "provider": "p"}]},
    )


# The same three locations, spelled alike by both filters.
LOCATIONS = {"from_headers": [{"name": "authorization", "value_prefix": "Bearer "}],
             "from_params": ["access_token"], "from_cookies": ["session"]}


@dataclass
class Keys:
    keys: KeySet
    kid_less: Any  # P-256 key published without kid (and without alg)
    named: list[Any]  # four P-256 keys published with kids n1..n4


def es_jwk(private: Any, kid: str | None) -> dict:
    jwk = jwt.algorithms.ECAlgorithm.to_jwk(private.public_key(), as_dict=True)
    jwk.pop("key_ops", None)
    if kid:
        jwk["kid"] = kid
    return jwk


def pairs(k: Keys) -> list[Pair]:
    es = k.keys.jwks(["ES256"])
    rsa_jwk = {key: v for key, v in k.keys.keys["RS256"].jwk.items() if key not in ("alg", "kid")}
    kid_set = {"keys": [es_jwk(k.kid_less, None)] + [es_jwk(p, f"n{i + 1}") for i, p in enumerate(k.named)]}
    return [
        pair("defaults", es),
        pair("no-issuer", es, authn_fields={"issuer": None}),
        pair("locations", es, LOCATIONS, LOCATIONS),
        pair("rsa-no-alg", {"keys": [rsa_jwk]}),
        pair("kid", kid_set),
        optional_token(es),
    ]


def optional_token(jwks: dict) -> Pair:
    """A token is checked when there is one, and a request without one passes: jwt_authn's
    `allow_missing` (what Istio's RequestAuthentication generates), jwt-guard's `allow_anonymous`."""
    return Pair(
        "optional",
        {"providers": {"p": authn_provider(jwks, **LOCATIONS)},
         "rules": [{"match": {"prefix": "/api"},
                    "requires": {"requires_any": {"requirements": [{"provider_name": "p"}, {"allow_missing": {}}]}}}]},
        {"realm": "api", "providers": {"p": guard_provider(jwks, **LOCATIONS)},
         "rules": [{"match": {"prefix": "/api"}, "provider": "p", "allow_anonymous": True}]},
    )


@pytest.fixture(scope="module")
def k(keys: KeySet) -> Keys:
    return Keys(keys, ec.generate_private_key(ec.SECP256R1()),
                [ec.generate_private_key(ec.SECP256R1()) for _ in range(4)])


@pytest.fixture(scope="module")
def stack(request: pytest.FixtureRequest, upstream, wasm: str, k: Keys) -> Stack:
    listeners = []
    for p in pairs(k):
        authn_filter = {"name": "envoy.filters.http.jwt_authn", "typed_config": {"@type": JWT_AUTHN_TYPE, **p.authn}}
        listeners.append(listener(f"authn-{p.name}", http_filters=[authn_filter]))
        listeners.append(listener(f"guard-{p.name}", http_filters=[wasm_filter(p.guard)]))
    return start_stack(request, upstream, "comparison", listeners)


@dataclass
class Both:
    """Sends one request to both listeners of a configuration."""

    stack: Stack
    upstream: Any
    name: str

    def send(self, side: str, path: str = PATH, token: str | None = None, where: str = "header",
             headers: list[tuple[str, str]] | None = None) -> Response:
        hdrs = list(headers or [])
        if token is not None:
            if where == "header":
                hdrs.append(("authorization", f"Bearer {token}"))
            elif where == "param":
                path += ("&" if "?" in path else "?") + f"access_token={token}"
            elif where == "cookie":
                hdrs.append(("cookie", f"session={token}"))
            else:
                raise ValueError(where)
        return request(self.stack.ports[f"{side}-{self.name}"], path, headers=hdrs)

    def answers(self, **kw: Any) -> tuple[str, str]:
        return guard_answer(self.send("guard", **kw)), authn_answer(self.send("authn", **kw))

    def seen(self, side: str, **kw: Any) -> tuple[int, dict]:
        """Status, and what the upstream received ({} when the request did not reach it)."""
        before = self.upstream.count
        resp = self.send(side, **kw)
        if resp.status != 200:
            return resp.status, {}
        assert self.upstream.count == before + 1
        echoed = json.loads(resp.body)
        return resp.status, echoed


def rows_of(labelled: list[tuple[str, Callable[[], tuple[str, str]]]]) -> tuple[str, str]:
    """Runs labelled inputs and renders both columns."""
    results = [(label, f()) for label, f in labelled]
    return (cases([(label, r[0]) for label, r in results]),
            cases([(label, r[1]) for label, r in results]))


# --------------------------------------------------------------------------- tokens


def padded(segment: str) -> str:
    return segment + "=" * (-len(segment) % 4)


def sign_segments(header: str, payload: str, key: Any, alg: str = "ES256") -> str:
    """A JWS over the given (already encoded) segments, whatever their spelling."""
    algo = jwt.get_algorithm_by_name(alg)
    sig = algo.sign(f"{header}.{payload}".encode(), algo.prepare_key(key))
    return f"{header}.{payload}.{b64url(sig)}"


def claims(k: Keys, **over: Any) -> dict:
    return k.keys.claims(**over)


# --------------------------------------------------------------------------- rows


def row_iss_required(b: Callable[[str], Both], k: Keys) -> tuple[str, str]:
    config = json.loads(json.dumps(next(p for p in pairs(k) if p.name == "no-issuer").guard))
    del config["providers"]["p"]["issuer"]
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "no-issuer.json"
        src.write_text(json.dumps(config))
        check = subprocess.run([str(CLI), "check", str(src)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 1, check
    field = re.search(r"invalid configuration: (\S+): missing field `issuer`", check.stderr)
    assert field, check.stderr
    both = b("no-issuer")
    other = k.keys.mint("ES256", iss=OTHER_ISSUER)
    none = sign_raw(json.dumps({"alg": "ES256", "kid": "k-ES256"}).encode(),
                    json.dumps({k_: v for k_, v in claims(k).items() if k_ != "iss"}).encode(),
                    k.keys.keys["ES256"].private, "ES256")
    g, a = rows_of([("a", lambda: both.answers(token=other)), ("b", lambda: both.answers(token=none))])
    return f"no `issuer`: configuration refused (`{field.group(1)}`); with one: {g}", a


def row_check_order(b: Callable[[str], Both], k: Keys) -> tuple[str, str]:
    both = b("defaults")
    now = int(time.time())
    rogue = k.keys.rogue_p256
    expired = k.keys.mint("ES256", key=rogue, iat=now - 7200, exp=now - 3600)
    wrong_aud = k.keys.mint("ES256", key=rogue, aud="someone-else")
    return rows_of([("a", lambda: both.answers(token=expired)), ("b", lambda: both.answers(token=wrong_aud))])


def row_audience(b: Callable[[str], Both], k: Keys) -> tuple[str, str]:
    both = b("defaults")
    other = k.keys.mint("ES256", aud="someone-else")
    none = k.keys.mint("ES256", aud=DROP)
    return rows_of([("a", lambda: both.answers(token=other)), ("b", lambda: both.answers(token=none))])


def row_base64(b: Callable[[str], Both], k: Keys) -> tuple[str, str]:
    both = b("defaults")
    key = k.keys.keys["ES256"].private
    header = b64url_json({"alg": "ES256", "kid": "k-ES256", "typ": "JWT"})
    body = claims(k)
    payload = b64url_json(body)
    while len(payload) % 4 == 0:  # make the payload need padding
        body["x"] = body.get("x", "") + "x"
        payload = b64url_json(body)
    with_padding = sign_segments(header, padded(payload), key)
    good = sign_segments(header, payload, key)
    h, p, s = good.split(".")
    # An ES256 signature is 64 bytes: 86 characters whose last one carries 4 unused bits.
    # Setting them changes the text, not the bytes.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(s[-1])
    assert last & 0b1111 == 0
    loose = f"{h}.{p}.{s[:-1]}{alphabet[last | 0b0001]}"
    assert base64.urlsafe_b64decode(padded(loose.split('.')[2])) == base64.urlsafe_b64decode(padded(s))
    return rows_of([("a", lambda: both.answers(token=with_padding)), ("b", lambda: both.answers(token=loose))])


def row_rsa_without_alg(b: Callable[[str], Both], k: Keys) -> tuple[str, str]:
    both = b("rsa-no-alg")
    labelled = [(alg, (lambda alg=alg: both.answers(token=k.keys.mint(alg, kid=None))))
                for alg in ("RS256", "RS384", "PS256")]
    return rows_of(labelled)


def row_two_tokens(b: Callable[[str], Both], k: Keys) -> tuple[str, str]:
    both = b("locations")
    one = k.keys.mint("ES256", sub="alice")
    two = k.keys.mint("ES256", sub="mallory")
    def send(side: str) -> Response:
        return both.send(side, token=one, headers=[("cookie", f"session={two}")])
    return guard_answer(send("guard")), authn_answer(send("authn"))


def row_same_token_twice(b: Callable[[str], Both], k: Keys) -> tuple[str, str]:
    both = b("locations")
    token = k.keys.mint("ES256")
    out = []
    for side in ("guard", "authn"):
        status, echoed = both.seen(side, path=f"{PATH}?access_token={token}", token=token)
        assert status == 200, (side, status)
        left = [w for w, there in (("header", "authorization" in echoed["headers"]),
                                  ("`?access_token=`", "access_token" in echoed["path"])) if there]
        out.append("200, both removed" if not left else f"200, {' and '.join(left)} kept")
    return out[0], out[1]


def row_spellings(b: Callable[[str], Both], k: Keys) -> tuple[str, str]:
    both = b("locations")
    t = k.keys.mint("ES256")
    spellings = [
        ("a", {"headers": [("authorization", f"bearer {t}")]}),
        ("b", {"headers": [("authorization", f"Bearer\t{t}")]}),
        ("c", {"headers": [("cookie", f"SESSION={t}")]}),
        ("d", {"path": f"{PATH}?ACCESS_TOKEN={t}"}),
    ]
    return rows_of([(label, (lambda kw=kw: both.answers(**kw))) for label, kw in spellings])


def row_optional_forged(b: Callable[[str], Both], k: Keys) -> tuple[str, str]:
    both = b("optional")
    forged = k.keys.mint("ES256", key=k.keys.rogue_p256)
    out = []
    for side in ("guard", "authn"):
        answers = []
        for header in (f"bearer {forged}", f"Bearer {forged}"):
            resp = both.send(side, headers=[("authorization", header)])
            answer = (guard_answer if side == "guard" else authn_answer)(resp)
            if resp.status == 200:
                received = json.loads(resp.body)["headers"].get("authorization", "")
                answer += ", the upstream gets the forged token" if forged in received else ", token removed"
            answers.append(answer)
        out.append(cases(list(zip("ab", answers))))
    return out[0], out[1]


def row_kid(b: Callable[[str], Both], k: Keys) -> tuple[str, str]:
    both = b("kid")
    body = claims(k)
    other_kid = jwt.encode(body, k.kid_less, algorithm="ES256", headers={"kid": "not-in-the-set"})
    fourth = jwt.encode(body, k.named[3], algorithm="ES256")
    return rows_of([("a", lambda: both.answers(token=other_kid)), ("b", lambda: both.answers(token=fourth))])


def row_forward(b: Callable[[str], Both], k: Keys) -> tuple[str, str]:
    both = b("locations")
    token = k.keys.mint("ES256")
    out = []
    for side in ("guard", "authn"):
        kept = []
        for where in ("header", "param", "cookie"):
            # Another query parameter and another cookie, which removing the token must keep.
            status, echoed = both.seen(side, path=f"{PATH}?keep=1", token=token, where=where,
                                       headers=[("cookie", "other=1")])
            assert status == 200, (side, where, status)
            cookie = echoed["headers"].get("cookie", "")
            there = {"header": "authorization" in echoed["headers"],
                     "param": "access_token" in echoed["path"],
                     "cookie": "session=" in cookie}[where]
            if side == "guard":
                assert "keep=1" in echoed["path"] and "other=1" in cookie, echoed
            kept.append(f"{where} {'kept' if there else 'removed'}")
        out.append(", ".join(kept))
    return out[0], out[1]


def row_default_locations(b: Callable[[str], Both], k: Keys) -> tuple[str, str]:
    both = b("defaults")
    token = k.keys.mint("ES256")
    return rows_of([("a", lambda: both.answers(token=token, where="header")),
                    ("b", lambda: both.answers(token=token, where="param"))])


def row_require_expiration(b: Callable[[str], Both], k: Keys) -> tuple[str, str]:
    both = b("defaults")
    return both.answers(token=k.keys.mint("ES256", exp=DROP))


def row_unmatched(b: Callable[[str], Both], k: Keys) -> tuple[str, str]:
    return b("defaults").answers(path=UNMATCHED)


def row_bodies(b: Callable[[str], Both], k: Keys) -> tuple[str, str]:
    both = b("defaults")
    out = []
    for side in ("guard", "authn"):
        resp = both.send(side)
        challenge = resp.all("www-authenticate")
        shown = "; ".join(f"`WWW-Authenticate: {re.sub(r'127.0.0.1:[0-9]+', 'HOST', c)}`" for c in challenge) \
            or "no `WWW-Authenticate`"
        out.append(f"{resp.status}, `{resp.header('content-type')}` `{resp.body.decode().strip()}`, {shown}")
    return out[0], out[1]


def row_crit_jwe(b: Callable[[str], Both], k: Keys) -> tuple[str, str]:
    both = b("defaults")
    key = k.keys.keys["ES256"].private
    crit = sign_raw(json.dumps({"alg": "ES256", "kid": "k-ES256", "crit": ["urn:example:ext"],
                                "urn:example:ext": True}).encode(),
                    json.dumps(claims(k)).encode(), key, "ES256")
    jwe = ".".join([b64url_json({"alg": "RSA-OAEP", "enc": "A256GCM", "kid": "k-ES256"}),
                    b64url(b"k" * 32), b64url(b"iv" * 6), b64url(b"ciphertext"), b64url(b"t" * 16)])
    return rows_of([("a", lambda: both.answers(token=crit)), ("b", lambda: both.answers(token=jwe))])


def at_one_second(send: Callable[[int], tuple[str, str]], attempts: int = 20) -> tuple[str, str]:
    """`send(now)` with `now` the current second, retried until both answers came within that
    second, so both filters judged the token at `now` (as test_time_boundaries.py does)."""
    for _ in range(attempts):
        t0 = time.time()
        now = int(t0)
        if t0 - now > 0.6:
            time.sleep(now + 1 - t0)
            continue
        answers = send(now)
        if int(time.time()) == now:
            return answers
    raise AssertionError(f"no pair of requests fitted in one second of the clock in {attempts} attempts")


def row_time(b: Callable[[str], Both], k: Keys) -> tuple[str, str]:
    both = b("defaults")
    now = int(time.time())
    iat_future = k.keys.mint("ES256", iat=now + 3600, exp=now + 7200)
    nbf_in_skew = k.keys.mint("ES256", nbf=now + 30)
    exp_in_skew = k.keys.mint("ES256", iat=now - 600, exp=now - 30)
    nbf_past_skew = k.keys.mint("ES256", nbf=now + 120)

    def exp_at_skew() -> tuple[str, str]:
        # exp + skew == now: the last second of the skew, as each filter counts it.
        return at_one_second(lambda at: both.answers(token=k.keys.mint("ES256", iat=at - 600, exp=at - 60)))

    return rows_of([("a", lambda: both.answers(token=iat_future)), ("b", lambda: both.answers(token=nbf_in_skew)),
                    ("c", lambda: both.answers(token=exp_in_skew)), ("d", lambda: both.answers(token=nbf_past_skew)),
                    ("e", exp_at_skew)])


def row_size(b: Callable[[str], Both], k: Keys) -> tuple[str, str]:
    both = b("defaults")
    token = k.keys.mint("ES256", pad="x" * 9000)
    assert 8192 < len(token) < 16384
    return both.answers(token=token)


def row_duplicate_members(b: Callable[[str], Both], k: Keys) -> tuple[str, str]:
    both = b("defaults")
    raw = json.dumps(claims(k))[:-1] + f', "iss": "{OTHER_ISSUER}"}}'
    token = sign_raw(json.dumps({"alg": "ES256", "kid": "k-ES256"}).encode(), raw.encode(),
                     k.keys.keys["ES256"].private, "ES256")
    return both.answers(token=token)


ROWS: dict[str, Callable[[Callable[[str], Both], Keys], tuple[str, str]]] = {
    "`iss` required": row_iss_required,
    "order of checks": row_check_order,
    "audience mismatch": row_audience,
    "non-canonical base64": row_base64,
    "RSA key without `alg`": row_rsa_without_alg,
    "two tokens in one request": row_two_tokens,
    "a token in two places": row_same_token_twice,
    "token spellings": row_spellings,
    "optional token, forged in another spelling": row_optional_forged,
    "`kid` matching": row_kid,
    "`forward: false`": row_forward,
    "default token locations": row_default_locations,
    "`require_expiration` default": row_require_expiration,
    "unmatched request": row_unmatched,
    "401 bodies": row_bodies,
    "`crit`, JWE": row_crit_jwe,
    "`nbf`, `iat`, clock skew": row_time,
    "token size": row_size,
    "duplicate claim names": row_duplicate_members,
}


# --------------------------------------------------------------------------- tests


def test_every_row_has_a_measurement_and_every_measurement_a_row() -> None:
    rows = table()
    assert list(rows) == list(ROWS), ("rows without a measurement", [r for r in rows if r not in ROWS],
                                      "measurements without a row", [r for r in ROWS if r not in rows])
    for key, (_input, _guard, _authn, why) in rows.items():
        assert _input and why, f"{key}: the input and the why must be stated"


@pytest.mark.parametrize("key", list(ROWS))
def test_row_states_what_both_filters_answer(key: str, stack: Stack, upstream, k: Keys) -> None:
    guard, authn = ROWS[key](lambda name: Both(stack, upstream, name), k)
    print(f"| {key} | jwt-guard: {guard} | jwt_authn: {authn} |")
    row = table().get(key)
    assert row is not None, f"no row {key!r} in {DOC}"
    assert (row[1], row[2]) == (guard, authn), (
        f"{DOC}, row {key!r} states\n  jwt-guard: {row[1]}\n  jwt_authn: {row[2]}\n"
        f"Envoy answered\n  jwt-guard: {guard}\n  jwt_authn: {authn}")
