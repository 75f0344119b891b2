//! Compact JWS parsing (RFC 7515 §7.1): structure, protected header and claims, before any key
//! is touched. Everything here is untrusted input; nothing here decides validity of a signature.

use std::fmt;

use ct_codecs::{Base64UrlSafeNoPadding, Decoder};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::reason::AuthFailure;

/// Tokens longer than this are refused before any parsing.
pub const MAX_TOKEN_BYTES: usize = 8192;

/// The signing algorithms jwt-guard verifies. A key's algorithm comes from its JWK, never from
/// the token; the token's `alg` must equal it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    ES512,
    EdDSA,
    HS256,
    HS384,
    HS512,
}

impl Algorithm {
    pub fn from_name(name: &str) -> Option<Algorithm> {
        Some(match name {
            "RS256" => Algorithm::RS256,
            "RS384" => Algorithm::RS384,
            "RS512" => Algorithm::RS512,
            "PS256" => Algorithm::PS256,
            "PS384" => Algorithm::PS384,
            "PS512" => Algorithm::PS512,
            "ES256" => Algorithm::ES256,
            "ES384" => Algorithm::ES384,
            "ES512" => Algorithm::ES512,
            "EdDSA" => Algorithm::EdDSA,
            "HS256" => Algorithm::HS256,
            "HS384" => Algorithm::HS384,
            "HS512" => Algorithm::HS512,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
            Algorithm::PS256 => "PS256",
            Algorithm::PS384 => "PS384",
            Algorithm::PS512 => "PS512",
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::ES512 => "ES512",
            Algorithm::EdDSA => "EdDSA",
            Algorithm::HS256 => "HS256",
            Algorithm::HS384 => "HS384",
            Algorithm::HS512 => "HS512",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// `None` when the token names an algorithm jwt-guard does not verify (including `none`).
    pub alg: Option<Algorithm>,
    pub kid: Option<String>,
    pub typ: Option<String>,
    /// The public key a DPoP proof carries (RFC 9449 §4.2); never used for an access token,
    /// whose keys come from configuration only.
    pub jwk: Option<Value>,
}

/// A token's claims as its payload states them: nothing about them is checked yet.
pub type UnverifiedClaims = Map<String, Value>;

/// A structurally valid compact JWS with its claims decoded, signature not yet checked.
#[derive(Debug)]
pub struct UnverifiedJws<'t> {
    pub token: &'t str,
    pub header: Header,
    pub claims: UnverifiedClaims,
    signing_input_len: usize,
    pub signature: Vec<u8>,
}

impl<'t> UnverifiedJws<'t> {
    /// The bytes the signature covers: `BASE64URL(header) "." BASE64URL(payload)`.
    pub fn signing_input(&self) -> &'t str {
        self.token.get(..self.signing_input_len).unwrap_or_default()
    }

    pub fn parse(token: &'t str) -> Result<UnverifiedJws<'t>, AuthFailure> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthFailure::TooLarge);
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            // Includes the five-part JWE compact form: encrypted tokens are not accepted.
            return Err(AuthFailure::Malformed);
        };
        if header_b64.is_empty() || payload_b64.is_empty() {
            return Err(AuthFailure::Malformed);
        }
        let header = parse_header(&decode_part(header_b64)?)?;
        let claims = parse_claims(&decode_part(payload_b64)?)?;
        let signature = decode_part(signature_b64)?;
        Ok(UnverifiedJws {
            token,
            header,
            claims,
            signing_input_len: header_b64.len() + 1 + payload_b64.len(),
            signature,
        })
    }
}

/// Strict base64url: URL-safe alphabet only, no padding, no whitespace, canonical trailing bits.
pub fn decode_part(part: &str) -> Result<Vec<u8>, AuthFailure> {
    let bytes = part.as_bytes();
    if !bytes
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
    {
        return Err(AuthFailure::Malformed);
    }
    let decoded =
        Base64UrlSafeNoPadding::decode_to_vec(bytes, None).map_err(|_| AuthFailure::Malformed)?;
    if !has_canonical_tail(bytes) {
        return Err(AuthFailure::Malformed);
    }
    Ok(decoded)
}

/// Rejects encodings whose unused low bits are set, so each byte string has one encoding.
fn has_canonical_tail(encoded: &[u8]) -> bool {
    let Some(&last) = encoded.last() else {
        return true;
    };
    let value = match last {
        b'A'..=b'Z' => last - b'A',
        b'a'..=b'z' => last - b'a' + 26,
        b'0'..=b'9' => last - b'0' + 52,
        b'-' => 62,
        _ => 63,
    };
    match encoded.len() % 4 {
        2 => value & 0x0f == 0,
        3 => value & 0x03 == 0,
        _ => true,
    }
}

fn parse_header(json: &[u8]) -> Result<Header, AuthFailure> {
    let header = parse_object(json)?;
    // jwt-guard understands no JWS extension, so any `crit` (even an empty one, which RFC 7515
    // §4.1.11 forbids) makes the token unusable. `enc` marks a JWE; `b64` (RFC 7797) changes
    // what the signature covers. `jwk`, `jku`, `x5u`, `x5c` are allowed but never used: keys
    // come from configuration only.
    if ["crit", "enc", "b64"]
        .iter()
        .any(|m| header.contains_key(*m))
    {
        return Err(AuthFailure::Malformed);
    }
    let text = |name: &str| match header.get(name) {
        None => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(AuthFailure::Malformed),
    };
    let alg_name = text("alg")?.ok_or(AuthFailure::Malformed)?;
    Ok(Header {
        alg: Algorithm::from_name(&alg_name),
        kid: text("kid")?,
        typ: text("typ")?,
        jwk: header.get("jwk").cloned(),
    })
}

fn parse_claims(json: &[u8]) -> Result<Map<String, Value>, AuthFailure> {
    let claims = parse_object(json)?;
    for name in ["exp", "nbf", "iat"] {
        if let Some(value) = claims.get(name)
            && numeric_date(value).is_none()
        {
            return Err(AuthFailure::Malformed);
        }
    }
    for name in ["iss", "sub", "jti"] {
        if let Some(value) = claims.get(name)
            && !value.is_string()
        {
            return Err(AuthFailure::Malformed);
        }
    }
    if let Some(aud) = claims.get("aud") {
        let well_typed = match aud {
            Value::String(_) => true,
            Value::Array(items) => items.iter().all(Value::is_string),
            _ => false,
        };
        if !well_typed {
            return Err(AuthFailure::Malformed);
        }
    }
    Ok(claims)
}

/// A JSON object, refusing a member name that appears twice at any depth: parsers differ on
/// which of two `sub`s (or `alg`s) wins, so a token that has two means two things. Nesting is
/// bounded by serde_json's recursion limit (128).
fn parse_object(json: &[u8]) -> Result<Map<String, Value>, AuthFailure> {
    match serde_json::from_slice::<StrictValue>(json) {
        Ok(StrictValue(Value::Object(object))) => Ok(object),
        _ => Err(AuthFailure::Malformed),
    }
}

struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<StrictValue, D::Error> {
        deserializer.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = StrictValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::Bool(value)))
    }

    fn visit_i64<E>(self, value: i64) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::Number(value.into())))
    }

    fn visit_u64<E>(self, value: u64) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::Number(value.into())))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<StrictValue, E> {
        Number::from_f64(value)
            .map(|n| StrictValue(Value::Number(n)))
            .ok_or_else(|| E::custom("not a finite number"))
    }

    fn visit_str<E>(self, value: &str) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::String(value.to_owned())))
    }

    fn visit_string<E>(self, value: String) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::String(value)))
    }

    fn visit_unit<E>(self) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::Null))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StrictValue, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictValue(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(StrictValue(Value::Array(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StrictValue, A::Error> {
        let mut object = Map::new();
        while let Some(name) = map.next_key::<String>()? {
            if object.contains_key(&name) {
                return Err(de::Error::custom("duplicate member name"));
            }
            let StrictValue(value) = map.next_value()?;
            object.insert(name, value);
        }
        Ok(StrictValue(Value::Object(object)))
    }
}

/// RFC 7519 NumericDate: non-negative seconds, fractions allowed and truncated.
pub fn numeric_date(value: &Value) -> Option<u64> {
    match value {
        Value::Number(number) => number.as_u64().or_else(|| {
            number
                .as_f64()
                // The same range as integers, however the number is written: 1e18 and
                // 1000000000000000000 are one date.
                .filter(|seconds| {
                    seconds.is_finite() && *seconds >= 0.0 && *seconds < 2f64.powi(64)
                })
                .map(|seconds| seconds as u64)
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(text: &str) -> String {
        use ct_codecs::Encoder;
        Base64UrlSafeNoPadding::encode_to_string(text).unwrap()
    }

    fn token(header: &str, claims: &str) -> String {
        format!("{}.{}.{}", b64(header), b64(claims), b64("sig"))
    }

    #[test]
    fn parses_a_well_formed_token() {
        let text = token(
            r#"{"alg":"ES256","kid":"k1","typ":"JWT"}"#,
            r#"{"sub":"a","exp":5}"#,
        );
        let jws = UnverifiedJws::parse(&text).unwrap();
        assert_eq!(jws.header.alg, Some(Algorithm::ES256));
        assert_eq!(jws.header.kid.as_deref(), Some("k1"));
        assert_eq!(jws.signature, b"sig");
        assert_eq!(jws.signing_input(), text.rsplit_once('.').unwrap().0);
    }

    #[test]
    fn refuses_bad_structure_and_headers() {
        let big = "a".repeat(MAX_TOKEN_BYTES + 1);
        let cases: Vec<(String, AuthFailure)> = vec![
            (big, AuthFailure::TooLarge),
            ("abc".into(), AuthFailure::Malformed),
            ("a.b".into(), AuthFailure::Malformed),
            ("a.b.c.d.e".into(), AuthFailure::Malformed),
            (
                format!("{}=.{}.", b64("{}"), b64("{}")),
                AuthFailure::Malformed,
            ),
            (
                format!(" {}", token(r#"{"alg":"ES256"}"#, "{}")),
                AuthFailure::Malformed,
            ),
            (
                token(r#"{"alg":"ES256","crit":["exp"]}"#, "{}"),
                AuthFailure::Malformed,
            ),
            (
                token(r#"{"alg":"ES256","crit":[]}"#, "{}"),
                AuthFailure::Malformed,
            ),
            (
                token(r#"{"alg":"RSA-OAEP","enc":"A256GCM"}"#, "{}"),
                AuthFailure::Malformed,
            ),
            (
                token(r#"{"alg":"ES256","b64":false}"#, "{}"),
                AuthFailure::Malformed,
            ),
            (token(r#"{"kid":"x"}"#, "{}"), AuthFailure::Malformed),
            (
                token(r#"{"alg":"ES256","alg":"none"}"#, "{}"),
                AuthFailure::Malformed,
            ),
            (token(r#"["alg"]"#, "{}"), AuthFailure::Malformed),
            (token(r#"{"alg":"ES256"}"#, "[1]"), AuthFailure::Malformed),
            (
                token(r#"{"alg":"ES256"}"#, r#"{"exp":"soon"}"#),
                AuthFailure::Malformed,
            ),
            (
                token(r#"{"alg":"ES256"}"#, r#"{"exp":-1}"#),
                AuthFailure::Malformed,
            ),
            (
                token(r#"{"alg":"ES256"}"#, r#"{"aud":[1]}"#),
                AuthFailure::Malformed,
            ),
            (
                token(r#"{"alg":"ES256"}"#, r#"{"iss":7}"#),
                AuthFailure::Malformed,
            ),
            (
                token(r#"{"alg":"ES256"}"#, "not json"),
                AuthFailure::Malformed,
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(UnverifiedJws::parse(&text).err(), Some(expected), "{text}");
        }
    }

    #[test]
    fn duplicate_member_names_are_refused_at_any_depth() {
        let cases = [
            (r#"{"alg":"ES256","kid":"a","kid":"b"}"#, "{}"),
            (r#"{"alg":"ES256","x":1,"x":1}"#, "{}"),
            (r#"{"alg":"ES256"}"#, r#"{"sub":"a","sub":"b"}"#),
            (r#"{"alg":"ES256"}"#, r#"{"exp":1,"exp":2}"#),
            (
                r#"{"alg":"ES256"}"#,
                r#"{"r":{"roles":["a"],"roles":["admin"]}}"#,
            ),
            (r#"{"alg":"ES256"}"#, r#"{"l":[{"a":1,"a":2}]}"#),
        ];
        for (header, claims) in cases {
            let text = token(header, claims);
            assert_eq!(
                UnverifiedJws::parse(&text).err(),
                Some(AuthFailure::Malformed),
                "{header} {claims}"
            );
        }
    }

    #[test]
    fn key_supplying_headers_and_odd_private_claims_are_no_reason_to_refuse() {
        let header = r#"{"alg":"ES256","kid":"k","jwk":{"kty":"EC","crv":"P-256","x":"a","y":"b"},"x5c":["MIIB"],"jku":"https://evil.example/jwks","x5u":"https://evil.example/c","typ":"at+jwt"}"#;
        let claims = r#"{"nonce":12345,"ctx":{"nonce":[1,2]},"iss":"i","exp":10.5}"#;
        let text = token(header, claims);
        let jws = UnverifiedJws::parse(&text).unwrap();
        assert_eq!(jws.header.alg, Some(Algorithm::ES256));
        assert_eq!(jws.header.kid.as_deref(), Some("k"));
        assert_eq!(jws.claims["nonce"], serde_json::json!(12345));
    }

    #[test]
    fn nesting_is_bounded() {
        let nested =
            |depth: usize| format!(r#"{{"a":{}1{}}}"#, "[".repeat(depth), "]".repeat(depth));
        assert!(UnverifiedJws::parse(&token(r#"{"alg":"ES256"}"#, &nested(100))).is_ok());
        assert_eq!(
            UnverifiedJws::parse(&token(r#"{"alg":"ES256"}"#, &nested(200))).err(),
            Some(AuthFailure::Malformed)
        );
    }

    #[test]
    fn none_and_unknown_algorithms_parse_without_an_algorithm() {
        for alg in ["none", "HS1", "ES256K", "es512", "ES512 "] {
            let text = token(&format!(r#"{{"alg":"{alg}"}}"#), "{}");
            assert_eq!(
                UnverifiedJws::parse(&text).unwrap().header.alg,
                None,
                "{alg}"
            );
        }
    }

    #[test]
    fn refuses_non_canonical_base64() {
        // "QQ" is "A"; "QR" decodes to the same byte with stray low bits set.
        assert_eq!(decode_part("QQ").unwrap(), b"A");
        assert_eq!(decode_part("QR"), Err(AuthFailure::Malformed));
        assert_eq!(decode_part("Q"), Err(AuthFailure::Malformed));
        assert_eq!(decode_part("QQ=="), Err(AuthFailure::Malformed));
        assert_eq!(decode_part("Q+8"), Err(AuthFailure::Malformed));
    }

    #[test]
    fn numeric_dates() {
        assert_eq!(numeric_date(&serde_json::json!(10)), Some(10));
        assert_eq!(numeric_date(&serde_json::json!(10.9)), Some(10));
        assert_eq!(numeric_date(&serde_json::json!(-1)), None);
        assert_eq!(
            numeric_date(&serde_json::json!(1e18)),
            numeric_date(&serde_json::json!(1_000_000_000_000_000_000u64))
        );
        assert_eq!(numeric_date(&serde_json::json!(1e20)), None);
        assert_eq!(numeric_date(&serde_json::json!(-0.5)), None);
        assert_eq!(numeric_date(&serde_json::json!("10")), None);
    }

    /// The top of the NumericDate range: the largest `f64` below 2^64 is a date, 2^64 itself
    /// (what `18446744073709551616` parses to) is not, and `u64::MAX` written as an integer is.
    #[test]
    fn numeric_dates_at_the_end_of_the_range() {
        let below = 18_446_744_073_709_549_568.0_f64;
        assert_eq!(numeric_date(&serde_json::json!(below)), Some(below as u64));
        let two_to_64: Value = serde_json::from_str("18446744073709551616").unwrap();
        assert_eq!(numeric_date(&two_to_64), None);
        assert_eq!(numeric_date(&serde_json::json!(u64::MAX)), Some(u64::MAX));
    }

    /// A token of exactly `MAX_TOKEN_BYTES` is parsed (here: refused as malformed, one part);
    /// one byte more is too large.
    #[test]
    fn the_size_limit_is_inclusive() {
        let at = "a".repeat(MAX_TOKEN_BYTES);
        assert_eq!(
            UnverifiedJws::parse(&at).err(),
            Some(AuthFailure::Malformed)
        );
        let over = "a".repeat(MAX_TOKEN_BYTES + 1);
        assert_eq!(
            UnverifiedJws::parse(&over).err(),
            Some(AuthFailure::TooLarge)
        );
    }

    /// Non-canonical trailing bits are refused at any length, not only in short parts: the
    /// tail's unused bits depend on the length modulo 4.
    #[test]
    fn non_canonical_tails_are_refused_at_any_length() {
        for prefix in ["", "QUFB", "QUFBQUFBQUFBQUFBQUFB"] {
            assert!(decode_part(&format!("{prefix}QQ")).is_ok(), "{prefix}QQ");
            assert!(decode_part(&format!("{prefix}QUE")).is_ok(), "{prefix}QUE");
            for tail in ["QR", "QUF"] {
                assert_eq!(
                    decode_part(&format!("{prefix}{tail}")),
                    Err(AuthFailure::Malformed),
                    "{prefix}{tail}"
                );
            }
        }
    }
}
