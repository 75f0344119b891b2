"""The contenders: one HTTP filter chain per kind, one listener per (kind, algorithm).

Every listener answers 200 from a `direct_response` route (no upstream), so only the filters
differ. The policy every policy kind enforces is written once, in POLICY. jwt-guard runs in two
runtimes: the .wasm in Envoy's V8 (runtime "wasm") and the dynamic module libjwt_guard.so
(runtime "module": jwt_guard_native, jwt_guard_native_policy), each kind with the same JSON
configuration in both; the kinds named "native…" without "jwt_guard" are Envoy's own jwt_authn.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable

from harness import listener, native_filter, wasm_filter

from .dpop import CONFIG as DPOP_CONFIG
from .tokens import AUDIENCE, ISSUER, SigningKey

JWT_AUTHN_TYPE = "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication"
RBAC_TYPE = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"
JWT_AUTHN = "envoy.filters.http.jwt_authn"
NATIVE_CACHE_SIZE = 1000  # jwt_cache_config; jwt-guard's default token_cache_size is 1000 too
PAYLOAD_METADATA_KEY = "jwt_payload"

# Answers a listener gives (see envoys.expected_answers).
OPEN, AUTHN, POLICY_ANSWERS = "open", "authn", "policy"


@dataclass(frozen=True)
class Policy:
    """The role + scope + CIDR + country policy, for jwt-guard and for jwt_authn + rbac alike.
    Every bench request carries `country_header: client_country` and comes from 127.0.0.1."""

    role: str = "admin"
    scope: str = "orders:read"
    allow_cidr: tuple[str, int] = ("127.0.0.0", 8)
    deny_cidr: tuple[str, int] = ("127.66.0.0", 16)
    allow_countries: tuple[str, ...] = ("US", "CA")
    deny_countries: tuple[str, ...] = ("KP",)
    country_header: str = "x-geo-country"
    client_country: str = "US"
    denied_source: str = "127.66.0.1"  # inside deny_cidr: the checks expect 403 from there


POLICY = Policy()


def _cidr(prefix: tuple[str, int]) -> str:
    return f"{prefix[0]}/{prefix[1]}"


# --------------------------------------------------------------------------- jwt-guard


def guard_config(key: SigningKey | None, *, policy: bool = False, noop: bool = False, dpop: bool = False,
                 **top_level: Any) -> dict:
    """jwt-guard's configuration: one provider for `key`, one catch-all rule; `top_level` adds
    settings such as signature_backend or token_cache_size (omitted: the defaults). `dpop`: the
    provider checks DPoP proofs (benchlib/dpop.py's settings; bearer tokens still accepted)."""
    if noop:
        return {"realm": "bench", "rules": [{"match": {"prefix": "/"}, "disabled": True}]}
    assert key is not None
    config: dict[str, Any] = {
        "realm": "bench",
        "providers": {"p": {"issuer": ISSUER, "audiences": [AUDIENCE], "jwks": key.jwks, "forward": False}},
        "rules": [{"match": {"prefix": "/"}, "provider": "p"}],
        **top_level,
    }
    if dpop:
        config["providers"]["p"]["dpop"] = dict(DPOP_CONFIG)
    if policy:
        config["geo"] = {"country_header": POLICY.country_header}
        config["rules"][0].update({
            "roles": {"any": [POLICY.role]},
            "scopes": {"all": [POLICY.scope]},
            "source_ips": {"allow": [_cidr(POLICY.allow_cidr)], "deny": [_cidr(POLICY.deny_cidr)]},
            "countries": {"allow": list(POLICY.allow_countries), "deny": list(POLICY.deny_countries)},
        })
    return config


# --------------------------------------------------------------------------- native


def jwt_authn(key: SigningKey, *, cache: bool, metadata: bool = False) -> dict:
    """Envoy's jwt_authn with the provider jwt-guard gets (issuer, audience, the key inline,
    `Authorization: Bearer`, token removed, `exp` required as jwt-guard does by default)."""
    provider: dict[str, Any] = {
        "issuer": ISSUER,
        "audiences": [AUDIENCE],
        "local_jwks": {"inline_string": json.dumps(key.jwks)},
        "from_headers": [{"name": "authorization", "value_prefix": "Bearer "}],
        "forward": False,
        "require_expiration": True,
    }
    if cache:
        provider["jwt_cache_config"] = {"jwt_cache_size": NATIVE_CACHE_SIZE}
    if metadata:
        provider["payload_in_metadata"] = PAYLOAD_METADATA_KEY
        # "admin ops" and "orders:read orders:write" become lists, as jwt-guard reads them.
        provider["normalize_payload_in_metadata"] = {"space_delimited_claims": ["roles", "scope"]}
    return {
        "name": JWT_AUTHN,
        "typed_config": {
            "@type": JWT_AUTHN_TYPE,
            "providers": {"p": provider},
            "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "p"}}],
        },
    }


def _claim_contains(claim: str, value: str) -> dict:
    return {"metadata": {
        "filter": JWT_AUTHN,
        "path": [{"key": PAYLOAD_METADATA_KEY}, {"key": claim}],
        "value": {"list_match": {"one_of": {"string_match": {"exact": value}}}},
    }}


def _remote_ip(prefix: tuple[str, int]) -> dict:
    return {"remote_ip": {"address_prefix": prefix[0], "prefix_len": prefix[1]}}


def _country_is(codes: tuple[str, ...]) -> dict:
    return {"or_ids": {"ids": [
        {"header": {"name": POLICY.country_header, "string_match": {"exact": c, "ignore_case": True}}}
        for c in codes]}}


def rbac() -> dict:
    """Envoy's rbac enforcing POLICY on what jwt_authn put in dynamic metadata: the role and the
    scope from the verified payload, the client address (remote_ip: the address the connection
    manager decided on, as jwt-guard's source.address), the country header."""
    principal = {"and_ids": {"ids": [
        _claim_contains("roles", POLICY.role),
        _claim_contains("scope", POLICY.scope),
        _remote_ip(POLICY.allow_cidr),
        {"not_id": _remote_ip(POLICY.deny_cidr)},
        _country_is(POLICY.allow_countries),
        {"not_id": _country_is(POLICY.deny_countries)},
    ]}}
    return {
        "name": "envoy.filters.http.rbac",
        "typed_config": {
            "@type": RBAC_TYPE,
            "rules": {"action": "ALLOW", "policies": {
                "role_cidr_country": {"permissions": [{"any": True}], "principals": [principal]},
            }},
        },
    }


# --------------------------------------------------------------------------- kinds


@dataclass(frozen=True)
class Kind:
    name: str
    title: str
    answers: str  # OPEN, AUTHN or POLICY_ANSWERS
    chain: Callable[[SigningKey | None, str], list[dict]]  # (key, listener name) -> HTTP filters
    keyed: bool = True  # False: the same listener serves every algorithm's tokens
    caches: bool = False  # keeps verified tokens: a cycled run is primed first
    native: bool = False  # jwt_authn: its jwt_cache_hit/miss counters are read
    diagnostic: bool = False
    runtime: str | None = None  # jwt-guard's: "wasm" (V8) or "module" (the dynamic module); else None
    dpop: bool = False  # measured with DPoP requests (a bound token, a fresh proof each), not its table's

    @property
    def guard(self) -> bool:
        """A row of jwt-guard's Wasm build: measured with the other .wasm too under `--baseline`."""
        return self.runtime == "wasm"


def _guard(**kw: Any) -> Callable[[SigningKey | None, str], list[dict]]:
    return lambda key, name: [wasm_filter(guard_config(key, **kw), name=name)]


def _guard_module(**kw: Any) -> Callable[[SigningKey | None, str], list[dict]]:
    # filter_name stays "jwt_guard", as docs/deploy.md loads it: the module has one filter.
    return lambda key, name: [native_filter(guard_config(key, **kw))]


KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("baseline", "no auth filter", OPEN, lambda key, name: [], keyed=False),
    Kind("native", "jwt_authn, no cache", AUTHN,
         lambda key, name: [jwt_authn(key, cache=False)], native=True),
    Kind("native_cached", f"jwt_authn + jwt_cache_config ({NATIVE_CACHE_SIZE})", AUTHN,
         lambda key, name: [jwt_authn(key, cache=True)], caches=True, native=True),
    Kind("native_rbac", "jwt_authn (cache) + rbac: role, scope, CIDR, country", POLICY_ANSWERS,
         lambda key, name: [jwt_authn(key, cache=True, metadata=True), rbac()], caches=True, native=True),
    Kind("jwt_guard", "jwt-guard, authn only, defaults (host backend, cache 1000)", AUTHN,
         _guard(), caches=True, runtime="wasm"),
    Kind("jwt_guard_policy", "jwt-guard: role, scope, CIDR, country", POLICY_ANSWERS,
         _guard(policy=True), caches=True, runtime="wasm"),
    Kind("jwt_guard_native", "jwt-guard native (dynamic module), authn only, defaults (ring, cache 1000 per worker)",
         AUTHN, _guard_module(), caches=True, runtime="module"),
    Kind("jwt_guard_native_policy", "jwt-guard native (dynamic module): role, scope, CIDR, country",
         POLICY_ANSWERS, _guard_module(policy=True), caches=True, runtime="module"),
    Kind("jwt_guard_dpop", "jwt-guard, DPoP: the bound token cached, a fresh ES256 proof every request",
         AUTHN, _guard(dpop=True), caches=True, runtime="wasm", dpop=True),
    Kind("jwt_guard_native_dpop", "jwt-guard native (dynamic module), DPoP: the bound token cached, a fresh "
         "ES256 proof every request", AUTHN, _guard_module(dpop=True), caches=True, runtime="module", dpop=True),
    Kind("jwt_guard_pure_rust", "jwt-guard, signature_backend: pure_rust", AUTHN,
         _guard(signature_backend="pure_rust"), caches=True, diagnostic=True, runtime="wasm"),
    Kind("jwt_guard_nocache", "jwt-guard, token_cache_size: 0", AUTHN,
         _guard(token_cache_size=0), diagnostic=True, runtime="wasm"),
    Kind("jwt_guard_noop", "jwt-guard, one `disabled` rule: proxy-wasm alone", OPEN,
         lambda key, name: [wasm_filter(guard_config(None, noop=True), name=name)], keyed=False,
         diagnostic=True, runtime="wasm"),
)}


@dataclass(frozen=True)
class Listener:
    kind: Kind
    alg: str | None  # the algorithm of the key in its configuration; None when not kind.keyed
    wasm: str | None = None  # `--baseline`: another jwt_guard.wasm (absolute path); None: this build's

    @classmethod
    def of(cls, kind: Kind, alg: str) -> "Listener":
        """The listener of `kind` for `alg`'s tokens: one per algorithm, or one for all."""
        return cls(kind, alg if kind.keyed else None)

    def with_wasm(self, wasm: str) -> "Listener":
        """The same listener (same jwt-guard configuration) running another .wasm."""
        return Listener(self.kind, self.alg, wasm)

    @property
    def name(self) -> str:
        name = f"{self.alg.lower()}_{self.kind.name}" if self.alg else self.kind.name
        return f"{name}{BASELINE_SUFFIX}" if self.wasm else name

    def config(self, key: SigningKey | None, routes: list[dict]) -> dict:
        chain = self.kind.chain(key, self.name)
        if self.wasm:  # the chain as built for this build; only the file of the Wasm code changes
            for f in chain:
                if f["name"] == "envoy.filters.http.wasm":
                    f["typed_config"]["config"]["vm_config"]["code"]["local"]["filename"] = self.wasm
        return listener(self.name, 0, chain, routes=routes)


BASELINE_SUFFIX = "_basewasm"  # the name of a listener running the `--baseline` .wasm


def direct_200() -> list[dict]:
    return [{"name": "default", "match": {"prefix": "/"},
             "direct_response": {"status": 200, "body": {"inline_string": "ok\n"}}}]


def envoy_config(listeners: list[Listener], keys: dict[str, SigningKey]) -> dict:
    """A bootstrap with these listeners, Envoy choosing every port (admin and listeners)."""
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "static_resources": {"listeners": [
            l.config(keys[l.alg] if l.alg else None, direct_200()) for l in listeners]},
    }


# What native_rbac does and does not reproduce of jwt_guard_policy (printed in RESULTS.md).
NATIVE_POLICY_NOTES = (
    "native_rbac enforces the same policy as jwt_guard_policy with Envoy's own filters: jwt_authn "
    "(with the same cache) writes the verified payload to dynamic metadata (payload_in_metadata; "
    "normalize_payload_in_metadata turns the space-separated `roles`/`scope` strings into lists, as "
    "jwt-guard reads them), and rbac requires metadata `roles` to contain `admin`, `scope` to contain "
    "`orders:read`, remote_ip in 127.0.0.0/8 and not in 127.66.0.0/16, and x-geo-country US or CA "
    "(ignoring case) and not KP. The checks before measuring prove both answer alike: 200, 401 without "
    "or with a forged token, 403 for a token without the role (twice: also from the cache), from "
    "127.66.0.1, for country KP and without a country header. Not equivalent: the answers' bodies and "
    "headers (jwt_authn's 401 challenge names no realm of ours, rbac's 403 carries no WWW-Authenticate, "
    "jwt-guard says insufficient_scope for a missing scope); jwt-guard's per-reason counters (rbac "
    "counts allowed/denied only); a country header sent twice or not two letters, and a missing one, "
    "are refused by jwt-guard even by a deny-only list, while rbac would let a deny-only list pass "
    "them (this policy has an allow list, so both refuse); IPv4-mapped IPv6 peers (::ffff:a.b.c.d) "
    "match jwt-guard's IPv4 ranges but not rbac's (a dual-stack listener; not measured here); "
    "jwt-guard's `geo.country_claim` fallback is not configured (rbac would need a second metadata "
    "matcher). The metadata jwt_authn writes (a protobuf Struct of the payload, on every request, "
    "cache hit or not) is part of the native policy's cost."
)
