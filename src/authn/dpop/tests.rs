//! DPoP checks, one fault at a time, on a fixed clock. Proofs are built here from their parts
//! (JSON, base64url, an ECDSA signature by the `p256` crate's signer), not by the code under
//! test; the Envoy tests (tests/integration/test_dpop.py) mint theirs with Python.

use ct_codecs::{Base64UrlSafeNoPadding, Encoder};
use p256::ecdsa::signature::Signer;
use serde_json::{Value, json};

use super::*;
use crate::authn::verify::PureRustVerifier;
use crate::request::{Request, headers};

const NOW: u64 = 1_800_000_000;
const TOKEN: &str = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln";
const HTU: &str = "https://api.example.com/orders";

fn b64(bytes: &[u8]) -> String {
    Base64UrlSafeNoPadding::encode_to_string(bytes).unwrap()
}

struct ClientKey {
    signer: p256::ecdsa::SigningKey,
    jwk: Value,
}

fn client_key(seed: u8) -> ClientKey {
    let signer = p256::ecdsa::SigningKey::from_slice(&[seed; 32]).unwrap();
    let point = signer.verifying_key().to_sec1_point(false);
    let bytes = point.as_bytes();
    let jwk = json!({
        "kty": "EC", "crv": "P-256",
        "x": b64(&bytes[1..33]), "y": b64(&bytes[33..65]),
    });
    ClientKey { signer, jwk }
}

fn proof_with(key: &ClientKey, header: Value, claims: Value) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let signature: p256::ecdsa::Signature = key.signer.sign(input.as_bytes());
    format!("{input}.{}", b64(&signature.to_bytes()))
}

fn header(key: &ClientKey) -> Value {
    json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": key.jwk})
}

fn claims() -> Value {
    json!({
        "jti": "e1j3V_bKic8-LAEB", "htm": "GET", "htu": HTU, "iat": NOW,
        "ath": token_hash(TOKEN),
    })
}

fn dpop() -> Dpop {
    Dpop {
        required: false,
        max_age_seconds: 300,
        algorithms: vec![Algorithm::ES256, Algorithm::RS256],
        algs: "ES256 RS256".into(),
        nonce: None,
        replay_buckets: 64,
        use_host: false,
        keys: Default::default(),
    }
}

fn check_at(
    dpop: &Dpop,
    proofs: &[&str],
    jkt: Option<&str>,
    now: u64,
    replay: &dyn ReplayStore,
) -> Result<(), AuthFailure> {
    let mut pairs = vec![
        (":method", "GET"),
        (":scheme", "https"),
        (":authority", "api.example.com"),
        (":path", "/orders?page=2"),
    ];
    pairs.extend(proofs.iter().map(|proof| ("dpop", *proof)));
    let h = headers(&pairs);
    let request = Request::bare(&h);
    let context = ProofContext {
        request: &request,
        token: TOKEN,
        now,
        clock_skew_seconds: 60,
        verifier: &PureRustVerifier,
        replay,
    };
    dpop.check(&context, jkt)
}

fn check(dpop: &Dpop, proofs: &[&str], jkt: Option<&str>) -> Result<(), AuthFailure> {
    check_at(dpop, proofs, jkt, NOW, &MemoryReplayStore::default())
}

#[test]
fn one_fault_at_a_time() {
    use AuthFailure::*;
    let key = client_key(1);
    let other = client_key(2);
    let jkt = thumbprint::jwk_thumbprint(&key.jwk).unwrap();
    let with_claim = |name: &str, value: Value| {
        let mut c = claims();
        c[name] = value;
        proof_with(&key, header(&key), c)
    };
    let without_claim = |name: &str| {
        let mut c = claims();
        c.as_object_mut().unwrap().remove(name);
        proof_with(&key, header(&key), c)
    };
    let with_header = |name: &str, value: Value| {
        let mut h = header(&key);
        h[name] = value;
        proof_with(&key, h, claims())
    };
    let good = proof_with(&key, header(&key), claims());
    let mut private_jwk = key.jwk.clone();
    private_jwk["d"] = json!(b64(&[1; 32]));
    let cases: Vec<(&str, Vec<String>, Result<(), AuthFailure>)> = vec![
        ("good", vec![good.clone()], Ok(())),
        ("no proof", vec![], Err(DpopProofMissing)),
        (
            "two proofs",
            vec![good.clone(), good.clone()],
            Err(DpopProofMalformed),
        ),
        (
            "joined proofs",
            vec![format!("{good},{good}")],
            Err(DpopProofMalformed),
        ),
        ("not a JWS", vec!["abc".into()], Err(DpopProofMalformed)),
        (
            "typ jwt",
            vec![with_header("typ", json!("JWT"))],
            Err(DpopProofMalformed),
        ),
        (
            "no typ",
            vec![{
                let mut h = header(&key);
                h.as_object_mut().unwrap().remove("typ");
                proof_with(&key, h, claims())
            }],
            Err(DpopProofMalformed),
        ),
        (
            "alg not allowed",
            vec![with_header("alg", json!("ES384"))],
            Err(DpopProofAlgorithm),
        ),
        (
            "alg HS256",
            vec![with_header("alg", json!("HS256"))],
            Err(DpopProofAlgorithm),
        ),
        (
            "alg none",
            vec![with_header("alg", json!("none"))],
            Err(DpopProofAlgorithm),
        ),
        (
            "no jwk",
            vec![{
                let mut h = header(&key);
                h.as_object_mut().unwrap().remove("jwk");
                proof_with(&key, h, claims())
            }],
            Err(DpopProofMalformed),
        ),
        (
            "private jwk",
            vec![with_header("jwk", private_jwk)],
            Err(DpopProofMalformed),
        ),
        (
            "RSA jwk for ES256",
            vec![with_header(
                "jwk",
                json!({"kty": "RSA", "n": "AQAB", "e": "AQAB"}),
            )],
            Err(DpopProofMalformed),
        ),
        (
            "crit",
            vec![with_header("crit", json!(["x"]))],
            Err(DpopProofMalformed),
        ),
        (
            "signed by another key",
            vec![proof_with(&other, header(&key), claims())],
            Err(DpopProofBadSignature),
        ),
        (
            "no jti",
            vec![without_claim("jti")],
            Err(DpopProofMalformed),
        ),
        (
            "empty jti",
            vec![with_claim("jti", json!(""))],
            Err(DpopProofMalformed),
        ),
        (
            "long jti",
            vec![with_claim("jti", json!("j".repeat(257)))],
            Err(DpopProofMalformed),
        ),
        (
            "no htm",
            vec![without_claim("htm")],
            Err(DpopProofMalformed),
        ),
        (
            "no htu",
            vec![without_claim("htu")],
            Err(DpopProofMalformed),
        ),
        (
            "no iat",
            vec![without_claim("iat")],
            Err(DpopProofMalformed),
        ),
        (
            "iat string",
            vec![with_claim("iat", json!("1800000000"))],
            Err(DpopProofMalformed),
        ),
        (
            "htm POST",
            vec![with_claim("htm", json!("POST"))],
            Err(DpopProofMismatch),
        ),
        (
            "htm get",
            vec![with_claim("htm", json!("get"))],
            Err(DpopProofMismatch),
        ),
        (
            "htu other path",
            vec![with_claim("htu", json!("https://api.example.com/admin"))],
            Err(DpopProofMismatch),
        ),
        (
            "htu http",
            vec![with_claim("htu", json!("http://api.example.com/orders"))],
            Err(DpopProofMismatch),
        ),
        (
            "htu with query",
            vec![with_claim(
                "htu",
                json!("https://api.example.com/orders?page=9"),
            )],
            Ok(()),
        ),
        ("no ath", vec![without_claim("ath")], Err(DpopProofMismatch)),
        (
            "ath of another token",
            vec![with_claim("ath", json!(token_hash("other")))],
            Err(DpopProofMismatch),
        ),
        (
            "too old",
            vec![with_claim("iat", json!(NOW - 301))],
            Err(DpopProofExpired),
        ),
        (
            "just old enough",
            vec![with_claim("iat", json!(NOW - 300))],
            Ok(()),
        ),
        (
            "future within skew",
            vec![with_claim("iat", json!(NOW + 60))],
            Ok(()),
        ),
        (
            "future beyond skew",
            vec![with_claim("iat", json!(NOW + 61))],
            Err(DpopProofIssuedInFuture),
        ),
    ];
    for (name, proofs, expected) in cases {
        let proofs: Vec<&str> = proofs.iter().map(String::as_str).collect();
        assert_eq!(check(&dpop(), &proofs, Some(&jkt)), expected, "{name}");
    }
    let other_jkt = thumbprint::jwk_thumbprint(&other.jwk).unwrap();
    assert_eq!(
        check(&dpop(), &[&good], Some(&other_jkt)),
        Err(DpopKeyMismatch)
    );
    assert_eq!(check(&dpop(), &[&good], None), Err(DpopKeyMismatch));
}

#[test]
fn a_proof_is_used_once_and_a_refused_one_takes_no_place() {
    let key = client_key(3);
    let jkt = thumbprint::jwk_thumbprint(&key.jwk).unwrap();
    let proof = proof_with(&key, header(&key), claims());
    let store = MemoryReplayStore::default();
    // Refused for the key first: nothing remembered, so the rightful holder still gets in.
    assert_eq!(
        check_at(&dpop(), &[&proof], Some("another"), NOW, &store),
        Err(AuthFailure::DpopKeyMismatch)
    );
    assert_eq!(
        check_at(&dpop(), &[&proof], Some(&jkt), NOW, &store),
        Ok(())
    );
    assert_eq!(
        check_at(&dpop(), &[&proof], Some(&jkt), NOW + 1, &store),
        Err(AuthFailure::DpopProofReplayed)
    );
    // Out of its window the proof is refused for its age, whatever the store says.
    assert_eq!(
        check_at(&dpop(), &[&proof], Some(&jkt), NOW + 301, &store),
        Err(AuthFailure::DpopProofExpired)
    );
}

#[test]
fn nonces_are_asked_for_and_accepted() {
    let key = client_key(4);
    let jkt = thumbprint::jwk_thumbprint(&key.jwk).unwrap();
    let nonces = NonceKey::new(b"0123456789abcdef0123456789abcdef", 60);
    let with_nonce = Dpop {
        nonce: Some(nonces.clone()),
        ..dpop()
    };
    let without = proof_with(&key, header(&key), claims());
    assert_eq!(
        check(&with_nonce, &[&without], Some(&jkt)),
        Err(AuthFailure::DpopNonceRequired)
    );
    let mut c = claims();
    c["nonce"] = json!("made-up");
    let made_up = proof_with(&key, header(&key), c);
    assert_eq!(
        check(&with_nonce, &[&made_up], Some(&jkt)),
        Err(AuthFailure::DpopNonceRequired)
    );
    let mut c = claims();
    c["nonce"] = json!(nonces.current(NOW));
    let current = proof_with(&key, header(&key), c);
    assert_eq!(check(&with_nonce, &[&current], Some(&jkt)), Ok(()));
}
