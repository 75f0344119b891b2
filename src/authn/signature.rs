//! The signature check itself: one key, the exact bytes the signature covers (the JWS signing
//! input) and the signature bytes. No token is parsed here, so the header and claims policy
//! reads are the ones jwt-guard's own strict parser produced, never a second parser's.

use p256::ecdsa::signature::hazmat::PrehashVerifier;
use rsa::{Pkcs1v15Sign, Pss};
use sha2::{Digest, Sha256, Sha384, Sha512};

use crate::authn::jwks::{KeyMaterial, VerificationKey};
use crate::token::jws::Algorithm;

/// Whether `signature` is a valid signature (or MAC) of `message` under `key`, with the key's
/// algorithm. The caller has already checked that the token's `alg` equals the key's.
pub fn is_valid(key: &VerificationKey, message: &[u8], signature: &[u8]) -> bool {
    match (&key.material, key.alg) {
        (KeyMaterial::Rsa(public), alg) => {
            let (scheme, hashed) = match alg {
                Algorithm::RS256 => (
                    RsaScheme::Pkcs1(Pkcs1v15Sign::new::<Sha256>()),
                    sha256(message),
                ),
                Algorithm::RS384 => (
                    RsaScheme::Pkcs1(Pkcs1v15Sign::new::<Sha384>()),
                    sha384(message),
                ),
                Algorithm::RS512 => (
                    RsaScheme::Pkcs1(Pkcs1v15Sign::new::<Sha512>()),
                    sha512(message),
                ),
                // RFC 7518 §3.5: the salt is as long as the hash output (Pss::new's default).
                Algorithm::PS256 => (RsaScheme::Pss(Pss::new::<Sha256>()), sha256(message)),
                Algorithm::PS384 => (RsaScheme::Pss(Pss::new::<Sha384>()), sha384(message)),
                Algorithm::PS512 => (RsaScheme::Pss(Pss::new::<Sha512>()), sha512(message)),
                _ => return false,
            };
            // RFC 8017 §8.2.2 / §8.1.2 step 1: the signature is exactly as long as the modulus.
            if signature.len() != rsa::traits::PublicKeyParts::size(public) {
                return false;
            }
            // Step 2 (RSAVP1, §5.2.2): and, as an integer, below it. `rsa` checks this for
            // PKCS #1 v1.5 but not for PSS, where s + n (when it fits in the modulus length)
            // would verify as s: a second encoding of the same signature.
            if rsa::BigUint::from_bytes_be(signature) >= *rsa::traits::PublicKeyParts::n(public) {
                return false;
            }
            match scheme {
                RsaScheme::Pkcs1(scheme) => public.verify(scheme, &hashed, signature).is_ok(),
                RsaScheme::Pss(scheme) => public.verify(scheme, &hashed, signature).is_ok(),
            }
        }
        (KeyMaterial::P256(public), Algorithm::ES256) => {
            // JWS uses the fixed-size r || s form (RFC 7518 §3.4), never DER.
            p256::ecdsa::Signature::from_slice(signature)
                .is_ok_and(|sig| public.verify_prehash(&sha256(message), &sig).is_ok())
        }
        (KeyMaterial::P384(public), Algorithm::ES384) => {
            p384::ecdsa::Signature::from_slice(signature)
                .is_ok_and(|sig| public.verify_prehash(&sha384(message), &sig).is_ok())
        }
        (KeyMaterial::P521(public), Algorithm::ES512) => {
            // SHA-512 (64 octets) is shorter than P-521's order: the hash is the integer as is
            // (FIPS 186-5 §6.4.2, bits2int with no truncation).
            p521::ecdsa::Signature::from_slice(signature)
                .is_ok_and(|sig| public.verify_prehash(&sha512(message), &sig).is_ok())
        }
        (KeyMaterial::Ed25519(public), Algorithm::EdDSA) => {
            ed25519_compact::Signature::from_slice(signature)
                .is_ok_and(|sig| public.verify(message, &sig).is_ok())
        }
        (KeyMaterial::Hmac(secret), alg) => {
            let expected: Vec<u8> = match alg {
                Algorithm::HS256 => hmac_sha256::HMAC::mac(message, secret).to_vec(),
                Algorithm::HS384 => hmac_sha512::sha384::HMAC::mac(message, secret).to_vec(),
                Algorithm::HS512 => hmac_sha512::HMAC::mac(message, secret).to_vec(),
                _ => return false,
            };
            constant_time_eq(&expected, signature)
        }
        _ => false,
    }
}

enum RsaScheme {
    Pkcs1(Pkcs1v15Sign),
    Pss(Pss),
}

fn sha256(message: &[u8]) -> Vec<u8> {
    Sha256::digest(message).to_vec()
}

fn sha384(message: &[u8]) -> Vec<u8> {
    Sha384::digest(message).to_vec()
}

fn sha512(message: &[u8]) -> Vec<u8> {
    Sha512::digest(message).to_vec()
}

/// A MAC comparison whose time does not depend on where the first differing byte is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authn::jwks::KeySet;
    use crate::testing::testutil;
    use crate::token::jws::UnverifiedJws;

    #[test]
    fn every_fixture_algorithm_verifies_over_the_signing_input() {
        let keys = KeySet::from_value(&testutil::jwks()).unwrap();
        for alg in [
            "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512",
            "EdDSA", "HS256", "HS384", "HS512",
        ] {
            let token = testutil::token(&format!("valid_{alg}"));
            let jws = UnverifiedJws::parse(&token).unwrap();
            let key = keys.by_kid(jws.header.kid.as_deref().unwrap()).unwrap();
            let input = jws.signing_input().as_bytes();
            assert!(is_valid(key, input, &jws.signature), "{alg}");
            let mut flipped = jws.signature.clone();
            flipped[0] ^= 1;
            assert!(!is_valid(key, input, &flipped), "{alg} flipped signature");
            assert!(
                !is_valid(key, b"other", &jws.signature),
                "{alg} other message"
            );
            assert!(!is_valid(key, input, &[]), "{alg} empty signature");
        }
    }

    #[test]
    fn mac_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
