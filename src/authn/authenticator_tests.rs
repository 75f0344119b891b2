use crate::config::Config;
use std::cell::Cell;

use serde_json::json;

use super::*;
use crate::authn::jwks::{KeySet, VerificationKey};
use crate::authn::verify::PureRustVerifier;
use crate::request::headers;
use crate::testing::testutil;

/// Counts signature checks.
#[derive(Default)]
struct Counting(Cell<usize>);

impl SignatureVerifier for Counting {
    fn verify(&self, key: &VerificationKey, jws: &UnverifiedJws<'_>) -> Result<(), AuthFailure> {
        self.0.set(self.0.get() + 1);
        PureRustVerifier.verify(key, jws)
    }
}

fn config() -> Config {
    let json = json!({
        "providers": {
            "a": {"issuer": testutil::issuer(), "audiences": ["payments"], "jwks": testutil::jwks()},
            "b": {"issuer": testutil::issuer(), "audiences": ["orders"], "jwks": testutil::jwks(),
                  "clock_skew_seconds": 0},
        },
        "rules": [{"match": {"prefix": "/"}}],
    });
    Config::from_json(json.to_string().as_bytes()).unwrap()
}

fn check(
    config: &Config,
    providers: &[usize],
    token: &str,
    now: u64,
    verifier: &Counting,
    cache: &mut TokenCache,
) -> Result<String, AuthFailure> {
    let h = headers(&[("authorization", &format!("Bearer {token}"))]);
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
    let verified = auth.authenticate(&config.providers, providers, &Request::bare(&h))?;
    Ok(verified.map_or("none".into(), |v| v.provider.name.clone()))
}

#[test]
fn a_cache_hit_skips_the_signature_but_not_the_time() {
    let config = config();
    let token = testutil::token("valid_ES256");
    let exp = testutil::fixtures()["exp"]
        .as_u64()
        .unwrap_or(testutil::now() + 3600);
    let (verifier, mut cache) = (Counting::default(), TokenCache::new(10));
    let now = testutil::now();
    assert_eq!(
        check(&config, &[0, 1], &token, now, &verifier, &mut cache),
        Ok("b".into())
    );
    assert_eq!(verifier.0.get(), 2, "a refused it, b accepted it");
    assert_eq!(
        check(&config, &[0, 1], &token, now, &verifier, &mut cache),
        Ok("b".into())
    );
    assert_eq!(verifier.0.get(), 2, "the second time came from the cache");
    // Later, the cached token has expired: refused, still without a signature check.
    let later = exp.max(now) + 100_000;
    assert_eq!(
        check(&config, &[0, 1], &token, later, &verifier, &mut cache),
        Err(AuthFailure::Expired)
    );
    assert_eq!(verifier.0.get(), 2);
}

/// The answer and the provider that judged the token, with the counting verifier.
fn judge(
    config: &Config,
    token: &str,
    now: u64,
    verifier: &Counting,
    cache: &mut TokenCache,
) -> (Result<String, AuthFailure>, Option<usize>) {
    let h = headers(&[("authorization", &format!("Bearer {token}"))]);
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
    let outcome = auth
        .authenticate(&config.providers, &[0, 1], &Request::bare(&h))
        .map(|v| v.map_or("none".into(), |v| v.provider.name.clone()));
    (outcome, auth.judged_by)
}

/// Found by `make fuzz` (targets `token` and `request`; the inputs are kept as
/// fuzz/seeds/*/regression-cached-refusal-reason). A token the second provider for its
/// issuer accepted was, once that provider's claim checks refused it, refused from the
/// cache with that provider's reason, while the full path answers with the first
/// provider's: here `a` (60 s skew) still takes the token as in time and refuses its
/// audience while `b` (no skew) finds it expired. Another reason code and another provider
/// in counters and outcomes, depending only on whether the token was cached.
#[test]
fn a_cached_token_is_refused_with_the_first_providers_reason() {
    let config = config();
    let token = testutil::token("valid_ES256");
    let exp = crate::token::jws::numeric_date(&UnverifiedJws::parse(&token).unwrap().claims["exp"])
        .unwrap();
    let (verifier, mut cache) = (Counting::default(), TokenCache::new(10));
    let now = testutil::now();
    assert_eq!(
        judge(&config, &token, now, &verifier, &mut cache),
        (Ok("b".into()), Some(1))
    );
    let checks = verifier.0.get();
    let expected = [
        (exp - 1, (Ok("b".to_string()), Some(1))),
        (exp, (Err(AuthFailure::BadAudience), Some(0))),
        (exp + 59, (Err(AuthFailure::BadAudience), Some(0))),
        (exp + 60, (Err(AuthFailure::Expired), Some(0))),
    ];
    for (at, answer) in expected {
        let fresh = judge(
            &config,
            &token,
            at,
            &Counting::default(),
            &mut TokenCache::new(0),
        );
        assert_eq!(
            fresh,
            answer,
            "full path at exp{:+}",
            at as i64 - exp as i64
        );
        let cached = judge(&config, &token, at, &verifier, &mut cache);
        assert_eq!(cached, answer, "cache at exp{:+}", at as i64 - exp as i64);
    }
    assert_eq!(verifier.0.get(), checks, "every answer came from the cache");
}

#[test]
fn a_hit_counts_only_for_the_provider_this_request_would_try() {
    let config = config();
    let token = testutil::token("valid_ES256");
    let (verifier, mut cache) = (Counting::default(), TokenCache::new(10));
    let now = testutil::now();
    assert_eq!(
        check(&config, &[1], &token, now, &verifier, &mut cache),
        Ok("b".into())
    );
    // A rule that only accepts provider a: the cached acceptance by b does not count.
    assert_eq!(
        check(&config, &[0], &token, now, &verifier, &mut cache),
        Err(AuthFailure::BadAudience)
    );
    assert_eq!(verifier.0.get(), 2);
}

#[test]
fn no_clock_refuses_a_token_but_not_an_anonymous_request() {
    let config = config();
    let mut cache = TokenCache::new(10);
    let no_clock = || None;
    let mut auth = Authenticator {
        verifier: &PureRustVerifier,
        cache: &mut cache,
        clock: &no_clock,
        judged_by: None,
        replay: &crate::authn::dpop::MemoryReplayStore::default(),
        presented_with_dpop: false,
        dpop_nonce: None,
    };
    let token = format!("Bearer {}", testutil::token("valid_ES256"));
    let with_token = headers(&[("authorization", &token)]);
    let outcome = auth.authenticate(&config.providers, &[1], &Request::bare(&with_token));
    assert_eq!(outcome.err(), Some(AuthFailure::Expired));
    let without = headers(&[(":path", "/")]);
    let outcome = auth.authenticate(&config.providers, &[1], &Request::bare(&without));
    assert!(matches!(outcome, Ok(None)));
}

#[test]
fn refusals_are_never_cached() {
    let config = config();
    let (verifier, mut cache) = (Counting::default(), TokenCache::new(10));
    for name in ["bad_signature", "expired", "bad_audience"] {
        let token = testutil::token(name);
        for _ in 0..2 {
            assert!(
                check(
                    &config,
                    &[1],
                    &token,
                    testutil::now(),
                    &verifier,
                    &mut cache
                )
                .is_err()
            );
        }
    }
    assert!(cache.is_empty());
}

fn remote_config() -> Config {
    let json = json!({
        "providers": {
            "r": {"issuer": testutil::issuer(), "remote_jwks": {"cluster": "idp", "uri": "https://idp/k"}},
        },
        "rules": [{"match": {"prefix": "/"}}],
    });
    Config::from_json(json.to_string().as_bytes()).unwrap()
}

#[test]
fn a_remote_provider_without_keys_yet_refuses_keys_unavailable() {
    let config = remote_config();
    let (verifier, mut cache) = (Counting::default(), TokenCache::new(10));
    let token = testutil::token("valid_ES256");
    let now = testutil::now();
    assert_eq!(
        check(&config, &[0], &token, now, &verifier, &mut cache),
        Err(AuthFailure::KeysUnavailable)
    );
    let keys = &config.providers[0].token_rules.keys;
    assert!(
        !keys.take_refetch_request(),
        "the first fetch is due anyway"
    );
    keys.replace(KeySet::from_value(&testutil::jwks()).unwrap());
    assert_eq!(
        check(&config, &[0], &token, now, &verifier, &mut cache),
        Ok("r".into())
    );
}

#[test]
fn only_an_unknown_kid_of_the_issuer_asks_for_a_refetch() {
    let config = remote_config();
    let keys = &config.providers[0].token_rules.keys;
    keys.replace(KeySet::from_value(&testutil::jwks()).unwrap());
    let (verifier, mut cache) = (Counting::default(), TokenCache::new(10));
    let now = testutil::now();
    let ours = testutil::token("unknown_kid");
    assert_eq!(
        check(&config, &[0], &ours, now, &verifier, &mut cache),
        Err(AuthFailure::UnknownKey)
    );
    assert!(keys.take_refetch_request());
    // The same unknown kid with another issuer (the signature is never reached).
    use ct_codecs::{Base64UrlSafeNoPadding, Decoder, Encoder};
    let parts: Vec<&str> = ours.split('.').collect();
    let mut claims: serde_json::Value =
        serde_json::from_slice(&Base64UrlSafeNoPadding::decode_to_vec(parts[1], None).unwrap())
            .unwrap();
    claims["iss"] = json!("https://elsewhere.example");
    let payload = Base64UrlSafeNoPadding::encode_to_string(claims.to_string()).unwrap();
    let theirs = format!("{}.{payload}.{}", parts[0], parts[2]);
    assert_eq!(
        check(&config, &[0], &theirs, now, &verifier, &mut cache),
        Err(AuthFailure::UnknownKey)
    );
    assert!(
        !keys.take_refetch_request(),
        "another issuer never triggers a fetch"
    );
    assert_eq!(verifier.0.get(), 0);
}

#[test]
fn new_keys_invalidate_cached_tokens() {
    let config = config();
    let token = testutil::token("valid_ES256");
    let (verifier, mut cache) = (Counting::default(), TokenCache::new(10));
    let now = testutil::now();
    check(&config, &[1], &token, now, &verifier, &mut cache).unwrap();
    let keys = KeySet::from_value(&testutil::jwks()).unwrap();
    config.providers[1].token_rules.keys.replace(keys);
    check(&config, &[1], &token, now, &verifier, &mut cache).unwrap();
    assert_eq!(verifier.0.get(), 2, "verified again under the new keys");
    check(&config, &[1], &token, now, &verifier, &mut cache).unwrap();
    assert_eq!(verifier.0.get(), 2);
}

/// A token cached before its key was retired is refused once the new key set is in force
/// (`unknown_key`, as a fresh check would say), and a key set that still holds its key
/// verifies it again once, then serves it from the cache. The version of the keys is part
/// of every hit; the time alone would let the cached token through.
#[test]
fn a_cached_token_whose_key_was_retired_is_refused() {
    let config = config();
    let token = testutil::token("valid_ES256");
    let (verifier, mut cache) = (Counting::default(), TokenCache::new(10));
    let now = testutil::now();
    assert_eq!(
        check(&config, &[1], &token, now, &verifier, &mut cache),
        Ok("b".into())
    );
    assert_eq!(
        check(&config, &[1], &token, now, &verifier, &mut cache),
        Ok("b".into())
    );
    assert_eq!(verifier.0.get(), 1, "the second answer came from the cache");
    let mut without = testutil::jwks();
    without["keys"]
        .as_array_mut()
        .unwrap()
        .retain(|key| key["kid"] != "es256");
    let keys = &config.providers[1].token_rules.keys;
    keys.replace(KeySet::from_value(&without).unwrap());
    for _ in 0..2 {
        assert_eq!(
            check(&config, &[1], &token, now, &verifier, &mut cache),
            Err(AuthFailure::UnknownKey),
            "retired key"
        );
    }
    assert_eq!(verifier.0.get(), 1, "refused before any signature check");
    keys.replace(KeySet::from_value(&testutil::jwks()).unwrap());
    for _ in 0..2 {
        assert_eq!(
            check(&config, &[1], &token, now, &verifier, &mut cache),
            Ok("b".into())
        );
    }
    assert_eq!(verifier.0.get(), 2, "verified once under the restored keys");
}

/// Two providers for one issuer and audience; the first lacks the ES256 key.
fn first_lacks_the_key() -> Config {
    let mut without = testutil::jwks();
    without["keys"]
        .as_array_mut()
        .unwrap()
        .retain(|key| key["kid"] != "es256");
    let json = json!({
        "providers": {
            "a": {"issuer": testutil::issuer(), "audiences": ["orders"], "jwks": without},
            "b": {"issuer": testutil::issuer(), "audiences": ["orders"], "jwks": testutil::jwks()},
        },
        "rules": [{"match": {"prefix": "/"}}],
    });
    Config::from_json(json.to_string().as_bytes()).unwrap()
}

/// A token the second provider accepted after the first refused it for a reason that comes
/// before the claims (`unknown_key`): once expired, the cache answers as the full path
/// does, with the first provider's `unknown_key`, not its claims' `expired`; and once the
/// first provider's keys change (now holding the key), the cached refusal no longer counts
/// and the first provider accepts the token, as the full path says.
#[test]
fn a_cached_refusal_is_bound_to_its_reason_and_key_version() {
    let config = first_lacks_the_key();
    let token = testutil::token("valid_ES256");
    let exp = crate::token::jws::numeric_date(&UnverifiedJws::parse(&token).unwrap().claims["exp"])
        .unwrap();
    let (verifier, mut cache) = (Counting::default(), TokenCache::new(10));
    let now = testutil::now();
    let fresh = |at: u64| {
        judge(
            &config,
            &token,
            at,
            &Counting::default(),
            &mut TokenCache::new(0),
        )
    };
    assert_eq!(
        judge(&config, &token, now, &verifier, &mut cache),
        (Ok("b".into()), Some(1))
    );
    assert_eq!(verifier.0.get(), 1);
    // b (60 s of skew) still takes it at exp + 59; from exp + 60 on, a's unknown_key.
    for (at, answer) in [
        (exp + 59, (Ok("b".to_string()), Some(1))),
        (exp + 60, (Err(AuthFailure::UnknownKey), Some(0))),
        (exp + 1000, (Err(AuthFailure::UnknownKey), Some(0))),
    ] {
        let expected = fresh(at);
        assert_eq!(expected, answer, "full path");
        assert_eq!(
            judge(&config, &token, at, &verifier, &mut cache),
            expected,
            "cache at exp{:+}",
            at as i64 - exp as i64
        );
    }
    assert_eq!(verifier.0.get(), 1, "the refusals came from the cache");
    let keys = &config.providers[0].token_rules.keys;
    keys.replace(KeySet::from_value(&testutil::jwks()).unwrap());
    assert_eq!(fresh(now), (Ok("a".into()), Some(0)), "full path");
    assert_eq!(
        judge(&config, &token, now, &verifier, &mut cache),
        (Ok("a".into()), Some(0)),
        "cache after the first provider's keys changed"
    );
}

/// Providers "bound" (certificate_binding), "strict" (required), "plain" (off), "lenient"
/// (accept_unchecked_bindings); tokens from the PyJWT fixtures.
fn binding_config() -> Config {
    let provider = |extra: serde_json::Value| {
        let mut p = json!({"issuer": testutil::issuer(), "jwks": testutil::jwks()});
        p.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        p
    };
    let json = json!({
        "providers": {
            "bound": provider(json!({"certificate_binding": {}})),
            "lenient": provider(json!({"accept_unchecked_bindings": true})),
            "plain": provider(json!({})),
            "strict": provider(json!({"certificate_binding": {"required": true}})),
        },
        "rules": [{"match": {"prefix": "/"}}],
    });
    Config::from_json(json.to_string().as_bytes()).unwrap()
}

/// One request with `token` on the connection whose client certificate has `digest`.
fn bound_request(
    config: &Config,
    provider: &str,
    token: &str,
    digest: Option<&str>,
    verifier: &Counting,
    cache: &mut TokenCache,
) -> Result<(), AuthFailure> {
    let index = config
        .providers
        .iter()
        .position(|p| p.name == provider)
        .unwrap();
    let h = headers(&[("authorization", &format!("Bearer {token}"))]);
    let digest = digest.map(str::to_string);
    let certificate = move || digest.clone();
    let request = Request {
        peer_certificate_digest: &certificate,
        ..Request::bare(&h)
    };
    let clock = || Some(testutil::now());
    let mut auth = Authenticator {
        verifier,
        cache,
        clock: &clock,
        judged_by: None,
        replay: &crate::authn::dpop::MemoryReplayStore::default(),
        presented_with_dpop: false,
        dpop_nonce: None,
    };
    let verified = auth.authenticate(&config.providers, &[index], &request)?;
    assert_eq!(auth.judged_by, Some(index));
    assert_eq!(verified.map(|v| v.index), Some(index));
    Ok(())
}

#[test]
fn the_binding_is_checked_on_every_request_cache_hits_included() {
    use AuthFailure::*;
    let config = binding_config();
    let digest = testutil::fixtures()["cert_sha256_hex"]
        .as_str()
        .unwrap()
        .to_string();
    let other = "ab".repeat(32);
    let (x5t, jkt, plain) = (
        testutil::token("bound_x5t"),
        testutil::token("bound_jkt"),
        testutil::token("valid_HS256"),
    );
    // (provider, token, the client certificate's digest, expected), in this order, with one
    // cache: each token is verified once, then every row after its first comes from the cache.
    type Row<'a> = (&'a str, &'a str, Option<&'a str>, Result<(), AuthFailure>);
    let rows: [Row; 14] = [
        ("bound", &x5t, Some(&digest), Ok(())),
        ("bound", &x5t, Some(&other), Err(CertificateMismatch)),
        ("bound", &x5t, None, Err(CertificateMissing)),
        ("bound", &x5t, Some(&digest), Ok(())),
        ("strict", &x5t, Some(&digest), Ok(())),
        ("strict", &x5t, Some(&other), Err(CertificateMismatch)),
        (
            "strict",
            &plain,
            Some(&digest),
            Err(CertificateBindingRequired),
        ),
        ("bound", &plain, None, Ok(())),
        ("plain", &x5t, Some(&digest), Err(BindingUnchecked)),
        ("plain", &jkt, None, Err(BindingUnchecked)),
        ("bound", &jkt, Some(&digest), Err(BindingUnchecked)),
        ("lenient", &x5t, Some(&other), Ok(())),
        ("lenient", &jkt, None, Ok(())),
        ("plain", &plain, None, Ok(())),
    ];
    let (verifier, mut cache) = (Counting::default(), TokenCache::new(10));
    for (n, (provider, token, digest, expected)) in rows.into_iter().enumerate() {
        let answer = bound_request(&config, provider, token, digest, &verifier, &mut cache);
        assert_eq!(answer, expected, "row {n}: {provider} {digest:?}");
    }
    // One signature check per token and provider: the rest were cache hits, and still refused.
    assert_eq!(verifier.0.get(), 10);
}
