//! JSON Web Key Sets (RFC 7517) compiled into verification keys. A key's algorithm is fixed here,
//! from its JWK, so a token can never choose how it is verified.

use ct_codecs::{Base64UrlSafeNoPadding, Decoder};
use jwt_simple::prelude::{
    ES256PublicKey, ES384PublicKey, Ed25519PublicKey, HS256Key, HS384Key, HS512Key, PS256PublicKey,
    PS384PublicKey, PS512PublicKey, RS256PublicKey, RS384PublicKey, RS512PublicKey,
};
use serde_json::Value;

use crate::jws::Algorithm;

/// Public (or, for `oct`, shared) key material, typed by algorithm.
pub enum KeyMaterial {
    Rs256(RS256PublicKey),
    Rs384(RS384PublicKey),
    Rs512(RS512PublicKey),
    Ps256(PS256PublicKey),
    Ps384(PS384PublicKey),
    Ps512(PS512PublicKey),
    Es256(ES256PublicKey),
    Es384(ES384PublicKey),
    EdDsa(Ed25519PublicKey),
    Hs256(HS256Key),
    Hs384(HS384Key),
    Hs512(HS512Key),
}

pub struct VerificationKey {
    pub kid: Option<String>,
    pub alg: Algorithm,
    pub material: KeyMaterial,
}

impl std::fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerificationKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// A problem with one key, located relative to the key set (`keys[2].alg`).
#[derive(Debug, PartialEq, Eq)]
pub struct JwksError {
    pub field: String,
    pub message: String,
}

impl JwksError {
    fn at(field: impl Into<String>, message: impl Into<String>) -> JwksError {
        JwksError {
            field: field.into(),
            message: message.into(),
        }
    }
}

#[derive(Debug, Default)]
pub struct KeySet {
    keys: Vec<VerificationKey>,
}

impl KeySet {
    /// Accepts the key set as a JSON object or as a string holding one.
    pub fn from_value(value: &Value) -> Result<KeySet, JwksError> {
        match value {
            Value::String(text) => {
                let parsed: Value = serde_json::from_str(text)
                    .map_err(|err| JwksError::at("", format!("not valid JSON: {err}")))?;
                KeySet::from_object(&parsed)
            }
            other => KeySet::from_object(other),
        }
    }

    fn from_object(value: &Value) -> Result<KeySet, JwksError> {
        let Some(object) = value.as_object() else {
            return Err(JwksError::at("", "must be a JWKS object {\"keys\": [...]}"));
        };
        let Some(Value::Array(entries)) = object.get("keys") else {
            return Err(JwksError::at("keys", "must be an array of JWKs"));
        };
        let mut keys = Vec::with_capacity(entries.len());
        for (index, entry) in entries.iter().enumerate() {
            let field = format!("keys[{index}]");
            if let Some(key) =
                compile_jwk(entry).map_err(|message| JwksError::at(&field, message))?
            {
                if key.kid.is_some() && keys.iter().any(|k: &VerificationKey| k.kid == key.kid) {
                    return Err(JwksError::at(field + ".kid", "duplicate kid"));
                }
                keys.push(key);
            }
        }
        if keys.is_empty() {
            return Err(JwksError::at("keys", "holds no signature verification key"));
        }
        Ok(KeySet { keys })
    }

    pub fn keys(&self) -> &[VerificationKey] {
        &self.keys
    }

    pub fn by_kid(&self, kid: &str) -> Option<&VerificationKey> {
        self.keys.iter().find(|key| key.kid.as_deref() == Some(kid))
    }

    pub fn by_alg(&self, alg: Algorithm) -> impl Iterator<Item = &VerificationKey> {
        self.keys.iter().filter(move |key| key.alg == alg)
    }
}

/// `Ok(None)` for keys that are not for signatures (`"use": "enc"`), which real key sets mix in.
fn compile_jwk(jwk: &Value) -> Result<Option<VerificationKey>, String> {
    let Some(object) = jwk.as_object() else {
        return Err("must be a JWK object".into());
    };
    let text_member = |name: &str| -> Result<Option<&str>, String> {
        match object.get(name) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.as_str())),
            Some(_) => Err(format!("{name} must be a string")),
        }
    };
    if text_member("use")? == Some("enc") {
        return Ok(None);
    }
    let kty = text_member("kty")?.ok_or("kty is required")?;
    let kid = text_member("kid")?.map(str::to_owned);
    let alg = match text_member("alg")? {
        Some(name) => {
            Algorithm::from_name(name).ok_or_else(|| format!("unsupported alg {name:?}"))?
        }
        None => default_algorithm(kty, text_member("crv")?)?,
    };
    let material = match kty {
        "oct" => hmac_material(alg, text_member("k")?.ok_or("k is required for oct keys")?)?,
        _ => asymmetric_material(alg, &jwk.to_string())?,
    };
    Ok(Some(VerificationKey { kid, alg, material }))
}

/// Without `alg`, the type and curve decide. RSA and oct keys could serve several algorithms;
/// they get the most common one only, so a token cannot pick a weaker or unexpected scheme.
fn default_algorithm(kty: &str, crv: Option<&str>) -> Result<Algorithm, String> {
    match (kty, crv) {
        ("EC", Some("P-256")) => Ok(Algorithm::ES256),
        ("EC", Some("P-384")) => Ok(Algorithm::ES384),
        ("OKP", Some("Ed25519")) => Ok(Algorithm::EdDSA),
        ("RSA", _) => Ok(Algorithm::RS256),
        ("oct", _) => Ok(Algorithm::HS256),
        ("EC" | "OKP", crv) => Err(format!("unsupported curve {crv:?}")),
        (kty, _) => Err(format!("unsupported kty {kty:?}")),
    }
}

fn asymmetric_material(alg: Algorithm, jwk: &str) -> Result<KeyMaterial, String> {
    let material = match alg {
        Algorithm::RS256 => RS256PublicKey::from_jwk(jwk).map(KeyMaterial::Rs256),
        Algorithm::RS384 => RS384PublicKey::from_jwk(jwk).map(KeyMaterial::Rs384),
        Algorithm::RS512 => RS512PublicKey::from_jwk(jwk).map(KeyMaterial::Rs512),
        Algorithm::PS256 => PS256PublicKey::from_jwk(jwk).map(KeyMaterial::Ps256),
        Algorithm::PS384 => PS384PublicKey::from_jwk(jwk).map(KeyMaterial::Ps384),
        Algorithm::PS512 => PS512PublicKey::from_jwk(jwk).map(KeyMaterial::Ps512),
        Algorithm::ES256 => ES256PublicKey::from_jwk(jwk).map(KeyMaterial::Es256),
        Algorithm::ES384 => ES384PublicKey::from_jwk(jwk).map(KeyMaterial::Es384),
        Algorithm::EdDSA => Ed25519PublicKey::from_jwk(jwk).map(KeyMaterial::EdDsa),
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
            return Err(format!("alg {} needs kty \"oct\"", alg.name()));
        }
    };
    material.map_err(|err| format!("not a valid {} public key: {err}", alg.name()))
}

fn hmac_material(alg: Algorithm, k: &str) -> Result<KeyMaterial, String> {
    let secret = Base64UrlSafeNoPadding::decode_to_vec(k, None)
        .map_err(|_| "k must be base64url without padding".to_string())?;
    // RFC 7518 §3.2: the key must be at least as long as the hash output.
    let (minimum, material) = match alg {
        Algorithm::HS256 => (32, KeyMaterial::Hs256(HS256Key::from_bytes(&secret))),
        Algorithm::HS384 => (48, KeyMaterial::Hs384(HS384Key::from_bytes(&secret))),
        Algorithm::HS512 => (64, KeyMaterial::Hs512(HS512Key::from_bytes(&secret))),
        other => return Err(format!("alg {} does not fit kty \"oct\"", other.name())),
    };
    if secret.len() < minimum {
        return Err(format!(
            "k is {} bytes; {} needs at least {minimum}",
            secret.len(),
            alg.name()
        ));
    }
    Ok(material)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil;
    use serde_json::json;

    #[test]
    fn compiles_every_family_with_algorithm_from_the_jwk() {
        let set = KeySet::from_value(&testutil::jwks()).unwrap();
        let algs: Vec<_> = set.keys().iter().map(|k| k.alg).collect();
        assert!(algs.contains(&Algorithm::ES256));
        assert!(algs.contains(&Algorithm::HS256));
        assert!(algs.contains(&Algorithm::EdDSA));
        assert!(set.by_kid("es256").is_some());
    }

    #[test]
    fn accepts_the_set_as_a_string() {
        let text = testutil::jwks().to_string();
        assert!(KeySet::from_value(&Value::String(text)).is_ok());
    }

    #[test]
    fn skips_encryption_keys_and_defaults_algorithms() {
        let set = KeySet::from_value(&json!({"keys": [
            {"kty": "RSA", "use": "enc", "n": "xx", "e": "AQAB"},
            {"kty": "oct", "k": testutil::HMAC_SECRET_B64, "kid": "h"}
        ]}))
        .unwrap();
        assert_eq!(set.keys().len(), 1);
        assert_eq!(set.keys()[0].alg, Algorithm::HS256);
    }

    #[test]
    fn refuses_bad_keys_naming_them() {
        let cases = [
            (json!([]), ""),
            (json!({"keys": {}}), "keys"),
            (json!({"keys": []}), "keys"),
            (
                json!({"keys": [{"kty": "EC", "crv": "P-521", "x": "a", "y": "b"}]}),
                "keys[0]",
            ),
            (
                json!({"keys": [{"kty": "EC", "crv": "P-256", "x": "a", "y": "b"}]}),
                "keys[0]",
            ),
            (json!({"keys": [{"kty": "oct", "k": "c2hvcnQ"}]}), "keys[0]"),
            (
                json!({"keys": [{"kty": "oct", "alg": "none", "k": "c2hvcnQ"}]}),
                "keys[0]",
            ),
            (
                json!({"keys": [{"kty": "RSA", "alg": "HS256", "n": "a", "e": "AQAB"}]}),
                "keys[0]",
            ),
            (json!({"keys": [{"alg": "ES256"}]}), "keys[0]"),
            (
                json!({"keys": [{"kty": "oct", "k": testutil::HMAC_SECRET_B64, "kid": "a"},
                             {"kty": "oct", "k": testutil::HMAC_SECRET_B64, "kid": "a"}]}),
                "keys[1].kid",
            ),
        ];
        for (jwks, field) in cases {
            let err = KeySet::from_value(&jwks).unwrap_err();
            assert_eq!(err.field, field, "{jwks} -> {err:?}");
        }
    }
}
