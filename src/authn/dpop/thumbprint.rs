//! JWK thumbprints (RFC 7638): the SHA-256 of a key's required members, in lexicographic order,
//! as JSON without white space. A DPoP-bound token carries its key's thumbprint in `cnf.jkt`
//! (RFC 9449 §6.1).

use ct_codecs::{Base64UrlSafeNoPadding, Encoder};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The base64url (no padding) SHA-256 thumbprint of a public JWK, or why there is none. Only
/// the members RFC 7638 §3.2 (and RFC 8037 §2 for OKP) names take part, so a key's `kid`, `alg`
/// or `use` never change it.
pub fn jwk_thumbprint(jwk: &Value) -> Result<String, &'static str> {
    let member = |name: &str| match jwk.get(name) {
        Some(Value::String(text)) => Ok(text.as_str()),
        _ => Err("a required member of the key is missing or not a string"),
    };
    let required: &[&str] = match member("kty")? {
        "EC" => &["crv", "kty", "x", "y"],
        "RSA" => &["e", "kty", "n"],
        "OKP" => &["crv", "kty", "x"],
        _ => return Err("unsupported kty"),
    };
    let mut canonical = String::from("{");
    for (index, name) in required.iter().enumerate() {
        if index > 0 {
            canonical.push(',');
        }
        // Member names and values are JSON strings; serde_json escapes them as RFC 7638 §3.3
        // asks (no white space, the shortest escapes).
        canonical.push_str(&Value::from(*name).to_string());
        canonical.push(':');
        canonical.push_str(&Value::from(member(name)?).to_string());
    }
    canonical.push('}');
    let digest = Sha256::digest(canonical.as_bytes());
    Base64UrlSafeNoPadding::encode_to_string(digest).map_err(|_| "thumbprint encoding failed")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// RFC 7638 §3.1: the example RSA key and its thumbprint.
    #[test]
    fn rfc_7638_example() {
        let jwk = json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        assert_eq!(
            jwk_thumbprint(&jwk).unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    /// RFC 8037 Appendix A.3: the Ed25519 key's thumbprint.
    #[test]
    fn rfc_8037_okp_example() {
        let jwk = json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
        });
        assert_eq!(
            jwk_thumbprint(&jwk).unwrap(),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn only_the_required_members_count_and_bad_keys_have_none() {
        let base = json!({"kty": "EC", "crv": "P-256", "x": "a", "y": "b"});
        let mut decorated = base.clone();
        decorated["kid"] = json!("k1");
        decorated["alg"] = json!("ES256");
        assert_eq!(jwk_thumbprint(&base), jwk_thumbprint(&decorated));
        for bad in [
            json!({"kty": "EC", "crv": "P-256", "x": "a"}),
            json!({"kty": "oct", "k": "a"}),
            json!({"kty": "RSA", "n": 1, "e": "AQAB"}),
            json!("not a key"),
        ] {
            assert!(jwk_thumbprint(&bad).is_err(), "{bad}");
        }
    }
}
