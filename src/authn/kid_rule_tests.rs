//! The `kid` rule (issue #20 item 2), table-driven: for each key set and token (minted by PyJWT,
//! tests/fixtures/kid_rule.json), the answer and exactly which keys were tried, in order, through
//! the inline reader and the fetched one alike; then the same through the authenticator, with
//! the verified-token cache on, and the refetch a remote provider asks for.
//!
//! The rule: only keys of the token's `alg` are candidates; the key whose `kid` is the token's,
//! then every key without `kid`, then (token without `kid` only) the keys with one; at most
//! [`MAX_KEYS_PER_TOKEN`] tried; the first that verifies wins. None verifies: `bad_signature`;
//! no candidate: `unsupported_algorithm` when the token's `kid` names a key of another
//! algorithm, else `unknown_key`.

use std::cell::RefCell;

use serde_json::{Value, json};

use super::*;
use crate::authn::cache::TokenCache;
use crate::authn::issuer::Issuer;
use crate::authn::jwks::{
    KeySet, KeyStore, MAX_KEYS_PER_TOKEN, TOO_MANY_WITHOUT_KID, VerificationKey,
};
use crate::authn::verify::{PureRustVerifier, TokenRules, candidates};
use crate::config::Config;
use crate::reason::AuthFailure::{self, BadSignature, UnknownKey, UnsupportedAlgorithm};
use crate::request::headers;
use crate::token::jws::Algorithm;

const FIXTURES: &str = include_str!("../../tests/fixtures/kid_rule.json");

fn fixtures() -> Value {
    serde_json::from_str(FIXTURES).unwrap()
}

fn token(name: &str) -> String {
    fixtures()["tokens"][name]
        .as_str()
        .unwrap_or_else(|| panic!("no token {name}"))
        .to_string()
}

fn set(name: &str) -> Value {
    fixtures()["sets"][name].clone()
}

/// Records which keys were tried (their addresses), in order.
#[derive(Default)]
struct Recording(RefCell<Vec<usize>>);

impl SignatureVerifier for Recording {
    fn verify(&self, key: &VerificationKey, jws: &UnverifiedJws<'_>) -> Result<(), AuthFailure> {
        self.0
            .borrow_mut()
            .push(key as *const VerificationKey as usize);
        PureRustVerifier.verify(key, jws)
    }
}

fn rules(keys: KeySet) -> TokenRules {
    TokenRules {
        issuer: Issuer::Fixed(fixtures()["issuer"].as_str().unwrap().into()),
        audiences: vec!["orders".into()],
        keys: KeyStore::new(keys),
        clock_skew_seconds: 0,
        max_lifetime_seconds: None,
        require_expiration: true,
    }
}

/// The answer for `token` under `keys`, and the positions in the set of the keys tried.
fn judge(keys: KeySet, token: &str) -> (Result<(), AuthFailure>, Vec<usize>) {
    let rules = rules(keys);
    let current = rules.keys.current();
    let address = |k: &VerificationKey| k as *const VerificationKey as usize;
    let recording = Recording::default();
    let now = fixtures()["now"].as_u64().unwrap();
    let jws = UnverifiedJws::parse(token).unwrap();
    let result = rules.verify(&jws, now, &recording);
    let tried = recording
        .0
        .borrow()
        .iter()
        .map(|a| {
            current
                .keys()
                .iter()
                .position(|k| address(k) == *a)
                .unwrap()
        })
        .collect();
    (result, tried)
}

type Case = (&'static str, Result<(), AuthFailure>, &'static [usize]);

/// Per key set: (token, answer, positions of the keys tried in order). Keys are named by the
/// letter of their private key; `X` is in no set.
#[rustfmt::skip]
const TABLE: &[(&str, &[Case])] = &[
    // Keys without kid: candidates for every token, with or without kid.
    ("kidless", &[ // [A, B]
        ("A_kid_a", Ok(()), &[0]),
        ("A_kid_zzz", Ok(()), &[0]),
        ("B_kid_a", Ok(()), &[0, 1]),
        ("A_kid_empty", Ok(()), &[0]),
        ("A_nokid", Ok(()), &[0]),
        ("B_nokid", Ok(()), &[0, 1]),
        ("X_kid_a", Err(BadSignature), &[0, 1]),
        ("X_nokid", Err(BadSignature), &[0, 1]),
        // The algorithm still has to match: no RS256, ES384 or HS256 key here.
        ("R_RS256_kid_r", Err(UnknownKey), &[]),
        ("R_RS256_nokid", Err(UnknownKey), &[]),
        ("P_ES384_kid_a", Err(UnknownKey), &[]),
        ("hs256_kid_a", Err(UnknownKey), &[]),
    ]),
    // Keys with kid: a token naming one is checked with that key only.
    ("kidded", &[ // [A "a", B "b"]
        ("A_kid_a", Ok(()), &[0]),
        ("B_kid_b", Ok(()), &[1]),
        ("A_kid_b", Err(BadSignature), &[1]),
        ("X_kid_a", Err(BadSignature), &[0]),
        ("A_kid_zzz", Err(UnknownKey), &[]),
        ("A_kid_empty", Err(UnknownKey), &[]),
        // A token without kid tries the keys of its alg in key-set order.
        ("A_nokid", Ok(()), &[0]),
        ("B_nokid", Ok(()), &[0, 1]),
        ("X_nokid", Err(BadSignature), &[0, 1]),
        // kid names a key of another alg: alg confusion, the key is not tried.
        ("P_ES384_kid_a", Err(UnsupportedAlgorithm), &[]),
        ("hs256_kid_a", Err(UnsupportedAlgorithm), &[]),
        ("R_RS256_nokid", Err(UnknownKey), &[]),
        ("P_ES384_nokid", Err(UnknownKey), &[]),
    ]),
    ("mixed", &[ // [A "a", B, R "r" (RS256), C "c"]
        ("A_kid_a", Ok(()), &[0]),
        // The named key first, then the keys without kid.
        ("B_kid_a", Ok(()), &[0, 1]),
        ("B_kid_zzz", Ok(()), &[1]),
        ("B_nokid", Ok(()), &[1]),
        // Without kid: keys without kid first, then the others of the alg in key-set order.
        ("A_nokid", Ok(()), &[1, 0]),
        ("C_nokid", Ok(()), &[1, 0, 3]),
        ("C_kid_c", Ok(()), &[3]),
        // A key with another kid is never tried for a token naming one.
        ("C_kid_a", Err(BadSignature), &[0, 1]),
        ("A_kid_zzz", Err(BadSignature), &[1]),
        ("A_kid_c", Err(BadSignature), &[3, 1]),
        ("X_kid_zzz", Err(BadSignature), &[1]),
        ("R_RS256_kid_r", Ok(()), &[2]),
        ("R_RS256_nokid", Ok(()), &[2]),
        ("R_RS256_kid_a", Err(UnsupportedAlgorithm), &[]),
        ("R_RS256_kid_zzz", Err(UnknownKey), &[]),
        ("P_ES384_kid_a", Err(UnsupportedAlgorithm), &[]),
        ("P_ES384_nokid", Err(UnknownKey), &[]),
    ]),
    // The bound: at most MAX_KEYS_PER_TOKEN (3) keys per token.
    ("three_kidless", &[ // [A, B, C]
        ("C_kid_zzz", Ok(()), &[0, 1, 2]),
        ("C_nokid", Ok(()), &[0, 1, 2]),
        ("X_kid_a", Err(BadSignature), &[0, 1, 2]),
    ]),
    ("four_kidded", &[ // [A "a", B "b", C "c", D "d"]
        ("C_nokid", Ok(()), &[0, 1, 2]),
        ("D_nokid", Err(BadSignature), &[0, 1, 2]),
        ("X_nokid", Err(BadSignature), &[0, 1, 2]),
        ("D_kid_d", Ok(()), &[3]),
    ]),
    ("named_plus_kidless", &[ // [A "a", B, C, D]
        ("D_kid_zzz", Ok(()), &[1, 2, 3]),
        ("D_nokid", Ok(()), &[1, 2, 3]),
        ("C_kid_a", Ok(()), &[0, 1, 2]),
        ("D_kid_a", Err(BadSignature), &[0, 1, 2]),
    ]),
    // An RSA key without alg is RS256 only, whatever the token says.
    ("rsa_kidless", &[ // [R]
        ("R_RS256_nokid", Ok(()), &[0]),
        ("R_RS256_kid_zzz", Ok(()), &[0]),
        ("R_PS256_nokid", Err(UnknownKey), &[]),
        ("A_nokid", Err(UnknownKey), &[]),
    ]),
    ("p384_kidless", &[ // [P]
        ("P_ES384_kid_a", Ok(()), &[0]),
        ("P_ES384_nokid", Ok(()), &[0]),
        ("A_kid_a", Err(UnknownKey), &[]),
    ]),
];

/// The order of candidates, on one set of HMAC keys (an HS384 one among HS256 ones).
#[test]
fn candidates_are_the_named_key_then_keys_without_kid_then_the_others() {
    let secret = |n: u8| {
        use ct_codecs::{Base64UrlSafeNoPadding, Encoder};
        Base64UrlSafeNoPadding::encode_to_string([n; 48]).unwrap()
    };
    let set = KeySet::from_value(&json!({"keys": [
        {"kty": "oct", "k": secret(1), "kid": "one"},
        {"kty": "oct", "k": secret(2)},
        {"kty": "oct", "k": secret(3), "kid": "three"},
        {"kty": "oct", "k": secret(4), "kid": "four", "alg": "HS384"},
        {"kty": "oct", "k": secret(5)},
    ]}))
    .unwrap();
    let order = |kid: Option<&str>| -> Vec<Option<String>> {
        candidates(&set, Algorithm::HS256, kid)
            .map(|k| k.kid.clone())
            .collect()
    };
    let named = |kid: &str| Some(kid.to_string());
    assert_eq!(order(None), [None, None, named("one")]);
    assert_eq!(order(Some("three")), [named("three"), None, None]);
    assert_eq!(order(Some("four")), [None, None], "four is HS384");
    assert_eq!(order(Some("other")), [None, None]);
    let hs384: Vec<_> = candidates(&set, Algorithm::HS384, None).collect();
    assert_eq!(hs384.len(), 1);
}

/// Every case through both readers of a key set, which must agree.
#[test]
fn the_kid_rule_table() {
    let mut cases = 0;
    for (name, table) in TABLE {
        let inline = || KeySet::from_value(&set(name)).unwrap();
        let fetched = || {
            let (keys, skipped) = KeySet::from_fetched(set(name).to_string().as_bytes()).unwrap();
            assert!(skipped.is_empty(), "{name}: {skipped:?}");
            keys
        };
        for (token_name, expected, tried) in *table {
            let token = token(token_name);
            for (reader, keys) in [("inline", inline()), ("fetched", fetched())] {
                assert_eq!(
                    judge(keys, &token),
                    (*expected, tried.to_vec()),
                    "{name} ({reader}), token {token_name}"
                );
                cases += 1;
            }
        }
    }
    assert!(cases > 100, "{cases}");
}

/// No token, whatever its kid, costs more than MAX_KEYS_PER_TOKEN checks, in any set here.
#[test]
fn no_token_tries_more_than_the_bound() {
    assert_eq!(MAX_KEYS_PER_TOKEN, 3);
    assert!(TOO_MANY_WITHOUT_KID.contains("at most 3 keys"));
    let tokens: Vec<String> = fixtures()["tokens"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    for (name, _) in TABLE {
        for token_name in &tokens {
            let (_, tried) = judge(KeySet::from_value(&set(name)).unwrap(), &token(token_name));
            assert!(tried.len() <= MAX_KEYS_PER_TOKEN, "{name} {token_name}");
        }
    }
}

/// Two keys with one kid: refused inline (naming the field); a fetched set keeps the first, so
/// the second never verifies, with or without kid.
#[test]
fn a_duplicate_kid_keeps_the_first_key_only() {
    let err = KeySet::from_value(&set("duplicate_kid")).unwrap_err();
    assert_eq!(err.field, "keys[1].kid");
    let body = set("duplicate_kid").to_string();
    let fetched = || KeySet::from_fetched(body.as_bytes()).unwrap().0;
    let (_, skipped) = KeySet::from_fetched(body.as_bytes()).unwrap();
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].field, "keys[1].kid");
    assert_eq!(judge(fetched(), &token("A_kid_a")), (Ok(()), vec![0]));
    assert_eq!(
        judge(fetched(), &token("B_kid_a")),
        (Err(BadSignature), vec![0])
    );
    assert_eq!(
        judge(fetched(), &token("B_nokid")),
        (Err(BadSignature), vec![0])
    );
}

/// A fourth key of one alg without kid could never be tried: refused inline at its index,
/// skipped (and reported) when fetched; its tokens are then refused.
#[test]
fn a_key_without_kid_beyond_the_bound_is_refused_or_skipped() {
    let err = KeySet::from_value(&set("four_kidless")).unwrap_err();
    assert_eq!(
        (err.field.as_str(), err.message.as_str()),
        ("keys[3]", TOO_MANY_WITHOUT_KID)
    );
    let (keys, skipped) = KeySet::from_fetched(set("four_kidless").to_string().as_bytes()).unwrap();
    assert_eq!(keys.keys().len(), 3);
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].field, "keys[3]");
    assert_eq!(
        judge(keys, &token("D_nokid")),
        (Err(BadSignature), vec![0, 1, 2])
    );
    // Keys of other algorithms, or with a kid, do not count.
    let mut mixed = set("four_kidless");
    mixed["keys"][3]["kid"] = json!("d");
    assert!(KeySet::from_value(&mixed).is_ok());
    let mut other_alg = set("four_kidless");
    other_alg["keys"][3] = set("rsa_kidless")["keys"][0].clone();
    assert!(KeySet::from_value(&other_alg).is_ok());
}

fn config(provider: Value) -> Config {
    let json = json!({
        "providers": {"p": provider},
        "rules": [{"match": {"prefix": "/"}}],
    });
    Config::from_json(json.to_string().as_bytes()).unwrap()
}

fn authenticate(
    config: &Config,
    token: &str,
    verifier: &Recording,
    cache: &mut TokenCache,
) -> Result<(), AuthFailure> {
    let h = headers(&[("authorization", &format!("Bearer {token}"))]);
    let now = fixtures()["now"].as_u64().unwrap();
    let clock = move || Some(now);
    let mut auth = Authenticator {
        verifier,
        cache,
        clock: &clock,
        judged_by: None,
        replay: &crate::authn::dpop::MemoryReplayStore::default(),
        presented_with_dpop: false,
        dpop_nonce: None,
    };
    auth.authenticate(&config.providers, &[0], &Request::bare(&h))
        .map(|_| ())
}

/// Through the authenticator, the answers are the table's, and the verified-token cache does not
/// change them: an accepted token is answered from the cache the second time (no signature
/// check), a refused one is judged again, the same way.
#[test]
fn the_cache_does_not_change_the_answer() {
    let issuer = fixtures()["issuer"].clone();
    for (name, table) in TABLE {
        let config = config(json!({"issuer": issuer, "audiences": ["orders"], "jwks": set(name)}));
        let mut cache = TokenCache::new(100);
        for (token_name, expected, tried) in *table {
            let token = token(token_name);
            for round in 0..2 {
                let verifier = Recording::default();
                let result = authenticate(&config, &token, &verifier, &mut cache);
                assert_eq!(result, *expected, "{name} {token_name} round {round}");
                let checks = verifier.0.borrow().len();
                let wanted = if round == 1 && expected.is_ok() {
                    0
                } else {
                    tried.len()
                };
                assert_eq!(checks, wanted, "{name} {token_name} round {round}");
            }
        }
    }
}

/// A remote provider asks for its keys again when a token of its issuer names a kid the keys
/// lack, even when keys without kid were tried and failed (`bad_signature`): the IdP may have
/// rotated to the key it names. Not when the named key exists, nor when a key without kid
/// accepts the token.
#[test]
fn an_unknown_kid_asks_for_a_refetch_even_with_keys_without_kid() {
    let issuer = fixtures()["issuer"].clone();
    let config = config(json!({"issuer": issuer, "audiences": ["orders"],
                               "remote_jwks": {"cluster": "idp", "uri": "https://idp/k"}}));
    let keys = &config.providers[0].token_rules.keys;
    keys.replace(KeySet::from_value(&set("mixed")).unwrap());
    let cases = [
        ("X_kid_zzz", Err(BadSignature), true),
        ("R_RS256_kid_zzz", Err(UnknownKey), true),
        ("P_ES384_nokid", Err(UnknownKey), true),
        ("X_kid_a", Err(BadSignature), false),
        ("X_nokid", Err(BadSignature), false),
        ("B_kid_zzz", Ok(()), false),
        ("R_RS256_kid_a", Err(UnsupportedAlgorithm), false),
    ];
    for (token_name, expected, refetch) in cases {
        let mut cache = TokenCache::new(10);
        let result = authenticate(
            &config,
            &token(token_name),
            &Recording::default(),
            &mut cache,
        );
        assert_eq!(result, expected, "{token_name}");
        assert_eq!(keys.take_refetch_request(), refetch, "{token_name}");
    }
}
