//! Token parsing and verification: `UnverifiedJws::parse`, then the provider, key, signature and claim
//! checks through the `Authenticator`, on the fixtures' clock, with a configuration holding the
//! fixtures' real keys (RS*, PS*, ES*, EdDSA, HS*) and the harness's own.
//!
//! Input: the first byte chooses the mode.
//! - even: the rest is a token, sent as `Authorization: Bearer <rest>`;
//! - odd: `KEY_BYTE HEADER_JSON \xff CLAIMS_JSON` — a token minted over exactly these bytes with
//!   the harness's key `KEY_BYTE % 5` (HS256/384/512, ES256, EdDSA), so inputs whose JSON makes
//!   sense reach the claim checks (`$now±N` in the claims: the fixtures' clock); bit 1 of the
//!   mode byte flips one bit of the signature.
//!
//! Checks, besides never panicking:
//! - base64url is canonical: every part of a parsed token re-encodes to itself;
//! - an accepted token is one of the fixtures' unchanged, or its signature verifies under the
//!   harness's key for the token's `kid`/`alg`, checked here without the core;
//! - accepted claims pass the provider's claim checks and equal the payload's JSON;
//! - the verified-token cache never changes a decision: a warm cache, a cold one and no cache
//!   agree, now, at a later time (`later` = the second and third bytes, × 61 s), and in the
//!   last second before and the first after every moment an accepted token's `exp`, `nbf` or
//!   `iat` changes an answer;
//! - the arguments for Envoy's `verify_signature` can be built for every key, and an ES256
//!   signature converted to DER is the same signature.
#![no_main]

use jwt_guard::authn::Authenticator;
use jwt_guard::authn::cache::TokenCache;
use jwt_guard::config::Config;
use jwt_guard::adapters::proxy_wasm::verify_signature;
use jwt_guard::authn::jwks::{KeyMaterial, VerificationKey};
use jwt_guard::token::jws::{UnverifiedJws, decode_part};
use jwt_guard::reason::AuthFailure;
use jwt_guard::request::Request;
use jwt_guard::authn::verify::{PureRustVerifier, SignatureVerifier};
use jwt_guard_fuzz::{
    SigningKey, b64, boundaries, config_with_keys, fixture_tokens, mint, now, with_times, wrong,
};
use libfuzzer_sys::fuzz_target;

/// Two providers for the fixtures' issuer (other audiences, skews and rules; tried in the
/// order of their names) and one for another issuer, all with every key.
const CONFIG: &str = r#"{
  "providers": {
    "a_orders": {"issuer": "$ISSUER", "audiences": ["orders"], "jwks": "$FIXTURE_JWKS",
                 "max_lifetime_seconds": 86400},
    "b_billing": {"issuer": "$ISSUER", "audiences": ["billing", "orders"], "jwks": "$FIXTURE_JWKS",
                  "clock_skew_seconds": 0, "require_expiration": false},
    "c_other": {"issuer": "https://other.example", "jwks": "$FIXTURE_JWKS"}
  },
  "rules": [{"match": {"prefix": "/"}}]
}"#;

thread_local! {
    static STATE: (Config, Vec<String>) = (
        config_with_keys(CONFIG),
        fixture_tokens().into_iter().map(|(_, token)| token).collect(),
    );
}

/// The outcome as comparable data: the accepting provider, or the refusal.
type Outcome = Result<Option<String>, AuthFailure>;

fn authenticate(config: &Config, cache: &mut TokenCache, token: &[u8], at: u64) -> Outcome {
    let mut value = b"Bearer ".to_vec();
    value.extend_from_slice(token);
    let headers = vec![("authorization".to_string(), value)];
    let request = Request {
        headers: &headers,
        peer_address: &|| None,
        peer_certificate_digest: &|| None,
        route_name: None,
        route_rule: None,
    };
    let clock = move || Some(at);
    let verifier = Checking;
    let mut auth = Authenticator {
        verifier: &verifier,
        cache,
        clock: &clock,
        judged_by: None,
        replay: &jwt_guard::authn::dpop::MemoryReplayStore::default(),
        presented_with_dpop: false,
        dpop_nonce: None,
    };
    let providers: Vec<usize> = (0..config.providers.len()).collect();
    let verified = auth.authenticate(&config.providers, &providers, &request)?;
    Ok(verified.map(|v| {
        let jws =
            UnverifiedJws::parse(&v.found.token).unwrap_or_else(|e| wrong!("accepted, unparsable: {e:?}"));
        if jws.claims != **v.claims {
            wrong!("verified claims differ from the payload");
        }
        if let Err(failure) = v.provider.token_rules.check_claims(&v.claims, at) {
            wrong!(
                "accepted by {} but its claims fail: {failure:?}",
                v.provider.name
            );
        }
        v.provider.name.clone()
    }))
}

/// The pure-Rust check, plus what the host backend would be sent for the same check.
struct Checking;

impl SignatureVerifier for Checking {
    fn verify(&self, key: &VerificationKey, jws: &UnverifiedJws<'_>) -> Result<(), AuthFailure> {
        let message = jws.signing_input().as_bytes();
        let host_arguments = verify_signature::arguments(key, message, &jws.signature);
        if let (KeyMaterial::P256(_), Some(_)) = (&key.material, &host_arguments) {
            let der = verify_signature::p1363_to_der(&jws.signature, 32)
                .unwrap_or_else(|| wrong!("arguments built, but no DER signature"));
            if let Ok(fixed) = p256::ecdsa::Signature::from_slice(&jws.signature) {
                match p256::ecdsa::Signature::from_der(&der) {
                    Ok(parsed) if parsed == fixed => {}
                    other => wrong!("P1363 {:?} became DER {der:?}: {other:?}", jws.signature),
                }
            }
        }
        PureRustVerifier.verify(key, jws)
    }
}

/// Accepted only if the signature is genuine: a fixture token, unchanged, or a token the
/// harness's key for its `kid` (or, without one, its `alg`) signed.
fn check_genuine(token: &[u8], fixtures: &[String]) {
    if fixtures.iter().any(|f| f.as_bytes() == token) {
        return;
    }
    let text = std::str::from_utf8(token).unwrap_or_else(|_| wrong!("accepted non-UTF-8"));
    let Some((signing_input, signature)) = text.rsplit_once('.') else {
        wrong!("accepted a token without parts");
    };
    let header: serde_json::Value = signing_input
        .split('.')
        .next()
        .and_then(|h| decode_part(h).ok())
        .and_then(|h| serde_json::from_slice(&h).ok())
        .unwrap_or_else(|| wrong!("accepted a token whose header is not JSON"));
    let genuine = SigningKey::ALL.iter().any(|key| {
        let named = match header.get("kid").and_then(|k| k.as_str()) {
            Some(kid) => kid == key.kid(),
            None => header.get("alg").and_then(|a| a.as_str()) == Some(key.alg()),
        };
        named && {
            let expected = key.sign(signing_input.as_bytes());
            match key {
                // Deterministic signatures: equal bytes. ECDSA is randomised in general, so
                // check it with the public key (high-S forms are valid too).
                SigningKey::Es256 => decode_part(signature).ok().is_some_and(|sig| {
                    use p256::ecdsa::signature::Verifier;
                    let public = p256_public();
                    p256::ecdsa::Signature::from_slice(&sig)
                        .is_ok_and(|sig| public.verify(signing_input.as_bytes(), &sig).is_ok())
                }),
                _ => b64(expected) == signature,
            }
        }
    });
    if !genuine {
        wrong!("accepted a token no key of the harness signed: {text}");
    }
}

fn p256_public() -> p256::ecdsa::VerifyingKey {
    let (x, y) = SigningKey::Es256.public_components().expect("EC");
    let mut point = vec![4u8];
    point.extend(decode_part(&x).expect("x"));
    point.extend(decode_part(&y.expect("y")).expect("y"));
    p256::ecdsa::VerifyingKey::from_sec1_bytes(&point).expect("point")
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (later, rest) = match rest {
        [a, b, rest @ ..] => (u64::from(u16::from_le_bytes([*a, *b])) * 61, rest),
        _ => (0, rest),
    };
    let token: Vec<u8> = if mode & 1 == 0 {
        rest.to_vec()
    } else {
        let Some((&key, rest)) = rest.split_first() else {
            return;
        };
        let (header, claims) = match rest.iter().position(|b| *b == 0xff) {
            Some(at) => (&rest[..at], &rest[at + 1..]),
            None => (rest, &b"{}"[..]),
        };
        let claims = with_times(claims, now());
        let mut token = mint(SigningKey::from_byte(key), header, &claims);
        if mode & 2 != 0 {
            // One bit of the signature flipped (in its base64url text: a canonical change).
            let (input, signature) = token.rsplit_once('.').expect("three parts");
            let mut bytes = decode_part(signature).expect("ours");
            let at = usize::from(mode >> 2) % bytes.len().max(1);
            if let Some(byte) = bytes.get_mut(at) {
                *byte ^= 1 << (mode % 8);
            }
            token = format!("{input}.{}", b64(bytes));
        }
        token.into_bytes()
    };

    // Canonical base64url: what parses re-encodes to itself, part by part.
    if let Ok(text) = std::str::from_utf8(&token)
        && let Ok(jws) = UnverifiedJws::parse(text)
    {
        for part in text.split('.') {
            let decoded = decode_part(part).unwrap_or_else(|_| wrong!("parsed, part refused"));
            if b64(&decoded) != part {
                wrong!("part {part:?} is not the canonical encoding of its bytes");
            }
        }
        if !text.starts_with(jws.signing_input())
            || b64(&jws.signature) != text.rsplit('.').next().unwrap_or("")
        {
            wrong!("signing input or signature are not the token's own");
        }
    }

    STATE.with(|(config, fixtures)| {
        let now = now();
        let mut warm = TokenCache::new(8);
        let first = authenticate(config, &mut warm, &token, now);
        let again = authenticate(config, &mut warm, &token, now);
        let uncached = authenticate(config, &mut TokenCache::new(0), &token, now);
        if jwt_guard_fuzz::tracing() {
            eprintln!("now: {first:?}, again {again:?}, uncached {uncached:?}");
        }
        if first != again || first != uncached {
            wrong!("cache changed the decision: {first:?}, again {again:?}, uncached {uncached:?}");
        }
        if let Ok(Some(_)) = first {
            check_genuine(&token, fixtures);
        }
        // Later: at the moment the input asks for, and around each time claim of an accepted
        // token (where answers change).
        let mut times = vec![now + later];
        if let Ok(Some(_)) = first
            && let Ok(jws) = UnverifiedJws::parse(std::str::from_utf8(&token).unwrap_or_default())
        {
            times.extend(boundaries(&jws.claims, now));
        }
        for at in times.into_iter().filter(|at| *at > now) {
            let cached = authenticate(config, &mut warm, &token, at);
            let fresh = authenticate(config, &mut TokenCache::new(0), &token, at);
            if jwt_guard_fuzz::tracing() {
                eprintln!("{} s later: cached {cached:?}, fresh {fresh:?}", at - now);
            }
            if cached != fresh {
                wrong!(
                    "{} s later the cache says {cached:?}, a fresh check {fresh:?}",
                    at - now
                );
            }
        }
    });
});
