//! What the fuzz targets share: the unit-test fixtures (PyJWT-minted tokens and their key set,
//! on their fixed clock), keys whose private half the harness holds (so structured inputs
//! become validly signed tokens), the text format of fuzzed requests, and how Envoy applies a
//! decision's header changes.
//!
//! Every target runs the host build of the core with fixed clocks and fixed configurations,
//! and builds all its state per input, so a crash reproduces from its input alone.

use std::collections::BTreeSet;
use std::fmt;

use ct_codecs::{Base64UrlSafeNoPadding, Encoder};
use jwt_guard::config::Config;
use jwt_guard::token::extract::HeaderChange;
use jwt_guard::request::Request;
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Value, json};

const FIXTURES: &str = include_str!("../../tests/fixtures/tokens.json");

thread_local! {
    static FIXTURE_VALUE: Value = serde_json::from_str(FIXTURES).expect("fixtures are JSON");
}

/// tests/fixtures/tokens.json.
pub fn fixtures() -> Value {
    FIXTURE_VALUE.with(Value::clone)
}

/// The fixtures' clock: every fixture token is judged at this second.
pub fn now() -> u64 {
    fixtures()["now"].as_u64().expect("now")
}

pub fn issuer() -> String {
    fixtures()["issuer"].as_str().expect("issuer").to_string()
}

/// The fixtures' key set: RS*, PS*, ES256, ES384, EdDSA (public halves only) and HS* secrets.
pub fn fixture_jwks() -> Value {
    fixtures()["jwks"].clone()
}

/// Every fixture token, by name.
pub fn fixture_tokens() -> Vec<(String, String)> {
    let fixtures = fixtures();
    let tokens = fixtures["tokens"].as_object().expect("tokens");
    tokens
        .iter()
        .map(|(name, token)| (name.clone(), token.as_str().expect("token").to_string()))
        .collect()
}

pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    Base64UrlSafeNoPadding::encode_to_string(bytes).expect("base64")
}

/// Keys whose private half the harness holds. The HMAC secrets are the fixtures' (kids
/// `hs256`, `hs384`, `hs512` in the fixture key set); the ES256 and Ed25519 keys are the
/// harness's own, from fixed seeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SigningKey {
    Hs256,
    Hs384,
    Hs512,
    Es256,
    EdDsa,
}

const ES256_SCALAR: [u8; 32] = [0x42; 32];
const ED25519_SEED: [u8; 32] = [0x24; 32];

impl SigningKey {
    pub const ALL: [SigningKey; 5] = [
        SigningKey::Hs256,
        SigningKey::Hs384,
        SigningKey::Hs512,
        SigningKey::Es256,
        SigningKey::EdDsa,
    ];

    pub fn from_byte(byte: u8) -> SigningKey {
        SigningKey::ALL[usize::from(byte) % SigningKey::ALL.len()]
    }

    pub fn alg(self) -> &'static str {
        match self {
            SigningKey::Hs256 => "HS256",
            SigningKey::Hs384 => "HS384",
            SigningKey::Hs512 => "HS512",
            SigningKey::Es256 => "ES256",
            SigningKey::EdDsa => "EdDSA",
        }
    }

    /// The kid under which the fuzz configurations hold this key.
    pub fn kid(self) -> &'static str {
        match self {
            SigningKey::Hs256 => "hs256",
            SigningKey::Hs384 => "hs384",
            SigningKey::Hs512 => "hs512",
            SigningKey::Es256 => "fz-es256",
            SigningKey::EdDsa => "fz-eddsa",
        }
    }

    pub fn secret(self) -> Option<Vec<u8>> {
        match self {
            SigningKey::Hs256 => Some(vec![b'0'; 32]),
            SigningKey::Hs384 => Some(vec![b'1'; 48]),
            SigningKey::Hs512 => Some(vec![b'2'; 64]),
            SigningKey::Es256 | SigningKey::EdDsa => None,
        }
    }

    fn p256(self) -> p256::ecdsa::SigningKey {
        p256::ecdsa::SigningKey::from_slice(&ES256_SCALAR).expect("a valid P-256 scalar")
    }

    fn ed25519(self) -> ed25519_compact::KeyPair {
        ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new(ED25519_SEED))
    }

    /// The public JWK members (`x`, `y`) of the asymmetric keys, base64url.
    pub fn public_components(self) -> Option<(String, Option<String>)> {
        match self {
            SigningKey::Es256 => {
                let point = self.p256().verifying_key().to_sec1_point(false);
                let bytes = point.as_bytes();
                Some((b64(&bytes[1..33]), Some(b64(&bytes[33..65]))))
            }
            SigningKey::EdDsa => Some((b64(*self.ed25519().pk), None)),
            _ => None,
        }
    }

    /// The JWK of this key (with `kid` when given).
    pub fn jwk(self, kid: Option<&str>) -> Value {
        let mut jwk = match self {
            SigningKey::Es256 => {
                let (x, y) = self.public_components().expect("EC");
                json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "alg": "ES256"})
            }
            SigningKey::EdDsa => {
                let (x, _) = self.public_components().expect("OKP");
                json!({"kty": "OKP", "crv": "Ed25519", "x": x, "alg": "EdDSA"})
            }
            _ => json!({"kty": "oct", "k": b64(self.secret().expect("oct")), "alg": self.alg()}),
        };
        if let Some(kid) = kid {
            jwk["kid"] = kid.into();
        }
        jwk
    }

    pub fn sign(self, message: &[u8]) -> Vec<u8> {
        match self {
            SigningKey::Hs256 => {
                hmac_sha256::HMAC::mac(message, self.secret().expect("oct")).to_vec()
            }
            SigningKey::Hs384 => {
                hmac_sha512::sha384::HMAC::mac(message, self.secret().expect("oct")).to_vec()
            }
            SigningKey::Hs512 => {
                hmac_sha512::HMAC::mac(message, self.secret().expect("oct")).to_vec()
            }
            SigningKey::Es256 => {
                use p256::ecdsa::signature::Signer;
                let signature: p256::ecdsa::Signature = self.p256().sign(message);
                signature.to_bytes().to_vec()
            }
            SigningKey::EdDsa => self.ed25519().sk.sign(message, None).to_vec(),
        }
    }
}

/// A compact JWS over exactly these header and claims bytes (duplicates, odd spacing and all):
/// only the rule under test can refuse it.
pub fn mint(key: SigningKey, header: &[u8], claims: &[u8]) -> String {
    let signing_input = format!("{}.{}", b64(header), b64(claims));
    let signature = key.sign(signing_input.as_bytes());
    format!("{signing_input}.{}", b64(signature))
}

/// The fixture key set plus the harness's own ES256 and Ed25519 keys.
pub fn fuzz_jwks() -> Value {
    let mut jwks = fixture_jwks();
    let keys = jwks["keys"].as_array_mut().expect("keys");
    for key in [SigningKey::Es256, SigningKey::EdDsa] {
        keys.push(key.jwk(Some(key.kid())));
    }
    jwks
}

/// A configuration from JSON text in which `"$FIXTURE_JWKS"` stands for [`fuzz_jwks`].
pub fn config_with_keys(template: &str) -> Config {
    let jwks = fuzz_jwks().to_string();
    let text = template
        .replace("\"$FIXTURE_JWKS\"", &jwks)
        .replace("$ISSUER", &issuer());
    match Config::from_json(text.as_bytes()) {
        Ok(config) => config,
        Err(err) => panic!("the harness's configuration is refused: {err}"),
    }
}

/// A fuzzed request, from its text form: one header per line, `name: value` (the first `:`
/// after the name's first byte separates, so `:path: /x` is `:path`), values as bytes. Lines
/// starting with `@` set what is not a header:
///
/// - `@peer ADDR` — Envoy's `source.address`;
/// - `@route_rule NAME` — the rule named by the route's metadata;
/// - `@route_name NAME` — `xds.route_name`;
/// - `@later SECONDS` — a second decision that much later;
/// - `@header JSON` and `@claims JSON` — a token minted with the fixtures' HS256 key (kid
///   `hs256` unless the header says otherwise) over exactly these bytes (`$now±N` in the
///   claims: the fixtures' clock), which replaces every `$T` in header values.
///
/// Envoy's codec never hands a filter `\0`, `\r` or `\n` in a value, so none are made.
#[derive(Debug, Default)]
pub struct RequestInput {
    pub headers: Vec<(String, Vec<u8>)>,
    pub peer: Option<String>,
    pub route_rule: Option<Vec<u8>>,
    pub route_name: Option<String>,
    pub later: u64,
    pub minted: Option<String>,
}

impl RequestInput {
    pub fn parse(data: &[u8]) -> RequestInput {
        let mut input = RequestInput::default();
        let mut header: Option<&[u8]> = None;
        let mut claims: Option<&[u8]> = None;
        let mut raw_headers: Vec<(String, Vec<u8>)> = Vec::new();
        for line in data.split(|b| *b == b'\n') {
            if let Some(directive) = line.strip_prefix(b"@") {
                let (word, rest) = match directive.iter().position(|b| *b == b' ') {
                    Some(at) => (&directive[..at], &directive[at + 1..]),
                    None => (directive, &b""[..]),
                };
                let text = || String::from_utf8_lossy(rest).into_owned();
                match word {
                    b"peer" => input.peer = Some(text()),
                    b"route_rule" => input.route_rule = Some(rest.to_vec()),
                    b"route_name" => input.route_name = Some(text()),
                    b"later" => input.later = text().trim().parse().unwrap_or(0),
                    b"header" => header = Some(rest),
                    b"claims" => claims = Some(rest),
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
            let (name, value) = match split {
                Some(at) => (&line[..at], &line[at + 1..]),
                None => (line, &b""[..]),
            };
            let value = value.strip_prefix(b" ").unwrap_or(value);
            let value: Vec<u8> = value
                .iter()
                .copied()
                .filter(|b| *b != 0 && *b != b'\r')
                .collect();
            raw_headers.push((String::from_utf8_lossy(name).into_owned(), value));
        }
        if header.is_some() || claims.is_some() {
            let header = header.unwrap_or(br#"{"alg":"HS256","kid":"hs256"}"#);
            let claims = with_times(claims.unwrap_or(b"{}"), now());
            input.minted = Some(mint(SigningKey::Hs256, header, &claims));
        }
        for (name, value) in raw_headers {
            let value = match &input.minted {
                Some(token) => replace(&value, b"$T", token.as_bytes()),
                None => value,
            };
            input.headers.push((name, value));
        }
        input
    }

    /// The core's view of it; `peer` is asked for only when a rule needs the client address.
    pub fn request<'r>(
        &'r self,
        headers: &'r [(String, Vec<u8>)],
        peer: &'r dyn Fn() -> Option<String>,
    ) -> Request<'r> {
        Request {
            headers,
            peer_address: peer,
            peer_certificate_digest: &|| None,
            route_name: self.route_name.as_deref(),
            route_rule: self.route_rule.as_deref(),
        }
    }
}

/// Replaces `$now`, `$now+N`, `$now-N` with the time.
pub fn with_times(text: &[u8], now: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 16);
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix(b"$now") {
            let (sign, digits_from) = match after.first() {
                Some(b'+') => (1i128, 1),
                Some(b'-') => (-1i128, 1),
                _ => (0, 0),
            };
            let digits: Vec<u8> = after[digits_from..]
                .iter()
                .take(12)
                .take_while(|b| b.is_ascii_digit())
                .copied()
                .collect();
            let offset: i128 = std::str::from_utf8(&digits)
                .ok()
                .and_then(|d| d.parse().ok())
                .unwrap_or(0);
            let used = if sign != 0 && !digits.is_empty() {
                1 + digits.len()
            } else {
                0
            };
            out.extend_from_slice((i128::from(now) + sign * offset).to_string().as_bytes());
            rest = &after[used..];
        } else {
            out.push(rest[0]);
            rest = &rest[1..];
        }
    }
    out
}

/// The moments at which verified claims change their answer, after `now`: the last second
/// before and the first at each of `exp`, `exp` + 60, `nbf` − 60, `nbf`, `iat` − 60 and `iat`
/// (the harness's providers have no skew or the default 60 s). A decision from the
/// verified-token cache and a fresh one are compared at each.
pub fn boundaries(claims: &serde_json::Map<String, Value>, now: u64) -> Vec<u64> {
    let mut times = BTreeSet::new();
    for name in ["exp", "nbf", "iat"] {
        let Some(at) = claims.get(name).and_then(jwt_guard::token::jws::numeric_date) else {
            continue;
        };
        // `exp` refuses from `exp + skew` on; `nbf` and `iat` until `t - skew`.
        let skews: [i128; 2] = if name == "exp" { [0, 60] } else { [-60, 0] };
        for skew in skews {
            for delta in [-1i128, 0] {
                let t = i128::from(at) + skew + delta;
                if t > i128::from(now) && t < i128::from(u64::MAX) {
                    times.insert(t as u64);
                }
            }
        }
    }
    times.into_iter().collect()
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

/// The request headers after Envoy applied the changes: `Remove` drops every value of the
/// name, `Set` replaces every value with one (proxy-wasm's remove and replace).
pub fn apply(headers: &[(String, Vec<u8>)], changes: &[HeaderChange]) -> Vec<(String, Vec<u8>)> {
    let mut out = headers.to_vec();
    for change in changes {
        match change {
            HeaderChange::Remove(name) => out.retain(|(n, _)| n != name),
            HeaderChange::Set(name, value) => {
                out.retain(|(n, _)| n != name);
                out.push((name.clone(), value.clone()));
            }
        }
    }
    out
}

/// Member names that occur twice in one object, at any depth, of a JSON text; `None` when it
/// is not JSON. (An independent check, for classifying differences.)
pub fn duplicate_members(json: &[u8]) -> Option<bool> {
    match serde_json::from_slice::<DuplicateScan>(json) {
        Ok(DuplicateScan(found)) => Some(found),
        Err(_) => None,
    }
}

struct DuplicateScan(bool);

impl<'de> Deserialize<'de> for DuplicateScan {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<DuplicateScan, D::Error> {
        deserializer.deserialize_any(DuplicateScanVisitor)
    }
}

struct DuplicateScanVisitor;

impl<'de> Visitor<'de> for DuplicateScanVisitor {
    type Value = DuplicateScan;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, _: bool) -> Result<DuplicateScan, E> {
        Ok(DuplicateScan(false))
    }
    fn visit_i64<E>(self, _: i64) -> Result<DuplicateScan, E> {
        Ok(DuplicateScan(false))
    }
    fn visit_u64<E>(self, _: u64) -> Result<DuplicateScan, E> {
        Ok(DuplicateScan(false))
    }
    fn visit_f64<E>(self, _: f64) -> Result<DuplicateScan, E> {
        Ok(DuplicateScan(false))
    }
    fn visit_str<E>(self, _: &str) -> Result<DuplicateScan, E> {
        Ok(DuplicateScan(false))
    }
    fn visit_unit<E>(self) -> Result<DuplicateScan, E> {
        Ok(DuplicateScan(false))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<DuplicateScan, A::Error> {
        let mut found = false;
        while let Some(DuplicateScan(inner)) = seq.next_element()? {
            found |= inner;
        }
        Ok(DuplicateScan(found))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<DuplicateScan, A::Error> {
        let mut names = BTreeSet::new();
        let mut found = false;
        while let Some(name) = map.next_key::<String>()? {
            found |= !names.insert(name);
            let DuplicateScan(inner) = map.next_value()?;
            found |= inner;
        }
        Ok(DuplicateScan(found))
    }
}

thread_local! {
    static TRACING: bool = std::env::var_os("FUZZ_TRACE").is_some();
}

/// `FUZZ_TRACE=1 fuzz/target/.../<target> INPUT` prints what a target decided.
pub fn tracing() -> bool {
    TRACING.with(|t| *t)
}

/// Fails the run with a message that names the input's decisions (libFuzzer keeps the input).
#[macro_export]
macro_rules! wrong {
    ($($arg:tt)*) => {
        panic!("WRONG DECISION: {}", format!($($arg)*))
    };
}
