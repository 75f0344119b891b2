//! Differential: jwt-guard's verification decision against an independent implementation, the
//! `jsonwebtoken` crate (its own parser, base64, header and claim validation; RustCrypto
//! primitives of other versions), on tokens the harness signs over fuzzed header and claims
//! bytes with HS256/384/512, ES256 or EdDSA.
//!
//! Both are configured alike: one key (kid `k1`), the token's algorithm only, issuer and
//! audience required, `exp` required, 60 s leeway for `exp` and `nbf`, no lifetime bound.
//! jsonwebtoken reads the system clock, so jwt-guard gets the same clock and the input writes
//! times relative to it.
//!
//! Input (text): line 1 `ALG [tamper=N] [raw]`; line 2 the header JSON; the rest the claims
//! JSON. `$now`, `$now+N` and `$now-N` stand for the current time. `tamper=N` flips bit N of
//! the signature; with `raw`, lines 2.. are the whole token, used as it is.
//!
//! Both must agree on accept or refuse, and on the claims of an accepted token, except where
//! the semantics differ by design — each difference is named, and checked to be the only one:
//! - jwt-guard refuses: duplicate member names (jsonwebtoken: last wins, or a serde error for
//!   the members it types); `crit`, `b64`, `enc` (RFC 7515 §4.1.11, RFC 7797, JWE); a `kid`
//!   the key set lacks (jsonwebtoken is handed the key); claims that are not an object
//!   (jsonwebtoken reads an array positionally into its claim struct); `sub` or `jti` that are
//!   not strings; `iat` that is not a NumericDate or is in the future (jsonwebtoken ignores
//!   `iat`); `iss` as an array (jsonwebtoken accepts a set that holds the issuer); tokens over
//!   8 KiB;
//! - jsonwebtoken refuses: header members it types that jwt-guard never reads (`jwk`, `x5c`,
//!   `cty`, `nonce`, `url`, ... of another JSON type);
//! - both: the second either side of the `exp` + leeway and `nbf` − leeway boundaries (RFC
//!   7519 §4.1.4 refuses at `exp`, jsonwebtoken one second later; fractions are truncated by
//!   jwt-guard, rounded by jsonwebtoken; the two read the clock at slightly different times).
#![no_main]

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use jwt_guard::authn::Authenticator;
use jwt_guard::authn::cache::TokenCache;
use jwt_guard::config::Config;
use jwt_guard::token::jws::{decode_part, numeric_date};
use jwt_guard::request::Request;
use jwt_guard::authn::verify::PureRustVerifier;
use jwt_guard_fuzz::{SigningKey, b64, duplicate_members, mint, with_times, wrong};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

const ISSUER: &str = "https://idp.example.com";
const AUDIENCE: &str = "orders";
const LEEWAY: u64 = 60;

thread_local! {
    static CONFIGS: Vec<(SigningKey, Config)> = SigningKey::ALL
        .iter()
        .map(|&key| {
            let config = json!({
                "providers": {"p": {
                    "issuer": ISSUER,
                    "audiences": [AUDIENCE],
                    "jwks": {"keys": [key.jwk(Some("k1"))]},
                    "clock_skew_seconds": LEEWAY,
                }},
                "rules": [{"match": {"prefix": "/"}}],
            });
            let config = Config::from_json(config.to_string().as_bytes()).expect("config");
            (key, config)
        })
        .collect();
}

fn guard(config: &Config, token: &str, now: u64) -> Result<Value, String> {
    let headers = vec![(
        "authorization".to_string(),
        format!("Bearer {token}").into_bytes(),
    )];
    let request = Request {
        headers: &headers,
        peer_address: &|| None,
        peer_certificate_digest: &|| None,
        route_name: None,
        route_rule: None,
    };
    let clock = move || Some(now);
    let mut cache = TokenCache::new(0);
    let mut auth = Authenticator {
        verifier: &PureRustVerifier,
        cache: &mut cache,
        clock: &clock,
        judged_by: None,
        replay: &jwt_guard::authn::dpop::MemoryReplayStore::default(),
        presented_with_dpop: false,
        dpop_nonce: None,
    };
    match auth.authenticate(&config.providers, &[0], &request) {
        Ok(Some(verified)) => Ok(Value::Object(serde_json::Map::clone(&verified.claims))),
        Ok(None) => Err("no token".into()),
        Err(failure) => Err(failure.code().into()),
    }
}

fn reference(key: SigningKey, token: &str) -> Result<Value, String> {
    let decoding = match key {
        SigningKey::Es256 => {
            let (x, y) = key.public_components().expect("EC");
            DecodingKey::from_ec_components(&x, &y.expect("y")).expect("EC key")
        }
        SigningKey::EdDsa => {
            let (x, _) = key.public_components().expect("OKP");
            DecodingKey::from_ed_components(&x).expect("OKP key")
        }
        _ => DecodingKey::from_secret(&key.secret().expect("oct")),
    };
    let alg: Algorithm = key.alg().parse().expect("alg");
    let mut validation = Validation::new(alg);
    validation.leeway = LEEWAY;
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[AUDIENCE]);
    validation.set_required_spec_claims(&["exp", "iss", "aud"]);
    jsonwebtoken::decode::<Value>(token, &decoding, &validation)
        .map(|data| data.claims)
        .map_err(|err| format!("{:?}", err.kind()))
}

/// The differences by design that explain a disagreement on this token, if any.
fn by_design(token: &str, now: u64, guard_accepted: bool) -> Vec<&'static str> {
    let mut reasons = Vec::new();
    let parts: Vec<&str> = token.split('.').collect();
    let [header, claims, _] = parts.as_slice() else {
        return reasons;
    };
    let (Ok(header), Ok(claims)) = (decode_part(header), decode_part(claims)) else {
        return reasons;
    };
    let header_value: Option<Value> = serde_json::from_slice(&header).ok();
    let claims_value: Option<Value> = serde_json::from_slice(&claims).ok();
    if !guard_accepted {
        if token.len() > jwt_guard::token::jws::MAX_TOKEN_BYTES {
            reasons.push("size");
        }
        if duplicate_members(&header) == Some(true) || duplicate_members(&claims) == Some(true) {
            reasons.push("duplicate members");
        }
        if let Some(Value::Object(h)) = &header_value {
            if ["crit", "b64", "enc"].iter().any(|m| h.contains_key(*m)) {
                reasons.push("crit/b64/enc");
            }
            if h.get("kid")
                .and_then(Value::as_str)
                .is_some_and(|kid| kid != "k1")
            {
                reasons.push("unknown kid");
            }
        }
        match &claims_value {
            Some(Value::Object(c)) => {
                if ["sub", "jti"]
                    .iter()
                    .any(|m| c.get(*m).is_some_and(|v| !v.is_string()))
                {
                    reasons.push("sub/jti type");
                }
                if let Some(iat) = c.get("iat")
                    && numeric_date(iat).is_none_or(|iat| iat > now + LEEWAY - 2)
                {
                    reasons.push("iat");
                }
                if c.get("iss").is_some_and(Value::is_array) {
                    reasons.push("iss array");
                }
            }
            Some(_) => reasons.push("claims not an object"),
            None => {}
        }
    } else if let Some(Value::Object(h)) = &header_value {
        // Only what jwt-guard reads of the header: does jsonwebtoken take that?
        let read: serde_json::Map<String, Value> = h
            .iter()
            .filter(|(name, _)| matches!(name.as_str(), "alg" | "kid" | "typ"))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        if serde_json::from_value::<jsonwebtoken::Header>(Value::Object(h.clone())).is_err()
            && serde_json::from_value::<jsonwebtoken::Header>(Value::Object(read)).is_ok()
        {
            reasons.push("header members typed by jsonwebtoken only");
        }
    }
    if let Some(Value::Object(c)) = &claims_value {
        let near = |value: Option<&Value>, boundary: u64| {
            value
                .and_then(Value::as_f64)
                .is_some_and(|t| (t - boundary as f64).abs() <= 2.0)
        };
        if near(c.get("exp"), now.saturating_sub(LEEWAY)) || near(c.get("nbf"), now + LEEWAY) {
            reasons.push("time boundary");
        }
    }
    reasons
}

fuzz_target!(|data: &[u8]| {
    let (options, rest) = match data.iter().position(|b| *b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &b""[..]),
    };
    let options = String::from_utf8_lossy(options);
    let mut words = options.split(' ');
    let key = match words.next() {
        Some("HS384") => SigningKey::Hs384,
        Some("HS512") => SigningKey::Hs512,
        Some("ES256") => SigningKey::Es256,
        Some("EdDSA") => SigningKey::EdDsa,
        _ => SigningKey::Hs256,
    };
    let (mut tamper, mut raw) = (None, false);
    for word in words {
        if let Some(bit) = word.strip_prefix("tamper=") {
            tamper = bit.parse::<usize>().ok();
        } else if word == "raw" {
            raw = true;
        }
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let rest = with_times(rest, now);
    let token = if raw {
        let Ok(text) = std::str::from_utf8(&rest) else {
            return;
        };
        // As the Bearer scheme reads it: surrounding spaces and tabs are not the token's.
        text.trim_end_matches('\n')
            .trim_matches([' ', '\t'])
            .to_string()
    } else {
        let (header, claims) = match rest.iter().position(|b| *b == b'\n') {
            Some(at) => (&rest[..at], &rest[at + 1..]),
            None => (&rest[..], &b"{}"[..]),
        };
        let token = mint(key, header, claims);
        match tamper {
            Some(bit) => {
                let (input, signature) = token.rsplit_once('.').expect("three parts");
                let mut bytes = decode_part(signature).expect("ours");
                let len = bytes.len();
                bytes[(bit / 8) % len] ^= 1 << (bit % 8);
                format!("{input}.{}", b64(bytes))
            }
            None => token,
        }
    };
    CONFIGS.with(|configs| {
        let (_, config) = configs.iter().find(|(k, _)| *k == key).expect("config");
        let ours = guard(config, &token, now);
        let theirs = reference(key, &token);
        if jwt_guard_fuzz::tracing() {
            eprintln!("jwt-guard {ours:?}\njsonwebtoken {theirs:?}");
        }
        match (&ours, &theirs) {
            (Ok(a), Ok(b)) if a == b => {}
            (Err(_), Err(_)) => {}
            _ => {
                let reasons = by_design(&token, now, ours.is_ok());
                if ours.is_ok() != theirs.is_ok() && !reasons.is_empty() {
                    return;
                }
                wrong!(
                    "jwt-guard {ours:?}, jsonwebtoken {theirs:?} for {token} (now {now}; by design: {reasons:?})"
                );
            }
        }
    });
});
