//! DPoP proofs (RFC 9449) through `Dpop::check`: the `dpop` header lines, the proof's form,
//! type, algorithm, key and signature, method, URI, token hash, age, server nonce, the token's
//! `cnf.jkt` and the replay store, with the pure-Rust verifier and a store in memory, on the
//! fixtures' clock. The provider allows ES256 and EdDSA proofs, 300 s old at most, 60 s of skew.
//!
//! Input: text lines. `name: value` is a request header (as bytes; the first `:` after the
//! name's first byte separates). `:method`, `:scheme`, `:authority` and `:path` default to
//! `GET https://api.example.com/orders?page=2` when no line gives them. Lines starting with `@`:
//!
//! - `@header JSON` and `@claims JSON` — a proof signed over exactly these bytes by the
//!   harness's ES256 key (`@key eddsa`: its Ed25519 key), which replaces every `$P` in header
//!   values (and is sent as the one `dpop` line if no line names `dpop`). In the JSON, `$jwk`
//!   stands for the signing key's public JWK, `$ath` for the token's hash, `$nonce` for the
//!   server's current nonce and `$now±N` for the clock;
//! - `@tamper` — one bit of that proof's signature flipped;
//! - `@token TEXT` — the access token (`ath` is its hash);
//! - `@jkt TEXT` — the token's `cnf.jkt` (`$es256`, `$eddsa`: the thumbprint of that harness
//!   key); no `@jkt`: a token presented with the DPoP scheme but not bound;
//! - `@nonce` — the provider requires server nonces;
//! - `@later N` — the proof is judged N seconds after the fixtures' `now`.
//!
//! Checks, besides never panicking:
//! - a fresh store never answers `dpop_proof_replayed` or `dpop_replay_unavailable`, and the
//!   same request judged on another fresh store gets the same answer;
//! - an accepted proof is refused as replayed when sent again (same store), and accepted again
//!   on a fresh store;
//! - what acceptance means, checked here without the core: exactly one `dpop` line, no comma;
//!   a compact JWS whose header has `typ` dpop+jwt, no `crit`, an allowed `alg` and a public
//!   `jwk` of that algorithm's key type whose signature verifies (p256, ed25519-compact); `jti`
//!   of 1 to 256 bytes; `htm` the method; `htu` the request's scheme, authority (case and a
//!   default port aside) and path; `ath` the SHA-256 of the token; `iat` within the window;
//!   the nonce when required; and the RFC 7638 thumbprint of the `jwk` equals `cnf.jkt`.
#![no_main]

use ct_codecs::{Base64UrlSafeNoPadding, Decoder};
use jwt_guard::authn::dpop::{Dpop, MemoryReplayStore, NonceKey, ProofContext};
use jwt_guard::authn::verify::PureRustVerifier;
use jwt_guard::reason::AuthFailure;
use jwt_guard::request::Request;
use jwt_guard::token::jws::{Algorithm, numeric_date};
use jwt_guard_fuzz::{SigningKey, b64, now, with_times, wrong};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};

const MAX_AGE: u64 = 300;
const SKEW: u64 = 60;
const NONCE_SECRET: &[u8] = b"fuzz-dpop-nonce-secret-of-32-bytes!!";
const DEFAULT_TOKEN: &str = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln";
const DEFAULTS: [(&str, &str); 4] = [
    (":method", "GET"),
    (":scheme", "https"),
    (":authority", "api.example.com"),
    (":path", "/orders?page=2"),
];

struct Input {
    headers: Vec<(String, Vec<u8>)>,
    token: String,
    jkt: Option<String>,
    nonce: bool,
    later: u64,
}

fn dpop(nonce: bool) -> Dpop {
    Dpop {
        required: false,
        max_age_seconds: MAX_AGE,
        algorithms: vec![Algorithm::ES256, Algorithm::EdDSA],
        algs: "ES256 EdDSA".into(),
        nonce: nonce.then(|| NonceKey::new(NONCE_SECRET, 300)),
        replay_buckets: 64,
        use_host: false,
        keys: Default::default(),
    }
}

/// RFC 7638 by hand: the required members in lexicographic order, no whitespace.
fn thumbprint(jwk: &Map<String, Value>) -> Option<String> {
    let text = |name: &str| jwk.get(name).and_then(Value::as_str);
    let canonical = match text("kty")? {
        "EC" => json!({"crv": text("crv")?, "kty": "EC", "x": text("x")?, "y": text("y")?}),
        "OKP" => json!({"crv": text("crv")?, "kty": "OKP", "x": text("x")?}),
        "RSA" => json!({"e": text("e")?, "kty": "RSA", "n": text("n")?}),
        _ => return None,
    };
    // serde_json's map keeps keys sorted (no `preserve_order` here) and writes no whitespace.
    Some(b64(hmac_sha256::Hash::hash(
        canonical.to_string().as_bytes(),
    )))
}

/// `ath`: base64url of the token's SHA-256, without the core.
fn token_hash(token: &str) -> String {
    b64(hmac_sha256::Hash::hash(token.as_bytes()))
}

fn harness_thumbprint(key: SigningKey) -> String {
    match key.jwk(None) {
        Value::Object(jwk) => thumbprint(&jwk).unwrap_or_default(),
        _ => String::new(),
    }
}

fn parse(data: &[u8], now: u64) -> Input {
    let mut input = Input {
        headers: Vec::new(),
        token: DEFAULT_TOKEN.to_string(),
        jkt: None,
        nonce: false,
        later: 0,
    };
    let (mut header, mut claims) = (None, None);
    let (mut key, mut tamper) = (SigningKey::Es256, false);
    let mut raw: Vec<(String, Vec<u8>)> = Vec::new();
    for line in data.split(|b| *b == b'\n') {
        if let Some(directive) = line.strip_prefix(b"@") {
            let at = directive.iter().position(|b| *b == b' ');
            let (word, rest) = at.map_or((directive, &b""[..]), |at| {
                (&directive[..at], &directive[at + 1..])
            });
            let text = || String::from_utf8_lossy(rest).into_owned();
            match word {
                b"header" => header = Some(rest),
                b"claims" => claims = Some(rest),
                b"key" => {
                    key = if rest == b"eddsa" {
                        SigningKey::EdDsa
                    } else {
                        SigningKey::Es256
                    }
                }
                b"tamper" => tamper = true,
                b"token" => input.token = text(),
                b"jkt" => {
                    input.jkt = Some(match rest {
                        b"$es256" => harness_thumbprint(SigningKey::Es256),
                        b"$eddsa" => harness_thumbprint(SigningKey::EdDsa),
                        _ => text(),
                    })
                }
                b"nonce" => input.nonce = true,
                b"later" => input.later = text().trim().parse().unwrap_or(0),
                _ => {}
            }
            continue;
        }
        if line.is_empty() {
            continue;
        }
        let split = line
            .iter()
            .skip(1)
            .position(|b| *b == b':')
            .map(|at| at + 1);
        let (name, value) = split.map_or((line, &b""[..]), |at| (&line[..at], &line[at + 1..]));
        let value = value.strip_prefix(b" ").unwrap_or(value);
        // Envoy hands a filter no NUL, CR or LF in a value.
        let value = value
            .iter()
            .copied()
            .filter(|b| !matches!(b, 0 | b'\r'))
            .collect();
        raw.push((String::from_utf8_lossy(name).into_owned(), value));
    }
    let proof = (header.is_some() || claims.is_some()).then(|| {
        let fill = |json: &[u8]| {
            let jwk = key.jwk(None).to_string();
            let nonce = NonceKey::new(NONCE_SECRET, 300).current(now);
            let text = String::from_utf8_lossy(&with_times(json, now))
                .replace("$jwk", &jwk)
                .replace("$ath", &token_hash(&input.token))
                .replace("$nonce", &nonce);
            text.into_bytes()
        };
        let header = fill(header.unwrap_or(br#"{"typ":"dpop+jwt","alg":"ES256","jwk":$jwk}"#));
        let claims = fill(claims.unwrap_or(br#"{"jti":"j1","htm":"GET","htu":"https://api.example.com/orders","iat":$now,"ath":"$ath"}"#));
        let signing_input = format!("{}.{}", b64(&header), b64(&claims));
        let mut signature = key.sign(signing_input.as_bytes());
        if tamper && let Some(byte) = signature.first_mut() {
            *byte ^= 1;
        }
        format!("{signing_input}.{}", b64(signature))
    });
    for (name, value) in DEFAULTS {
        if !raw.iter().any(|(n, _)| n == name) {
            input
                .headers
                .push((name.to_string(), value.as_bytes().to_vec()));
        }
    }
    if let Some(proof) = &proof
        && !raw.iter().any(|(n, _)| n == "dpop")
    {
        input
            .headers
            .push(("dpop".into(), proof.clone().into_bytes()));
    }
    for (name, value) in raw {
        let value = match &proof {
            Some(proof) => replace(&value, b"$P", proof.as_bytes()),
            None => value,
        };
        input.headers.push((name, value));
    }
    input
}

fn replace(haystack: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut rest = haystack;
    while !rest.is_empty() {
        if rest.starts_with(needle) {
            out.extend_from_slice(with);
            rest = &rest[needle.len()..];
        } else {
            out.push(rest[0]);
            rest = &rest[1..];
        }
    }
    out
}

fn judge(input: &Input, store: &MemoryReplayStore, at: u64) -> Result<(), AuthFailure> {
    let peer = || None;
    let request = Request {
        headers: &input.headers,
        peer_address: &peer,
        peer_certificate_digest: &|| None,
        route_name: None,
        route_rule: None,
    };
    let context = ProofContext {
        request: &request,
        token: &input.token,
        now: at,
        clock_skew_seconds: SKEW,
        verifier: &PureRustVerifier,
        replay: store,
    };
    dpop(input.nonce).check(&context, input.jkt.as_deref())
}

fn unb64(part: &str) -> Vec<u8> {
    match Base64UrlSafeNoPadding::decode_to_vec(part, None) {
        Ok(bytes) => bytes,
        Err(_) => wrong!("accepted a proof with a part that is not base64url: {part:?}"),
    }
}

fn object(bytes: &[u8], what: &str) -> Map<String, Value> {
    match serde_json::from_slice(bytes) {
        Ok(Value::Object(map)) => map,
        _ => wrong!("accepted a proof whose {what} is not a JSON object"),
    }
}

/// The signature over `signing_input` by the public `jwk`, verified without the core.
fn signature_verifies(
    alg: &str,
    jwk: &Map<String, Value>,
    signing_input: &[u8],
    sig: &[u8],
) -> bool {
    let member = |name: &str| jwk.get(name).and_then(Value::as_str).map(unb64);
    match (
        alg,
        jwk.get("kty").and_then(Value::as_str),
        jwk.get("crv").and_then(Value::as_str),
    ) {
        ("ES256", Some("EC"), Some("P-256")) => {
            use p256::ecdsa::signature::Verifier;
            let (Some(x), Some(y)) = (member("x"), member("y")) else {
                return false;
            };
            let point = [&[4u8][..], &x, &y].concat();
            let (Ok(key), Ok(sig)) = (
                p256::ecdsa::VerifyingKey::from_sec1_bytes(&point),
                p256::ecdsa::Signature::from_slice(sig),
            ) else {
                return false;
            };
            key.verify(signing_input, &sig).is_ok()
        }
        ("EdDSA", Some("OKP"), Some("Ed25519")) => {
            let Some(x) = member("x") else { return false };
            let (Ok(key), Ok(sig)) = (
                ed25519_compact::PublicKey::from_slice(&x),
                ed25519_compact::Signature::from_slice(sig),
            ) else {
                return false;
            };
            key.verify(signing_input, &sig).is_ok()
        }
        _ => false,
    }
}

fn default_port(scheme: &str) -> &'static str {
    match scheme.to_ascii_lowercase().as_str() {
        "https" => ":443",
        "http" => ":80",
        _ => "",
    }
}

fn authority(text: &str, scheme: &str) -> String {
    let port = default_port(scheme);
    let bare = if port.is_empty() {
        text
    } else {
        text.strip_suffix(port).unwrap_or(text)
    };
    bare.to_ascii_lowercase()
}

/// What an accepted proof must be, from the request and the proof's own bytes.
fn check_accepted(input: &Input, at: u64) {
    let header = |name: &str| -> Vec<&[u8]> {
        input
            .headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
            .collect()
    };
    let lines = header("dpop");
    let [line] = lines.as_slice() else {
        wrong!("accepted with {} dpop lines", lines.len());
    };
    if line.contains(&b',') {
        wrong!("accepted a dpop line with a comma: {line:?}");
    }
    let Ok(proof) = std::str::from_utf8(line.trim_ascii()) else {
        wrong!("accepted a proof that is not UTF-8");
    };
    let parts: Vec<&str> = proof.split('.').collect();
    let [h, c, s] = parts.as_slice() else {
        wrong!("accepted a proof of {} parts", parts.len());
    };
    let (head, claims, sig) = (
        object(&unb64(h), "header"),
        object(&unb64(c), "claims"),
        unb64(s),
    );
    let text = |map: &Map<String, Value>, name: &str| {
        map.get(name).and_then(Value::as_str).map(str::to_owned)
    };
    if !text(&head, "typ").is_some_and(|t| t.eq_ignore_ascii_case("dpop+jwt"))
        || head.contains_key("crit")
    {
        wrong!("accepted a proof with header {head:?}");
    }
    let alg = text(&head, "alg").unwrap_or_default();
    let Some(Value::Object(jwk)) = head.get("jwk") else {
        wrong!("accepted a proof without a jwk object: {head:?}");
    };
    if let Some(private) = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"]
        .iter()
        .find(|m| jwk.contains_key(**m))
    {
        wrong!("accepted a proof whose jwk holds the private member {private}");
    }
    if !signature_verifies(&alg, jwk, format!("{h}.{c}").as_bytes(), &sig) {
        wrong!("accepted a proof ({alg}) whose signature does not verify by its jwk {jwk:?}");
    }
    if !text(&claims, "jti").is_some_and(|j| (1..=256).contains(&j.len())) {
        wrong!("accepted a proof with jti {:?}", claims.get("jti"));
    }
    let first = |name: &str| {
        header(name)
            .first()
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default()
    };
    if text(&claims, "htm") != Some(first(":method")) {
        wrong!(
            "accepted htm {:?} for method {:?}",
            claims.get("htm"),
            first(":method")
        );
    }
    let htu = text(&claims, "htu").unwrap_or_default();
    let Some((scheme, rest)) = htu.split_once("://") else {
        wrong!("accepted htu {htu:?} without a scheme");
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (htu_authority, htu_path) = rest.split_at(end);
    let htu_path = htu_path.split(['?', '#']).next().unwrap_or_default();
    let (request_scheme, request_path) = (first(":scheme"), first(":path"));
    let request_path = request_path.split('?').next().unwrap_or_default();
    let root = |p: &str| {
        if p.is_empty() {
            "/".to_string()
        } else {
            p.to_string()
        }
    };
    if !scheme.eq_ignore_ascii_case(&request_scheme)
        || authority(htu_authority, scheme) != authority(&first(":authority"), &request_scheme)
        || root(htu_path) != root(request_path)
    {
        wrong!(
            "accepted htu {htu:?} for {request_scheme}://{}{request_path}",
            first(":authority")
        );
    }
    if text(&claims, "ath") != Some(token_hash(&input.token)) {
        wrong!(
            "accepted ath {:?} for token {:?}",
            claims.get("ath"),
            input.token
        );
    }
    let Some(iat) = claims.get("iat").and_then(numeric_date) else {
        wrong!("accepted iat {:?}", claims.get("iat"));
    };
    if iat.saturating_add(MAX_AGE) < at || iat > at.saturating_add(SKEW) {
        wrong!("accepted iat {iat} at {at}");
    }
    if input.nonce {
        let nonce = text(&claims, "nonce").unwrap_or_default();
        if !NonceKey::new(NONCE_SECRET, 300).accepts(&nonce, at) {
            wrong!("accepted nonce {nonce:?} at {at}");
        }
    }
    if input.jkt.is_none() || thumbprint(jwk) != input.jkt {
        wrong!("accepted a proof by {jwk:?} for cnf.jkt {:?}", input.jkt);
    }
}

fuzz_target!(|data: &[u8]| {
    let now = now();
    let input = parse(data, now);
    let at = now.saturating_add(input.later);
    let store = MemoryReplayStore::default();
    let first = judge(&input, &store, at);
    if matches!(
        first,
        Err(AuthFailure::DpopProofReplayed | AuthFailure::DpopReplayUnavailable)
    ) {
        wrong!("a fresh store answered {first:?}");
    }
    let elsewhere = judge(&input, &MemoryReplayStore::default(), at);
    if first != elsewhere {
        wrong!("the same request on two fresh stores: {first:?} and {elsewhere:?}");
    }
    if first.is_ok() {
        check_accepted(&input, at);
        let again = judge(&input, &store, at);
        if again != Err(AuthFailure::DpopProofReplayed) {
            wrong!("an accepted proof sent again: {again:?}");
        }
    }
    if jwt_guard_fuzz::tracing() {
        eprintln!("dpop_proof: {first:?} at {at}");
    }
});
