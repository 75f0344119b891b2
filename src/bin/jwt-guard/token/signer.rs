//! A private key as a JWS signer of any signing input, with its public JWK: what a DPoP proof
//! needs (RFC 9449 §4.2: the header carries the public key, so jwt-simple's header, which has
//! no place for a JWK object, cannot be used). The key is loaded by jwt-simple, as
//! `jwt-guard token` loads it, then signed with on the primitives jwt-simple itself uses.

use ct_codecs::{Base64UrlSafeNoPadding, Encoder};
use jwt_guard::token::jws::Algorithm;
use jwt_simple::prelude::{
    ECDSAP256KeyPairLike, ECDSAP384KeyPairLike, ES256KeyPair, ES384KeyPair, Ed25519KeyPair,
    EdDSAKeyPairLike, RS256KeyPair,
};
use rsa::pkcs8::DecodePrivateKey;
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};
use sha2::{Sha256, Sha384, Sha512};

use super::key::{Family, KeyFile};

/// The private half of an asymmetric key, ready to sign.
pub enum Signer {
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
    P521(Box<p521::ecdsa::SigningKey>),
    Ed25519(ed25519_compact::KeyPair),
    Rsa(Box<rsa::RsaPrivateKey>),
}

impl KeyFile {
    /// The key as a signer, with the algorithm it signs (`alg`, else as `jwt-guard token`
    /// chooses). Symmetric keys are refused: their "public" half would be the secret.
    pub fn signer(&self, alg: Option<Algorithm>) -> Result<(Algorithm, Signer), String> {
        let (family, alg) = self.choose(alg)?;
        let unusable = |_| format!("not a usable private key for {}", alg.name());
        let jwk = self.jwt_simple_jwk();
        macro_rules! load {
            ($key_pair:ty) => {
                match &jwk {
                    Some(jwk) => <$key_pair>::from_jwk(jwk).map_err(unusable)?,
                    None => <$key_pair>::from_der(self.der()).map_err(unusable)?,
                }
            };
        }
        let signer = match family {
            Family::P256 => Signer::P256(load!(ES256KeyPair).key_pair().as_ref().clone()),
            Family::P384 => Signer::P384(load!(ES384KeyPair).key_pair().as_ref().clone()),
            Family::P521 => Signer::P521(Box::new(self.p521()?)),
            Family::Ed25519 => Signer::Ed25519(load!(Ed25519KeyPair).key_pair().as_ref().clone()),
            Family::Rsa => {
                // jwt-simple holds RSA keys in its own wrapper: its PKCS#8 form is the way out.
                let der = load!(RS256KeyPair).to_der().map_err(unusable)?;
                let key = rsa::RsaPrivateKey::from_pkcs8_der(&der)
                    .map_err(|_| format!("not a usable private key for {}", alg.name()))?;
                Signer::Rsa(Box::new(key))
            }
            Family::Oct => {
                return Err(
                    "a symmetric (oct) key cannot sign a DPoP proof or bind a token: \
                            an asymmetric key is needed"
                        .into(),
                );
            }
        };
        Ok((alg, signer))
    }
}

impl KeyFile {
    /// The P-521 key of a JWK (`d`, whose public point must be the JWK's `x`, `y`) or PKCS#8 file.
    fn p521(&self) -> Result<p521::ecdsa::SigningKey, String> {
        let jwk = match self {
            KeyFile::Pem { der, .. } => return super::key::p521_from_pkcs8(der),
            KeyFile::Jwk { jwk, .. } => jwk,
        };
        let member = |name: &str| {
            jwk.get(name)
                .and_then(Value::as_str)
                .and_then(|text| jwt_guard::token::jws::decode_part(text).ok())
                .ok_or_else(|| format!("the P-521 JWK's {name} is missing or not base64url"))
        };
        let key = p521::ecdsa::SigningKey::from_slice(&member("d")?)
            .map_err(|_| "the P-521 JWK's d is not a P-521 private key".to_string())?;
        let point = key.verifying_key().to_sec1_point(false);
        let coordinates = point.as_bytes().get(1..).unwrap_or_default();
        let (x, y) = coordinates.split_at(coordinates.len() / 2);
        if member("x")? != x || member("y")? != y {
            return Err("the P-521 JWK's x and y are not the public half of its d".into());
        }
        Ok(key)
    }
}

fn b64(bytes: &[u8]) -> String {
    // Encoding into a String cannot fail for lengths this small; an empty string would only
    // make the proof fail verification, never pass it.
    Base64UrlSafeNoPadding::encode_to_string(bytes).unwrap_or_default()
}

impl Signer {
    /// The public JWK: the members RFC 7518/8037 define for the key type, nothing else (no
    /// private member, no `kid`, `alg` or `use`).
    pub fn public_jwk(&self) -> Value {
        match self {
            Signer::P256(key) => {
                let point = key.verifying_key().to_sec1_point(false);
                ec_jwk("P-256", point.as_bytes())
            }
            Signer::P384(key) => {
                let point = key.verifying_key().to_sec1_point(false);
                ec_jwk("P-384", point.as_bytes())
            }
            Signer::P521(key) => {
                let point = key.verifying_key().to_sec1_point(false);
                ec_jwk("P-521", point.as_bytes())
            }
            Signer::Ed25519(pair) => {
                json!({"kty": "OKP", "crv": "Ed25519", "x": b64(pair.pk.as_ref())})
            }
            Signer::Rsa(key) => json!({
                "kty": "RSA",
                "n": b64(&key.n().to_bytes_be()),
                "e": b64(&key.e().to_bytes_be()),
            }),
        }
    }

    /// The compact JWS of `header` and `claims`, signed with `alg`.
    pub fn compact(
        &self,
        alg: Algorithm,
        header: &Value,
        claims: &Value,
    ) -> Result<String, String> {
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let signature = self.sign(alg, input.as_bytes())?;
        Ok(format!("{input}.{}", b64(&signature)))
    }

    /// The JWS signature of `input` with `alg` (one [`KeyFile::signer`] accepted for this key):
    /// ECDSA as r‖s, RSA PKCS#1 v1.5 or PSS (salt as long as the hash), Ed25519.
    pub fn sign(&self, alg: Algorithm, input: &[u8]) -> Result<Vec<u8>, String> {
        use rsa::signature::{RandomizedSigner, SignatureEncoding, Signer as _};
        let failed = |err: rsa::signature::Error| format!("cannot sign: {err}");
        match (self, alg) {
            (Signer::P256(key), Algorithm::ES256) => {
                let signature: p256::ecdsa::Signature =
                    p256::ecdsa::signature::Signer::sign(key, input);
                Ok(signature.to_bytes().to_vec())
            }
            (Signer::P384(key), Algorithm::ES384) => {
                let signature: p384::ecdsa::Signature =
                    p384::ecdsa::signature::Signer::sign(key, input);
                Ok(signature.to_bytes().to_vec())
            }
            (Signer::P521(key), Algorithm::ES512) => {
                let signature: p521::ecdsa::Signature =
                    p521::ecdsa::signature::Signer::sign(key.as_ref(), input);
                Ok(signature.to_bytes().to_vec())
            }
            (Signer::Ed25519(pair), Algorithm::EdDSA) => Ok(pair.sk.sign(input, None).to_vec()),
            (Signer::Rsa(key), alg) => {
                let key = rsa::RsaPrivateKey::clone(key);
                let mut rng = rsa::rand_core::OsRng;
                macro_rules! pkcs1 {
                    ($hash:ty) => {
                        rsa::pkcs1v15::SigningKey::<$hash>::new(key)
                            .try_sign(input)
                            .map(|s| s.to_vec())
                            .map_err(failed)
                    };
                }
                macro_rules! pss {
                    ($hash:ty) => {
                        rsa::pss::BlindedSigningKey::<$hash>::new(key)
                            .try_sign_with_rng(&mut rng, input)
                            .map(|s| s.to_vec())
                            .map_err(failed)
                    };
                }
                match alg {
                    Algorithm::RS256 => pkcs1!(Sha256),
                    Algorithm::RS384 => pkcs1!(Sha384),
                    Algorithm::RS512 => pkcs1!(Sha512),
                    Algorithm::PS256 => pss!(Sha256),
                    Algorithm::PS384 => pss!(Sha384),
                    Algorithm::PS512 => pss!(Sha512),
                    other => Err(format!("an RSA key cannot sign {}", other.name())),
                }
            }
            (_, other) => Err(format!("this key cannot sign {}", other.name())),
        }
    }
}

/// An EC public JWK from the uncompressed SEC1 point (0x04 ‖ x ‖ y).
fn ec_jwk(crv: &str, point: &[u8]) -> Value {
    let coordinates = point.get(1..).unwrap_or_default();
    let (x, y) = coordinates.split_at(coordinates.len() / 2);
    json!({"kty": "EC", "crv": crv, "x": b64(x), "y": b64(y)})
}

#[cfg(test)]
mod tests {
    use super::*;
    use jwt_simple::prelude::ECDSAP256PublicKeyLike;

    /// A fresh P-256 key as a PKCS#8 PEM file, and its public point as jwt-simple sees it.
    fn p256_pem() -> (KeyFile, Vec<u8>) {
        let pair = ES256KeyPair::generate();
        let point = pair.public_key().public_key().to_bytes_uncompressed();
        (KeyFile::parse(&pair.to_pem().unwrap()).unwrap(), point)
    }

    #[test]
    fn an_ec_key_gives_only_its_public_members() {
        let (key, point) = p256_pem();
        let (alg, signer) = key.signer(None).unwrap();
        assert_eq!(alg, Algorithm::ES256);
        assert_eq!(
            signer.public_jwk(),
            json!({"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..])})
        );
    }

    #[test]
    fn es256_signatures_verify_with_the_public_jwk() {
        use p256::ecdsa::signature::Verifier;
        let (key, point) = p256_pem();
        let (alg, signer) = key.signer(None).unwrap();
        let signature = signer.sign(alg, b"header.payload").unwrap();
        assert_eq!(signature.len(), 64);
        let public = p256::ecdsa::VerifyingKey::from_sec1_bytes(&point).unwrap();
        let parsed = p256::ecdsa::Signature::from_slice(&signature).unwrap();
        assert!(public.verify(b"header.payload", &parsed).is_ok());
        assert!(public.verify(b"header.other", &parsed).is_err());
    }

    #[test]
    fn ed25519_rfc_8037_key_gives_its_public_jwk_and_signature() {
        // RFC 8037 Appendix A.1 and A.4: the key, and the signature of the example input.
        let key = KeyFile::parse(
            r#"{"kty":"OKP","crv":"Ed25519",
                "d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A",
                "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#,
        )
        .unwrap();
        let (alg, signer) = key.signer(None).unwrap();
        assert_eq!(alg, Algorithm::EdDSA);
        assert_eq!(
            signer.public_jwk(),
            json!({"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"})
        );
        let signature = signer
            .sign(
                alg,
                b"eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc",
            )
            .unwrap();
        assert_eq!(
            b64(&signature),
            "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
        );
    }

    #[test]
    fn symmetric_keys_and_mismatched_algorithms_are_refused() {
        let oct =
            KeyFile::parse(r#"{"kty":"oct","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"}"#)
                .unwrap();
        assert!(matches!(oct.signer(None), Err(why) if why.contains("asymmetric")));
        let (ec, _) = p256_pem();
        assert!(ec.signer(Some(Algorithm::RS256)).is_err());
    }
}
