//! ES512 keys: EC JWKs on P-521 (RFC 7518 §6.2.1). jwt-simple, which validates every other key
//! type, has no P-521, so its rules for a public EC JWK are applied here, with the same
//! strictness: `kty` "EC", `crv` "P-521", `x` and `y` each the canonical unpadded base64url of
//! at most 66 octets (leading zero octets may be dropped: see [`coordinate`]), no private or
//! foreign key material, `use` "sig" and `key_ops` at most "verify" when present, and a point
//! of the curve (not the identity).

use ct_codecs::{Base64UrlSafeNoPadding, Decoder, Encoder};
use serde_json::Value;

/// The size of a P-521 coordinate and of each half of a JOSE signature (RFC 7518 §3.4).
pub const P521_BYTES: usize = 66;
/// A full coordinate in unpadded base64url (66 octets fill 88 characters exactly).
const COORDINATE_CHARS: usize = P521_BYTES / 3 * 4;

/// Members that hold key material of another key type, or a private key.
const FOREIGN_MEMBERS: [&str; 12] = [
    "d", "n", "e", "p", "q", "dp", "dq", "qi", "oth", "k", "pub", "priv",
];

/// The DER SubjectPublicKeyInfo (RFC 5480 §2) of a P-521 key up to its point: SEQUENCE (158
/// octets), AlgorithmIdentifier {id-ecPublicKey, secp521r1}, BIT STRING (no unused bits). The
/// uncompressed point (133 octets) follows. Built once per key for Envoy's `verify_signature`.
const SPKI_PREFIX: [u8; 25] = [
    0x30, 0x81, 0x9b, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05,
    0x2b, 0x81, 0x04, 0x00, 0x23, 0x03, 0x81, 0x86, 0x00,
];

/// The verification key and DER SubjectPublicKeyInfo of an ES512 JWK.
pub fn material(jwk: &Value) -> Result<(p521::ecdsa::VerifyingKey, Vec<u8>), String> {
    let Some(object) = jwk.as_object() else {
        return Err("must be a JWK object".into());
    };
    let text = |name: &str| match object.get(name) {
        None => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.as_str())),
        Some(_) => Err(format!("{name} must be a string")),
    };
    if text("kty")? != Some("EC") || text("crv")? != Some("P-521") {
        return Err("alg ES512 needs kty \"EC\" and crv \"P-521\"".into());
    }
    if let Some(member) = FOREIGN_MEMBERS.iter().find(|m| object.contains_key(**m)) {
        return Err(format!(
            "{member} is not a member of a public EC key (a private or another type's key?)"
        ));
    }
    if let Some(key_use) = text("use")?
        && key_use != "sig"
    {
        return Err(format!("use {key_use:?}: a signature key has use \"sig\""));
    }
    if let Some(ops) = object.get("key_ops") {
        let ops = ops.as_array().ok_or("key_ops must be an array")?;
        if ops.len() > 1 || ops.iter().any(|op| op != "verify") {
            return Err("key_ops of a public signature key may only be [\"verify\"]".into());
        }
    }
    let mut point = [0u8; 1 + 2 * P521_BYTES];
    point[0] = 0x04;
    let (x, y) = point[1..].split_at_mut(P521_BYTES);
    coordinate("x", text("x")?, x)?;
    coordinate("y", text("y")?, y)?;
    let public = p521::ecdsa::VerifyingKey::from_sec1_bytes(&point)
        .map_err(|_| "x and y are not a point of P-521".to_string())?;
    let spki = [&SPKI_PREFIX[..], &point].concat();
    Ok((public, spki))
}

/// A DPoP proof key's thumbprint is taken over its members as written (RFC 7638 §3.2), so a
/// coordinate spelled short would be a second thumbprint of one key: a proof key takes only the
/// full 66 octets (88 base64url characters) RFC 7518 §6.2.1.2 asks for.
pub fn full_coordinates(jwk: &Value) -> Result<(), String> {
    for member in ["x", "y"] {
        // A missing or mistyped member is left for `material`, which names it.
        let length = jwk.get(member).and_then(Value::as_str).map(str::len);
        if length.is_some_and(|length| length != COORDINATE_CHARS) {
            return Err(format!(
                "jwk {member} must be a full 66-octet P-521 coordinate"
            ));
        }
    }
    Ok(())
}

/// Decodes a coordinate: the canonical unpadded base64url (re-encoding gives the same text) of
/// at most 66 octets, left-padded with zero octets to 66. RFC 7518 §6.2.1.2 asks for the full
/// 66, but a P-521 coordinate's first octet holds one bit, so half of all coordinates start
/// with a zero octet, and encoders that write the integer's minimal bytes drop it (BoringSSL,
/// and with it Envoy's jwt_authn, pads them; jwt_verify_lib's own EC key set has one). The value
/// is unambiguous either way, and the point is still checked to be on the curve.
fn coordinate(name: &str, b64: Option<&str>, out: &mut [u8]) -> Result<(), String> {
    let b64 = b64.ok_or_else(|| format!("{name} is required for EC keys"))?;
    let wrong = || {
        format!(
            "{name} must be a P-521 coordinate: at most {P521_BYTES} octets of canonical base64url without padding"
        )
    };
    if b64.is_empty() || b64.len() > COORDINATE_CHARS || out.len() != P521_BYTES {
        return Err(wrong());
    }
    let mut decoded = [0u8; P521_BYTES];
    let length = match Base64UrlSafeNoPadding::decode(&mut decoded, b64, None) {
        Ok(bytes) => bytes.len(),
        Err(_) => return Err(wrong()),
    };
    let bytes = decoded.get(..length).ok_or_else(wrong)?;
    let mut again = [0u8; COORDINATE_CHARS];
    match Base64UrlSafeNoPadding::encode(&mut again, bytes) {
        Ok(text) if text == b64.as_bytes() => {}
        _ => return Err(wrong()),
    }
    let (zeros, tail) = out.split_at_mut(P521_BYTES - length);
    zeros.fill(0);
    tail.copy_from_slice(bytes);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::testutil;
    use crate::token::jws::Algorithm;
    use serde_json::json;

    fn fixture_jwk() -> Value {
        let jwks = testutil::jwks();
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == "es512")
            .unwrap()
            .clone()
    }

    fn with(member: &str, value: Value) -> Value {
        let mut jwk = fixture_jwk();
        jwk[member] = value;
        jwk
    }

    fn without(member: &str) -> Value {
        let mut jwk = fixture_jwk();
        jwk.as_object_mut().unwrap().remove(member);
        jwk
    }

    #[test]
    fn the_spki_is_the_one_python_cryptography_writes() {
        let (_, spki) = material(&fixture_jwk()).unwrap();
        let expected = testutil::fixtures()["spki_der_hex"]["es512"]
            .as_str()
            .unwrap()
            .to_string();
        let hex: String = spki.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, expected);
    }

    #[test]
    fn accepts_the_members_a_public_key_may_have() {
        for jwk in [
            fixture_jwk(),
            without("alg"),
            without("kid"),
            with("use", json!("sig")),
            with("key_ops", json!(["verify"])),
            with("key_ops", json!([])),
            with("x5t", json!("anything")),
        ] {
            assert!(material(&jwk).is_ok(), "{jwk}");
        }
    }

    /// The JWK's x without its leading zero octet (the fixture's x has one).
    fn short_x(jwk: &Value) -> String {
        let mut octets = [0u8; P521_BYTES];
        let full =
            Base64UrlSafeNoPadding::decode(&mut octets, jwk["x"].as_str().unwrap(), None).unwrap();
        assert_eq!(full.first(), Some(&0));
        Base64UrlSafeNoPadding::encode_to_string(&full[1..]).unwrap()
    }

    /// The fixture's x starts with a zero octet (its SPKI reads 04 00 93…): written without it,
    /// as minimal-integer encoders do, it is the same key.
    #[test]
    fn a_coordinate_without_its_leading_zero_octets_is_the_same_key() {
        let short = short_x(&fixture_jwk());
        assert_eq!(short.len(), 87);
        let (_, expected) = material(&fixture_jwk()).unwrap();
        let (_, spki) = material(&with("x", json!(short))).unwrap();
        assert_eq!(spki, expected);
    }

    /// A DPoP proof's key is named by its thumbprint, taken over the members as written: there
    /// the short spelling would be a second name for the key, so only 66 octets are taken.
    #[test]
    fn a_dpop_proof_key_takes_only_full_coordinates() {
        let proof_key = crate::authn::jwks::proof_key;
        let mut public = fixture_jwk();
        for member in ["kid", "alg", "use"] {
            public.as_object_mut().unwrap().remove(member);
        }
        assert!(proof_key(&public, Algorithm::ES512).is_ok());
        let mut short_jwk = public.clone();
        short_jwk["x"] = json!(short_x(&public));
        let refused = proof_key(&short_jwk, Algorithm::ES512).err().unwrap();
        assert!(refused.contains("full 66-octet"), "{refused}");
    }

    /// Each case breaks one rule; the message names what is wrong.
    #[test]
    fn refuses_each_malformed_key_naming_the_problem() {
        let x = fixture_jwk()["x"].as_str().unwrap().to_string();
        let y = fixture_jwk()["y"].as_str().unwrap().to_string();
        let both = |x: String, y: String| {
            let mut jwk = fixture_jwk();
            jwk["x"] = json!(x);
            jwk["y"] = json!(y);
            jwk
        };
        let cases = [
            (with("kty", json!("RSA")), "kty"),
            (with("crv", json!("P-384")), "crv"),
            (with("crv", json!(521)), "crv must be a string"),
            (without("crv"), "crv"),
            (with("d", json!(x.clone())), "d is not"),
            (with("n", json!("AQAB")), "n is not"),
            (with("k", json!("AQAB")), "k is not"),
            (with("use", json!("sign")), "use"),
            (with("key_ops", json!(["sign"])), "key_ops"),
            (with("key_ops", json!(["verify", "verify"])), "key_ops"),
            (with("key_ops", json!("verify")), "key_ops"),
            (without("x"), "x is required"),
            (without("y"), "y is required"),
            (with("x", json!(77)), "x must be a string"),
            (
                with("x", json!(format!("{x}A"))),
                "x must be a P-521 coordinate",
            ),
            (with("x", json!(&x[..x.len() - 1])), "x"),
            (
                with("x", json!(format!("{}==", &x[..86]))),
                "x must be a P-521 coordinate",
            ),
            (
                with("y", json!(format!("+{}", &y[1..]))),
                "y must be a P-521 coordinate",
            ),
            (
                with("y", json!(format!("/{}", &y[1..]))),
                "y must be a P-521 coordinate",
            ),
            // 65 zero octets: x = 0 is no point of the curve with this y.
            (with("x", json!("A".repeat(87))), "not a point of P-521"),
            (with("x", json!("")), "x must be a P-521 coordinate"),
            // 87 characters whose last one carries bits no octet holds: not canonical.
            (
                with("x", json!(format!("{}B", "A".repeat(86)))),
                "x must be a P-521 coordinate",
            ),
            (with("y", json!(x.clone())), "not a point of P-521"),
            (with("x", json!(y.clone())), "not a point of P-521"),
            // (0, 0) is no point of the curve (SEC 1 has no affine spelling of the identity).
            (both("A".repeat(88), "A".repeat(88)), "not a point"),
            // x = p = 2^521 - 1: a coordinate must be below the field prime.
            (
                with("x", json!(format!("Af{}", "_".repeat(86)))),
                "not a point",
            ),
        ];
        for (jwk, wanted) in cases {
            let err = material(&jwk)
                .err()
                .unwrap_or_else(|| panic!("{jwk} accepted"));
            assert!(err.contains(wanted), "{jwk}: {err}");
        }
    }
}
