//! The key `jwt-guard token` signs with: a private JWK (or a key set of one) or a PEM file
//! (PKCS#8, or PKCS#1 RSA), its kind, the algorithm it signs with, and the signing itself.

use ct_codecs::{Base64, Decoder};
use jwt_guard::token::jws::Algorithm;
use jwt_simple::prelude::{
    ECDSAP256KeyPairLike, ECDSAP384KeyPairLike, ES256KeyPair, ES384KeyPair, Ed25519KeyPair,
    EdDSAKeyPairLike, HS256Key, HS384Key, HS512Key, JWTClaims, MACLike, PS256KeyPair, PS384KeyPair,
    PS512KeyPair, RS256KeyPair, RS384KeyPair, RS512KeyPair, RSAKeyPairLike,
};
use serde_json::{Map, Value};

/// The kinds of private key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    P256,
    P384,
    P521,
    Ed25519,
    Rsa,
    Oct,
}

impl Family {
    /// The algorithm the filter derives from a public JWK of this kind without `alg`.
    fn default_alg(self) -> Algorithm {
        match self {
            Family::P256 => Algorithm::ES256,
            Family::P384 => Algorithm::ES384,
            Family::P521 => Algorithm::ES512,
            Family::Ed25519 => Algorithm::EdDSA,
            Family::Rsa => Algorithm::RS256,
            Family::Oct => Algorithm::HS256,
        }
    }

    fn allows(self, alg: Algorithm) -> bool {
        use Algorithm::*;
        match self {
            Family::P256 => alg == ES256,
            Family::P384 => alg == ES384,
            Family::P521 => alg == ES512,
            Family::Ed25519 => alg == EdDSA,
            Family::Rsa => matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512),
            Family::Oct => matches!(alg, HS256 | HS384 | HS512),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Family::P256 => "an EC P-256 key",
            Family::P384 => "an EC P-384 key",
            Family::P521 => "an EC P-521 key",
            Family::Ed25519 => "an Ed25519 key",
            Family::Rsa => "an RSA key",
            Family::Oct => "a symmetric (oct) key",
        }
    }
}

/// A key file as read: a JWK with its kind, or a PEM block.
pub enum KeyFile {
    Jwk {
        family: Family,
        jwk: Map<String, Value>,
    },
    /// DER of a PEM block, with its label.
    Pem { label: String, der: Vec<u8> },
}

impl KeyFile {
    pub fn parse(text: &str) -> Result<KeyFile, String> {
        if text.trim_start().starts_with('{') {
            return KeyFile::jwk(text);
        }
        let begin = text
            .find("-----BEGIN ")
            .ok_or("neither a JWK (JSON) nor a PEM file (no -----BEGIN line)")?;
        let rest = text.get(begin + "-----BEGIN ".len()..).unwrap_or_default();
        let (label, rest) = rest.split_once("-----").ok_or("a broken PEM header line")?;
        let end_line = format!("-----END {label}-----");
        let body = rest
            .split_once(end_line.as_str())
            .map(|(body, _)| body)
            .ok_or_else(|| format!("no {end_line} line"))?;
        let base64: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        let der = Base64::decode_to_vec(base64.as_bytes(), None)
            .map_err(|_| "the PEM block is not valid base64".to_string())?;
        Ok(KeyFile::Pem {
            label: label.to_string(),
            der,
        })
    }

    fn jwk(text: &str) -> Result<KeyFile, String> {
        let jwk = match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(jwk)) => jwk,
            Ok(_) => return Err("a JWK must be a JSON object".into()),
            Err(err) => return Err(format!("not valid JSON: {err}")),
        };
        // A key set with one key is fine too.
        let jwk = match jwk.get("keys") {
            Some(Value::Array(keys)) => match keys.as_slice() {
                [Value::Object(only)] => only.clone(),
                _ => return Err("a key set must hold exactly one key to sign with".into()),
            },
            _ => jwk,
        };
        let member = |name: &str| jwk.get(name).and_then(Value::as_str);
        let family = match (member("kty"), member("crv")) {
            (Some("EC"), Some("P-256")) => Family::P256,
            (Some("EC"), Some("P-384")) => Family::P384,
            (Some("EC"), Some("P-521")) => Family::P521,
            (Some("OKP"), Some("Ed25519")) => Family::Ed25519,
            (Some("RSA"), _) => Family::Rsa,
            (Some("oct"), _) => Family::Oct,
            (kty, crv) => {
                return Err(format!(
                    "unsupported JWK: kty {kty:?}, crv {crv:?} (EC P-256/P-384/P-521, OKP Ed25519, RSA or oct)"
                ));
            }
        };
        let private = match family {
            Family::Oct => jwk.contains_key("k"),
            _ => jwk.contains_key("d"),
        };
        if !private {
            return Err(format!(
                "{} without its private part ({}): a public key cannot sign",
                family.name(),
                if family == Family::Oct { "k" } else { "d" }
            ));
        }
        Ok(KeyFile::Jwk { family, jwk })
    }

    pub fn kid(&self) -> Option<String> {
        match self {
            KeyFile::Jwk { jwk, .. } => jwk.get("kid").and_then(Value::as_str).map(str::to_string),
            KeyFile::Pem { .. } => None,
        }
    }

    /// The key's family and the algorithm to sign with.
    pub(super) fn choose(&self, alg: Option<Algorithm>) -> Result<(Family, Algorithm), String> {
        let family = match self {
            KeyFile::Jwk { family, .. } => *family,
            KeyFile::Pem { label, der } => pem_family(label, der, alg)?,
        };
        let from_jwk = match self {
            KeyFile::Jwk { jwk, .. } => jwk
                .get("alg")
                .and_then(Value::as_str)
                .and_then(Algorithm::from_name)
                .filter(|alg| family.allows(*alg)),
            KeyFile::Pem { .. } => None,
        };
        let alg = alg.or(from_jwk).unwrap_or(family.default_alg());
        if !family.allows(alg) {
            return Err(format!("{} cannot sign {}", family.name(), alg.name()));
        }
        Ok((family, alg))
    }

    /// The JWK as jwt-simple's `from_jwk` takes it, or None for a PEM key. jwt-simple loads a
    /// JWK only into the type its `alg` names: the algorithm chosen here is the one asked for,
    /// so the JWK's own `alg` is left out.
    pub(super) fn jwt_simple_jwk(&self) -> Option<String> {
        match self {
            KeyFile::Jwk { jwk, .. } => {
                let mut jwk = jwk.clone();
                jwk.remove("alg");
                jwk.remove("kid");
                Some(Value::Object(jwk).to_string())
            }
            KeyFile::Pem { .. } => None,
        }
    }

    /// The DER of a PEM key (empty for a JWK).
    pub(super) fn der(&self) -> &[u8] {
        match self {
            KeyFile::Pem { der, .. } => der.as_slice(),
            KeyFile::Jwk { .. } => &[],
        }
    }

    pub fn sign(
        &self,
        alg: Option<Algorithm>,
        kid: Option<&str>,
        claims: Map<String, Value>,
    ) -> Result<String, String> {
        let (family, alg) = self.choose(alg)?;
        let claims = JWTClaims {
            issued_at: None,
            expires_at: None,
            invalid_before: None,
            issuer: None,
            subject: None,
            audiences: None,
            jwt_id: None,
            nonce: None,
            custom: claims,
        };
        let failed = |err: jwt_simple::Error| format!("cannot sign with this key: {err}");
        let jwk = self.jwt_simple_jwk();
        let der = self.der();
        let unusable = |_| format!("not a usable private key for {}", alg.name());
        macro_rules! sign_with {
            ($key_pair:ty, $sign:ident) => {{
                let key = match &jwk {
                    Some(jwk) => <$key_pair>::from_jwk(jwk).map_err(unusable)?,
                    None => <$key_pair>::from_der(der).map_err(unusable)?,
                };
                let key = match kid {
                    Some(kid) => key.with_key_id(kid),
                    None => key,
                };
                key.$sign(claims).map_err(failed)
            }};
        }
        match (family, alg) {
            (Family::Oct, _) => {
                let secret = match self {
                    KeyFile::Jwk { jwk, .. } => jwk
                        .get("k")
                        .and_then(Value::as_str)
                        .and_then(|k| jwt_guard::token::jws::decode_part(k).ok())
                        .ok_or("the oct JWK's k is not base64url")?,
                    KeyFile::Pem { .. } => return Err("a PEM file holds no HMAC secret".into()),
                };
                macro_rules! mac_with {
                    ($key:ty) => {{
                        let key = <$key>::from_bytes(&secret);
                        let key = match kid {
                            Some(kid) => key.with_key_id(kid),
                            None => key,
                        };
                        key.authenticate(claims).map_err(failed)
                    }};
                }
                match alg {
                    Algorithm::HS384 => mac_with!(HS384Key),
                    Algorithm::HS512 => mac_with!(HS512Key),
                    _ => mac_with!(HS256Key),
                }
            }
            (_, Algorithm::ES256) => sign_with!(ES256KeyPair, sign),
            (_, Algorithm::ES384) => sign_with!(ES384KeyPair, sign),
            // jwt-simple has no P-521: the token is put together here, as jwt-simple would.
            (Family::P521, Algorithm::ES512) => {
                let (_, signer) = self.signer(Some(alg))?;
                let mut header = serde_json::json!({"alg": "ES512", "typ": "JWT"});
                if let (Some(kid), Some(members)) = (kid, header.as_object_mut()) {
                    members.insert("kid".into(), kid.into());
                }
                signer.compact(alg, &header, &Value::Object(claims.custom))
            }
            (_, Algorithm::EdDSA) => sign_with!(Ed25519KeyPair, sign),
            (_, Algorithm::RS256) => sign_with!(RS256KeyPair, sign),
            (_, Algorithm::RS384) => sign_with!(RS384KeyPair, sign),
            (_, Algorithm::RS512) => sign_with!(RS512KeyPair, sign),
            (_, Algorithm::PS256) => sign_with!(PS256KeyPair, sign),
            (_, Algorithm::PS384) => sign_with!(PS384KeyPair, sign),
            (_, Algorithm::PS512) => sign_with!(PS512KeyPair, sign),
            (_, other) => Err(format!("{} cannot sign {}", family.name(), other.name())),
        }
    }
}

/// What kind of key a PEM block holds: PKCS#8 says so in its algorithm identifier, which is
/// found here by trying each kind (the `--alg` given, if any, first).
fn pem_family(label: &str, der: &[u8], alg: Option<Algorithm>) -> Result<Family, String> {
    match label {
        "RSA PRIVATE KEY" => return Ok(Family::Rsa),
        "PRIVATE KEY" => {}
        "EC PRIVATE KEY" => {
            return Err(
                "a SEC1 EC key: convert it to PKCS#8 with `openssl pkcs8 -topk8 -nocrypt -in KEY`"
                    .into(),
            );
        }
        "ENCRYPTED PRIVATE KEY" => {
            return Err("an encrypted key: decrypt it first (`openssl pkcs8 -nocrypt`)".into());
        }
        label if label.contains("PUBLIC KEY") || label.contains("CERTIFICATE") => {
            return Err(format!("a {label}: a private key is needed to sign"));
        }
        other => return Err(format!("a PEM {other:?} block is not a private key")),
    }
    let loads = |family: Family| match family {
        Family::P256 => ES256KeyPair::from_der(der).is_ok(),
        Family::P384 => ES384KeyPair::from_der(der).is_ok(),
        Family::P521 => p521_from_pkcs8(der).is_ok(),
        Family::Ed25519 => Ed25519KeyPair::from_der(der).is_ok(),
        Family::Rsa => RS256KeyPair::from_der(der).is_ok(),
        Family::Oct => false,
    };
    let mut families = vec![
        Family::P256,
        Family::P384,
        Family::P521,
        Family::Ed25519,
        Family::Rsa,
    ];
    if let Some(alg) = alg {
        families.sort_by_key(|family| !family.allows(alg));
    }
    families
        .into_iter()
        .find(|family| loads(*family))
        .ok_or_else(|| {
            "a PKCS#8 key that is not EC P-256/P-384/P-521, Ed25519 or RSA (2048 to 4096 bits)"
                .into()
        })
}

/// A P-521 private key from PKCS#8 DER (jwt-simple, which loads the other kinds, has no P-521).
pub(super) fn p521_from_pkcs8(der: &[u8]) -> Result<p521::ecdsa::SigningKey, String> {
    use p521::pkcs8::DecodePrivateKey;
    p521::SecretKey::from_pkcs8_der(der)
        .map(|secret| p521::ecdsa::SigningKey::from(&secret))
        .map_err(|_| "not a usable P-521 private key".to_string())
}
