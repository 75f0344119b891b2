//! The native signature backend (the `native` feature, never on wasm32): RSA PKCS #1 v1.5 and
//! PSS, ECDSA P-256/P-384 and Ed25519 checked by ring, behind the same [`SignatureVerifier`]
//! seam as the pure-Rust backend. Whatever ring does not serve (HMAC, ECDSA P-521 (ES512), a key
//! without the encoding ring takes, an RSA modulus outside ring's 2048..=8192 bits) goes to
//! [`PureRustVerifier`], so the two backends give the same answer for every key and token; the
//! Wycheproof runs (`src/testing/wycheproof.rs`) check that.
//!
//! ring takes a public key as bytes: the RSAPublicKey DER for RSA, the uncompressed point for
//! ECDSA. Both already sit, computed once per key, in the key's DER SubjectPublicKeyInfo
//! (`spki_der`, also what Envoy's host backend is given), so a check only finds them there and
//! nothing is re-encoded per token, without a field of its own in every key.

use ring::signature::{self as ring_sig, UnparsedPublicKey, VerificationAlgorithm};
use rsa::traits::PublicKeyParts;

use crate::authn::jwks::{KeyMaterial, VerificationKey};
use crate::authn::signature;
use crate::authn::verify::{PureRustVerifier, SignatureVerifier};
use crate::reason::AuthFailure;
use crate::token::jws::{Algorithm, UnverifiedJws};

/// Signatures checked by ring where it can, by [`PureRustVerifier`] elsewhere.
pub struct NativeVerifier;

impl SignatureVerifier for NativeVerifier {
    fn verify(&self, key: &VerificationKey, jws: &UnverifiedJws<'_>) -> Result<(), AuthFailure> {
        match ring_verdict(key, jws.signing_input().as_bytes(), &jws.signature) {
            Some(true) => Ok(()),
            Some(false) => Err(AuthFailure::BadSignature),
            None => PureRustVerifier.verify(key, jws),
        }
    }
}

/// [`signature::is_valid`]'s counterpart: ring's verdict, or the pure-Rust one where ring does
/// not serve the key.
pub fn is_valid(key: &VerificationKey, message: &[u8], signature: &[u8]) -> bool {
    ring_verdict(key, message, signature)
        .unwrap_or_else(|| signature::is_valid(key, message, signature))
}

/// DER of the AlgorithmIdentifier (RFC 5480 §2.1.1, RFC 8017 Appendix C) each key type's
/// SubjectPublicKeyInfo must carry for its BIT STRING to be what ring takes.
const RSA_ENCRYPTION: &[u8] = &[
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];
const EC_P256: &[u8] = &[
    0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
    0xce, 0x3d, 0x03, 0x01, 0x07,
];
const EC_P384: &[u8] = &[
    0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b, 0x81, 0x04,
    0x00, 0x22,
];

/// ring's verdict on `signature` over `message` under `key`, or `None` when ring does not serve
/// this key (the caller then asks the pure-Rust backend). Never panics, whatever the input.
pub fn ring_verdict(key: &VerificationKey, message: &[u8], signature: &[u8]) -> Option<bool> {
    let (algorithm, public): (&dyn VerificationAlgorithm, &[u8]) = match (&key.material, key.alg) {
        (KeyMaterial::Rsa(rsa_key), alg) => {
            // ring refuses a modulus outside 2048..=8192 bits with the same error as a bad
            // signature; such a key is the pure-Rust backend's (the key policy admits none).
            if !(2048..=8192).contains(&rsa_key.n().bits()) {
                return None;
            }
            let algorithm: &dyn VerificationAlgorithm = match alg {
                Algorithm::RS256 => &ring_sig::RSA_PKCS1_2048_8192_SHA256,
                Algorithm::RS384 => &ring_sig::RSA_PKCS1_2048_8192_SHA384,
                Algorithm::RS512 => &ring_sig::RSA_PKCS1_2048_8192_SHA512,
                // ring's PSS is RFC 7518 §3.5's: MGF1 with the message hash, salt as long as it.
                Algorithm::PS256 => &ring_sig::RSA_PSS_2048_8192_SHA256,
                Algorithm::PS384 => &ring_sig::RSA_PSS_2048_8192_SHA384,
                Algorithm::PS512 => &ring_sig::RSA_PSS_2048_8192_SHA512,
                _ => return None,
            };
            (
                algorithm,
                spki_bits(key.spki_der.as_deref()?, RSA_ENCRYPTION)?,
            )
        }
        (KeyMaterial::P256(_), Algorithm::ES256) => {
            // JWS has the fixed-size r || s form (RFC 7518 §3.4); any other length is refused
            // here, before ring, whatever ring would make of it.
            if signature.len() != 64 {
                return Some(false);
            }
            let point = spki_bits(key.spki_der.as_deref()?, EC_P256)?;
            (&ring_sig::ECDSA_P256_SHA256_FIXED, uncompressed(point, 65)?)
        }
        (KeyMaterial::P384(_), Algorithm::ES384) => {
            if signature.len() != 96 {
                return Some(false);
            }
            let point = spki_bits(key.spki_der.as_deref()?, EC_P384)?;
            (&ring_sig::ECDSA_P384_SHA384_FIXED, uncompressed(point, 97)?)
        }
        (KeyMaterial::Ed25519(public), Algorithm::EdDSA) => (&ring_sig::ED25519, &public[..]),
        // ring has no P-521 (ES512) and no HMAC.
        _ => return None,
    };
    Some(
        UnparsedPublicKey::new(algorithm, public)
            .verify(message, signature)
            .is_ok(),
    )
}

/// An uncompressed point (0x04 || x || y) of `len` bytes, the only form ring's ECDSA takes.
fn uncompressed(point: &[u8], len: usize) -> Option<&[u8]> {
    (point.len() == len && point.first() == Some(&4)).then_some(point)
}

/// The contents of the BIT STRING of a DER SubjectPublicKeyInfo (RFC 5280 §4.1) whose
/// AlgorithmIdentifier is exactly `algorithm`; `None` for anything else.
fn spki_bits<'a>(spki: &'a [u8], algorithm: &[u8]) -> Option<&'a [u8]> {
    let (info, rest) = der(spki, 0x30)?;
    let info = info.strip_prefix(algorithm)?;
    let (bits, after) = der(info, 0x03)?;
    // No unused bits: a key is whole octets.
    let bits = bits.strip_prefix(&[0])?;
    (rest.is_empty() && after.is_empty()).then_some(bits)
}

/// One DER element with `tag` at the start of `input` (definite lengths up to 65,535 bytes,
/// enough for an 8192-bit RSA key): its contents and what follows it.
fn der(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&found, rest) = input.split_first()?;
    if found != tag {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = match first {
        0..=0x7f => (usize::from(first), rest),
        0x81 => {
            let (&len, rest) = rest.split_first()?;
            (usize::from(len), rest)
        }
        0x82 => {
            let (len, rest) = rest.split_first_chunk::<2>()?;
            (usize::from(u16::from_be_bytes(*len)), rest)
        }
        _ => return None,
    };
    rest.split_at_checked(len)
}

#[cfg(test)]
#[path = "native_signature_tests.rs"]
mod tests;
