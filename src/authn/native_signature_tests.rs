use super::*;
use crate::authn::jwks::KeySet;
use crate::testing::testutil;
use crate::testing::vectors::{b64, ec_jwk, key_set, only_key, rsa_jwk};
use jwt_simple::prelude::*;

/// The JWS algorithms ring serves, each minted by jwt-simple with a fresh key.
const RING_SERVES: [&str; 9] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

/// A token signed by jwt-simple (not the code under test) with `alg`, and its public key as a
/// JWKS compiled the way a configured one is.
fn minted(alg: &str, rsa: &RS256KeyPair) -> (String, KeySet) {
    let claims = || Claims::create(Duration::from_hours(1));
    let alg_id = Algorithm::from_name(alg).unwrap();
    let rsa_der = rsa.to_der().unwrap();
    let components = rsa.public_key().to_components();
    let rsa_set = || key_set(rsa_jwk(alg_id, &components.n, &components.e)).unwrap();
    match alg {
        "RS256" => (rsa.sign(claims()).unwrap(), rsa_set()),
        "RS384" => (
            RS384KeyPair::from_der(&rsa_der)
                .unwrap()
                .sign(claims())
                .unwrap(),
            rsa_set(),
        ),
        "RS512" => (
            RS512KeyPair::from_der(&rsa_der)
                .unwrap()
                .sign(claims())
                .unwrap(),
            rsa_set(),
        ),
        "PS256" => (
            PS256KeyPair::from_der(&rsa_der)
                .unwrap()
                .sign(claims())
                .unwrap(),
            rsa_set(),
        ),
        "PS384" => (
            PS384KeyPair::from_der(&rsa_der)
                .unwrap()
                .sign(claims())
                .unwrap(),
            rsa_set(),
        ),
        "PS512" => (
            PS512KeyPair::from_der(&rsa_der)
                .unwrap()
                .sign(claims())
                .unwrap(),
            rsa_set(),
        ),
        "ES256" => {
            let pair = ES256KeyPair::generate();
            let point = pair.public_key().public_key().to_bytes_uncompressed();
            let jwk = ec_jwk(alg_id, "P-256", &point).unwrap();
            (pair.sign(claims()).unwrap(), key_set(jwk).unwrap())
        }
        "ES384" => {
            let pair = ES384KeyPair::generate();
            let point = pair.public_key().public_key().to_bytes_uncompressed();
            let jwk = ec_jwk(alg_id, "P-384", &point).unwrap();
            (pair.sign(claims()).unwrap(), key_set(jwk).unwrap())
        }
        "EdDSA" => {
            let pair = Ed25519KeyPair::generate();
            let x = b64(&pair.public_key().to_bytes());
            let jwk = serde_json::json!({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "x": x});
            (pair.sign(claims()).unwrap(), key_set(jwk).unwrap())
        }
        other => panic!("no minting for {other}"),
    }
}

/// Signatures derived from a valid one, none of which is valid: each bit position class
/// flipped, one byte more or less, zeros, and nothing.
fn forged(sig: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let flip = |index: usize| {
        let mut out = sig.to_vec();
        out[index] ^= 1;
        out
    };
    let mut longer = sig.to_vec();
    longer.push(0);
    let mut prefixed = vec![0];
    prefixed.extend_from_slice(sig);
    vec![
        ("first byte flipped", flip(0)),
        ("middle byte flipped", flip(sig.len() / 2)),
        ("last byte flipped", flip(sig.len() - 1)),
        ("last byte dropped", sig[..sig.len() - 1].to_vec()),
        ("zero appended", longer),
        ("zero prefixed", prefixed),
        ("all zeros", vec![0; sig.len()]),
        ("half", sig[..sig.len() / 2].to_vec()),
        ("empty", Vec::new()),
    ]
}

/// The two backends' verdicts on one case; both must be `expected`, and ring must have judged
/// it itself (a fallback to pure Rust would compare the pure-Rust backend with itself).
fn agree(key: &VerificationKey, message: &[u8], sig: &[u8], expected: bool, what: &str) {
    let pure = signature::is_valid(key, message, sig);
    let ring = ring_verdict(key, message, sig);
    assert_eq!(ring, Some(expected), "{what}: ring");
    assert_eq!(pure, expected, "{what}: pure Rust");
    assert_eq!(is_valid(key, message, sig), expected, "{what}: native");
}

#[test]
fn native_and_pure_rust_agree_on_tokens_jwt_simple_minted() {
    let rsa = RS256KeyPair::generate(2048).unwrap();
    let mut checked = 0;
    for alg in RING_SERVES {
        let (token, set) = minted(alg, &rsa);
        let key = only_key(&set, Algorithm::from_name(alg).unwrap()).unwrap();
        let jws = UnverifiedJws::parse(&token).unwrap();
        let input = jws.signing_input().as_bytes();
        assert_eq!(NativeVerifier.verify(key, &jws), Ok(()), "{alg}");
        assert_eq!(PureRustVerifier.verify(key, &jws), Ok(()), "{alg}");
        agree(key, input, &jws.signature, true, alg);
        agree(key, b"another message", &jws.signature, false, alg);
        for (name, sig) in forged(&jws.signature) {
            agree(key, input, &sig, false, &format!("{alg}: {name}"));
            checked += 1;
        }
    }
    assert_eq!(checked, RING_SERVES.len() * 9);
}

/// The PyJWT-minted fixtures through both verifiers, as tokens: the same answer for every
/// algorithm, HMAC and ES512 (which the native backend leaves to pure Rust: ring has neither)
/// included, and for a bad signature.
#[test]
fn native_and_pure_rust_agree_on_pyjwt_fixtures() {
    let keys = KeySet::from_value(&testutil::jwks()).unwrap();
    for name in [
        "valid_RS256",
        "valid_RS384",
        "valid_RS512",
        "valid_PS256",
        "valid_PS384",
        "valid_PS512",
        "valid_ES256",
        "valid_ES384",
        "valid_ES512",
        "valid_EdDSA",
        "valid_HS256",
        "valid_HS384",
        "valid_HS512",
        "bad_signature",
    ] {
        let token = testutil::token(name);
        let jws = UnverifiedJws::parse(&token).unwrap();
        let key = keys.by_kid(jws.header.kid.as_deref().unwrap()).unwrap();
        let native = NativeVerifier.verify(key, &jws);
        assert_eq!(native, PureRustVerifier.verify(key, &jws), "{name}");
        assert_eq!(native.is_ok(), name.starts_with("valid_"), "{name}");
        let served = ring_verdict(key, jws.signing_input().as_bytes(), &jws.signature);
        let ring_lacks = key.alg.name().starts_with("HS") || key.alg == Algorithm::ES512;
        assert_eq!(served.is_some(), !ring_lacks, "{name}");
    }
}

/// ES512 through the native backend is the pure-Rust check: a valid token passes, a tampered
/// one and a signature of any other size than 132 octets are bad signatures, never a panic.
#[test]
fn es512_falls_back_to_pure_rust() {
    let keys = KeySet::from_value(&testutil::jwks()).unwrap();
    let key = keys.by_kid("es512").unwrap();
    let token = testutil::token("valid_ES512");
    let jws = UnverifiedJws::parse(&token).unwrap();
    let input = jws.signing_input().as_bytes();
    assert_eq!(ring_verdict(key, input, &jws.signature), None);
    assert!(is_valid(key, input, &jws.signature));
    assert!(!is_valid(key, b"another message", &jws.signature));
    for (name, sig) in forged(&jws.signature) {
        assert!(!is_valid(key, input, &sig), "{name}");
        assert_eq!(ring_verdict(key, input, &sig), None, "{name}");
    }
    for len in [0, 1, 66, 131, 133, 264, 4096] {
        assert!(!is_valid(key, input, &vec![1; len]), "{len}");
    }
}

/// An ECDSA signature of any other length than 2 × the order's width is a bad signature, from
/// ring's side too, and never a panic.
#[test]
fn wrong_size_ecdsa_signatures_are_bad_signatures() {
    let keys = KeySet::from_value(&testutil::jwks()).unwrap();
    for (kid, width) in [("es256", 64), ("es384", 96)] {
        let key = keys.by_kid(kid).unwrap();
        for len in [0, 1, width / 2, width - 1, width + 1, 2 * width, 4096] {
            assert_eq!(
                ring_verdict(key, b"m", &vec![1; len]),
                Some(false),
                "{kid} {len}"
            );
        }
    }
}

/// Only a SubjectPublicKeyInfo of exactly the expected algorithm, with all its bytes, yields the
/// key bytes; anything else is `None` (the pure-Rust backend then judges).
#[test]
fn spki_bits_takes_only_a_whole_spki_of_its_algorithm() {
    let keys = KeySet::from_value(&testutil::jwks()).unwrap();
    let spki = keys.by_kid("es256").unwrap().spki_der.clone().unwrap();
    let point = spki_bits(&spki, EC_P256).unwrap();
    assert_eq!((point.len(), point[0]), (65, 4));
    assert!(spki_bits(&spki, EC_P384).is_none());
    assert!(spki_bits(&spki, RSA_ENCRYPTION).is_none());
    assert!(spki_bits(&spki[..spki.len() - 1], EC_P256).is_none());
    let mut longer = spki.clone();
    longer.push(0);
    assert!(spki_bits(&longer, EC_P256).is_none());
    assert!(spki_bits(&[], EC_P256).is_none());
    let rsa = keys.by_kid("rs256").unwrap().spki_der.clone().unwrap();
    let public = spki_bits(&rsa, RSA_ENCRYPTION).unwrap();
    assert_eq!(public[0], 0x30, "an RSAPublicKey SEQUENCE");
    for cut in 0..rsa.len() {
        assert!(
            spki_bits(&rsa[..cut], RSA_ENCRYPTION).is_none(),
            "cut at {cut}"
        );
    }
}
