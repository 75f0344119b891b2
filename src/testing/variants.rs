//! Other spellings of a valid signature, where implementations differ: the derived cases the
//! Wycheproof runs check beside each valid vector, with jwt-guard's verdict for each.

use rsa::BigUint;

use crate::authn::jwks::{KeyMaterial, VerificationKey};
use crate::token::jws::Algorithm;
use rsa::traits::PublicKeyParts;

/// Wycheproof writes big integers as ASN.1 does (a leading 0x00 when the top bit is set); a JWK
/// holds the unsigned big-endian octets without leading zeros (Base64urlUInt, RFC 7518 §2).
pub fn unsigned(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    bytes.get(first..).unwrap_or_default()
}

/// A signature derived from a valid one, and whether jwt-guard must accept it.
pub struct Variant {
    pub name: &'static str,
    pub sig: Vec<u8>,
    pub valid: bool,
}

/// The group orders of P-256, P-384 and P-521 (SEC 2), big-endian hex.
const P256_ORDER: &[u8] = b"ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551";
const P384_ORDER: &[u8] = b"ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf\
                            581a0db248b0a77aecec196accc52973";
const P521_ORDER: &[u8] = b"01ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\
                            fa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409";

/// `value` as exactly `width` big-endian bytes, if it fits.
fn fixed(value: &BigUint, width: usize) -> Option<Vec<u8>> {
    let bytes = value.to_bytes_be();
    let padding = width.checked_sub(bytes.len())?;
    let mut out = vec![0; padding];
    out.extend_from_slice(&bytes);
    Some(out)
}

/// Other spellings of the valid signature `sig` under `key`, each with jwt-guard's verdict:
///
/// ECDSA (r || s, each as wide as the order n):
/// - `s_negated`, (r, n - s): the same signature's other valid form. Accepted: JWS has no low-S
///   rule, and neither BoringSSL nor the `p256`/`p384`/`p521` crates have one (docs/security.md).
/// - `r_plus_n`, `s_plus_n`, when they fit the width: a scalar is below n. Rejected.
/// - `zero_prefixed` (0x00 || r || s) and `truncated` (the last byte dropped): r || s has
///   exactly twice the width (RFC 7518 §3.4). Rejected.
///
/// RSA PKCS #1 v1.5, modulus n of k bytes:
/// - `s_plus_n`, when it fits in k bytes: RSAVP1 takes a representative below n (RFC 8017
///   §5.2.2). Rejected.
/// - `zero_prefixed` (k + 1 bytes, the same integer) and `zero_stripped` (a signature whose
///   first byte is 0x00 without it: k - 1 bytes, the same integer): the signature is exactly k
///   octets (RFC 8017 §8.2.2 step 1). Rejected.
pub fn variants(key: &VerificationKey, sig: &[u8]) -> Vec<Variant> {
    let mut out = Vec::new();
    let ecdsa = |order: &[u8], width: usize, out: &mut Vec<Variant>| {
        let Some(n) = BigUint::parse_bytes(order, 16) else {
            return;
        };
        if sig.len() != 2 * width {
            return;
        }
        let (r, s) = sig.split_at(width);
        let (r, s) = (BigUint::from_bytes_be(r), BigUint::from_bytes_be(s));
        let pair = |a: Option<Vec<u8>>, b: Option<Vec<u8>>| Some([a?, b?].concat());
        if s < n
            && let Some(sig) = pair(fixed(&r, width), fixed(&(&n - &s), width))
        {
            out.push(Variant {
                name: "s_negated",
                sig,
                valid: true,
            });
        }
        if let Some(sig) = pair(fixed(&(&r + &n), width), fixed(&s, width)) {
            out.push(Variant {
                name: "r_plus_n",
                sig,
                valid: false,
            });
        }
        if let Some(sig) = pair(fixed(&r, width), fixed(&(&s + &n), width)) {
            out.push(Variant {
                name: "s_plus_n",
                sig,
                valid: false,
            });
        }
    };
    match (&key.material, key.alg) {
        (KeyMaterial::P256(_), Algorithm::ES256) => ecdsa(P256_ORDER, 32, &mut out),
        (KeyMaterial::P384(_), Algorithm::ES384) => ecdsa(P384_ORDER, 48, &mut out),
        (KeyMaterial::P521(_), Algorithm::ES512) => ecdsa(P521_ORDER, 66, &mut out),
        (KeyMaterial::Rsa(public), Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512) => {
            let plus_n = BigUint::from_bytes_be(sig) + public.n();
            if let Some(sig) = fixed(&plus_n, public.size()) {
                out.push(Variant {
                    name: "s_plus_n",
                    sig,
                    valid: false,
                });
            }
            if let Some(rest) = sig.strip_prefix(&[0]) {
                out.push(Variant {
                    name: "zero_stripped",
                    sig: unsigned(rest).to_vec(),
                    valid: false,
                });
            }
        }
        _ => return out,
    }
    out.push(Variant {
        name: "zero_prefixed",
        sig: [&[0], sig].concat(),
        valid: false,
    });
    if let Some((_, front)) = sig.split_last()
        && matches!(
            key.material,
            KeyMaterial::P256(_) | KeyMaterial::P384(_) | KeyMaterial::P521(_)
        )
    {
        out.push(Variant {
            name: "truncated",
            sig: front.to_vec(),
            valid: false,
        });
    }
    out
}
