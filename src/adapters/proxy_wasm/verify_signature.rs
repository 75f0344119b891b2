//! The wire format of Envoy's `verify_signature` foreign function (its
//! `source/extensions/common/wasm/ext/verify_signature.proto`), encoded and decoded here so
//! the glue only moves bytes: arguments `hash_function` (1, string), `public_key` (2, DER
//! SubjectPublicKeyInfo), `signature` (3), `text` (4); result `result` (1, bool), `error` (2).
//!
//! BoringSSL wants an ECDSA signature as DER `SEQUENCE { INTEGER r, INTEGER s }`, while JWS
//! carries the fixed-size `r || s` (RFC 7518 §3.4); the conversion is here too.

use crate::authn::jwks::VerificationKey;
use crate::token::jws::Algorithm;

/// The `verify_signature` arguments for one check, or `None` when the host cannot express it
/// (no DER key, an algorithm it does not serve, an ECDSA signature of the wrong length).
pub fn arguments(key: &VerificationKey, message: &[u8], signature: &[u8]) -> Option<Vec<u8>> {
    let spki = key.spki_der.as_deref()?;
    let (hash, signature) = match key.alg {
        Algorithm::RS256 => ("sha256", signature.to_vec()),
        Algorithm::RS384 => ("sha384", signature.to_vec()),
        Algorithm::RS512 => ("sha512", signature.to_vec()),
        Algorithm::ES256 => ("sha256", p1363_to_der(signature, 32)?),
        Algorithm::ES384 => ("sha384", p1363_to_der(signature, 48)?),
        Algorithm::ES512 => ("sha512", p1363_to_der(signature, 66)?),
        _ => return None,
    };
    let mut out = Vec::with_capacity(spki.len() + signature.len() + message.len() + 24);
    field(&mut out, 1, hash.as_bytes());
    field(&mut out, 2, spki);
    field(&mut out, 3, &signature);
    field(&mut out, 4, message);
    Some(out)
}

/// A P-256 key, message and DER signature made with Python's `cryptography`: the host's check
/// is used only if it accepts this signature and refuses it for another message.
const PROBE_SPKI: [u8; 91] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04, 0xc4, 0xe5, 0x05, 0xe4, 0x40,
    0xc6, 0x7f, 0xa0, 0xfb, 0xa8, 0x23, 0x20, 0x45, 0xca, 0x40, 0x21, 0xf1, 0x1b, 0x54, 0xfb, 0x91,
    0xf2, 0xaa, 0x90, 0x99, 0x48, 0x58, 0x68, 0x52, 0x45, 0xa0, 0xc3, 0x04, 0x57, 0x50, 0xa5, 0xec,
    0x00, 0x12, 0xa4, 0x7f, 0xdd, 0x75, 0x93, 0x00, 0xf9, 0xac, 0xb9, 0x32, 0x19, 0xa8, 0x05, 0xa1,
    0x03, 0x7a, 0xdf, 0x20, 0xda, 0xbf, 0x32, 0xcf, 0xc2, 0x9a, 0x79,
];
const PROBE_MESSAGE: &[u8] = b"jwt-guard verify_signature probe";
const PROBE_SIGNATURE: [u8; 71] = [
    0x30, 0x45, 0x02, 0x20, 0x2b, 0x96, 0x82, 0xa7, 0x6d, 0x7c, 0x6e, 0x0a, 0xd5, 0xca, 0xaf, 0x39,
    0xb3, 0xa6, 0x15, 0xa7, 0x46, 0xb8, 0xc1, 0xd1, 0x7d, 0xa6, 0xfa, 0x66, 0xcf, 0x8f, 0xf7, 0x9e,
    0xc5, 0x13, 0xf6, 0x70, 0x02, 0x21, 0x00, 0x97, 0xc2, 0xff, 0x4c, 0x83, 0x8e, 0x9c, 0x38, 0xe1,
    0x4e, 0x42, 0x79, 0xa7, 0x10, 0x9d, 0xf0, 0xcf, 0xe3, 0x88, 0x47, 0x74, 0xa4, 0xda, 0xcd, 0xeb,
    0xc1, 0x18, 0xf3, 0xc0, 0x95, 0x9c, 0x18,
];

/// Arguments for the start-up probe: the probe signature over its own message (`genuine`) or
/// over another one.
pub fn probe_arguments(genuine: bool) -> Vec<u8> {
    let message: &[u8] = if genuine {
        PROBE_MESSAGE
    } else {
        b"another message"
    };
    let mut out = Vec::new();
    field(&mut out, 1, b"sha256");
    field(&mut out, 2, &PROBE_SPKI);
    field(&mut out, 3, &PROBE_SIGNATURE);
    field(&mut out, 4, message);
    out
}

/// `Some(valid)` from a well-formed `VerifySignatureResult`; `None` otherwise.
pub fn result(bytes: &[u8]) -> Option<bool> {
    let mut valid = false;
    let mut rest = bytes;
    while !rest.is_empty() {
        let (tag, after_tag) = varint(rest)?;
        rest = after_tag;
        match (tag >> 3, tag & 7) {
            (1, 0) => {
                let (value, after) = varint(rest)?;
                valid = value == 1;
                rest = after;
            }
            (_, 0) => rest = varint(rest)?.1,
            (_, 2) => {
                let (length, after) = varint(rest)?;
                rest = after.get(usize::try_from(length).ok()?..)?;
            }
            _ => return None,
        }
    }
    Some(valid)
}

/// A length-delimited protobuf field.
fn field(out: &mut Vec<u8>, number: u64, bytes: &[u8]) {
    put_varint(out, number << 3 | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn varint(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let mut value = 0u64;
    for (index, byte) in bytes.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * index);
        if byte & 0x80 == 0 {
            return Some((value, bytes.get(index + 1..)?));
        }
    }
    None
}

/// JOSE `r || s` (each exactly `size` bytes) as DER. `None` for a signature of another length,
/// which no valid signature has.
pub fn p1363_to_der(signature: &[u8], size: usize) -> Option<Vec<u8>> {
    if signature.len() != 2 * size {
        return None;
    }
    let (r, s) = signature.split_at(size);
    let (r, s) = (der_integer(r), der_integer(s));
    let body = r.len() + s.len();
    let mut out = Vec::with_capacity(body + 3);
    out.push(0x30);
    if body >= 0x80 {
        out.push(0x81);
    }
    out.push(body as u8);
    out.extend_from_slice(&r);
    out.extend_from_slice(&s);
    Some(out)
}

/// A non-negative big-endian integer as DER: no leading zeros, a zero byte before a high bit.
fn der_integer(bytes: &[u8]) -> Vec<u8> {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    let digits = bytes.get(first..).unwrap_or_default();
    let mut out = Vec::with_capacity(digits.len() + 3);
    out.push(0x02);
    match digits.first() {
        None => out.extend_from_slice(&[1, 0]),
        Some(high) if high & 0x80 != 0 => {
            out.push(digits.len() as u8 + 1);
            out.push(0);
            out.extend_from_slice(digits);
        }
        Some(_) => {
            out.push(digits.len() as u8);
            out.extend_from_slice(digits);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecdsa_signatures_become_der() {
        let mut sig = vec![0u8; 64];
        sig[31] = 1; // r = 1
        sig[32] = 0x80; // s has its high bit set: needs a zero byte
        let der = p1363_to_der(&sig, 32).unwrap();
        let mut expected = vec![0x30, 3 + 35, 0x02, 1, 1, 0x02, 33, 0];
        expected.push(0x80);
        expected.extend_from_slice(&[0; 31]);
        assert_eq!(der, expected);
        // r = 0 stays a valid DER integer (the host then refuses the signature).
        let zeros = p1363_to_der(&[0u8; 64], 32).unwrap();
        assert_eq!(zeros, vec![0x30, 6, 0x02, 1, 0, 0x02, 1, 0]);
        // P-384 at full size: 2 × (tag, length, zero byte, 48 bytes).
        let big = p1363_to_der(&[0xff; 96], 48).unwrap();
        assert_eq!(&big[..5], &[0x30, 2 * (2 + 49), 0x02, 49, 0]);
        assert_eq!(big.len(), 2 + 2 * (2 + 49));
        // P-521: 66-octet halves; a high bit needs a zero byte too, and the body (up to
        // 2 × 69 octets) a long-form length.
        let p521 = p1363_to_der(&[0xff; 132], 66).unwrap();
        assert_eq!(&p521[..6], &[0x30, 0x81, 2 * (2 + 67), 0x02, 67, 0]);
        assert_eq!(p521.len(), 3 + 2 * (2 + 67));
        let mut low = vec![0u8; 132];
        low[0] = 1; // r = 2^520, as wide as a P-521 scalar gets
        low[131] = 1; // s = 1
        let der = p1363_to_der(&low, 66).unwrap();
        assert_eq!(&der[..5], &[0x30, 2 + 66 + 3, 0x02, 66, 1]);
        assert!(der.ends_with(&[0x02, 1, 1]));
        assert_eq!(p1363_to_der(&[1; 130], 66), None);
        assert_eq!(p1363_to_der(&[1; 63], 32), None);
        assert_eq!(p1363_to_der(&[1; 65], 32), None);
    }

    #[test]
    fn results_are_decoded() {
        assert_eq!(result(&[0x08, 0x01, 0x12, 0x00]), Some(true));
        assert_eq!(
            result(&[0x08, 0x00, 0x12, 0x03, b'b', b'a', b'd']),
            Some(false)
        );
        assert_eq!(result(&[]), Some(false));
        assert_eq!(result(&[0x12, 0x05, b'x']), None);
        assert_eq!(result(&[0x08]), None);
        assert_eq!(result(&[0x0d, 0, 0, 0, 0]), None);
    }

    #[test]
    fn arguments_are_four_fields() {
        let keys =
            crate::authn::jwks::KeySet::from_value(&crate::testing::testutil::jwks()).unwrap();
        let key = keys.by_kid("rs256").unwrap();
        let args = arguments(key, b"msg", &[7; 256]).unwrap();
        let spki = key.spki_der.as_ref().unwrap();
        assert_eq!(&args[..8], &[0x0a, 6, b's', b'h', b'a', b'2', b'5', b'6']);
        assert!(args.windows(spki.len()).any(|w| w == spki.as_slice()));
        assert!(args.ends_with(&[0x22, 3, b'm', b's', b'g']));
        assert!(arguments(keys.by_kid("eddsa").unwrap(), b"m", &[0; 64]).is_none());
        assert!(arguments(keys.by_kid("es256").unwrap(), b"m", &[0; 63]).is_none());
        let es512 = keys.by_kid("es512").unwrap();
        let args = arguments(es512, b"m", &[1; 132]).unwrap();
        assert_eq!(&args[..8], &[0x0a, 6, b's', b'h', b'a', b'5', b'1', b'2']);
        let spki = es512.spki_der.as_ref().unwrap();
        assert!(args.windows(spki.len()).any(|w| w == spki.as_slice()));
        assert!(arguments(es512, b"m", &[1; 131]).is_none());
        assert!(arguments(es512, b"m", &[1; 96]).is_none());
    }
}
