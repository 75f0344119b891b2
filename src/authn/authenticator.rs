//! Authentication: find the token, consult the verified-token cache, parse, choose the
//! provider, select the key, check the signature and the registered claims. The answer is who
//! the caller is (the provider that accepted the token and its verified claims) or a 401
//! reason. Policy only ever sees claims that came out of here.

use std::rc::Rc;

use crate::authn::cache::{CachedToken, TokenCache};
use crate::authn::claims::VerifiedClaims;
use crate::authn::provider::Provider;
use crate::authn::verify::SignatureVerifier;
use crate::reason::AuthFailure;
use crate::request::Request;
use crate::token::extract::{FoundToken, find_token};
use crate::token::jws::UnverifiedJws;
use crate::trace::{NoTrace, Step, Trace};

/// A token that passed every check.
pub struct Verified<'c> {
    /// The accepting provider's index in the configuration's providers.
    pub index: usize,
    pub provider: &'c Provider,
    /// Verified claims; shared with the cache.
    pub claims: Rc<VerifiedClaims>,
    /// The token and every place it was found (for removal before the request goes upstream).
    pub found: FoundToken<'c>,
}

/// A cache hit still in force: the accepting provider's index, the provider, its claims.
type Accepted<'c> = (usize, &'c Provider, Rc<VerifiedClaims>);

/// What authentication needs besides the configuration and the request.
pub struct Authenticator<'a> {
    pub verifier: &'a dyn SignatureVerifier,
    pub cache: &'a mut TokenCache,
    /// Seconds since the epoch on the host's clock; asked only when there is a token to judge.
    /// `None` (no clock) refuses the token: no expiry can be judged without one.
    pub clock: &'a dyn Fn() -> Option<u64>,
    /// The provider that judged the last token: the one that accepted it or, when it was
    /// refused, the first of the rule's providers that names its issuer. `None` for no token,
    /// or a token no provider of the rule claims. (Counters and outcomes per provider.)
    pub judged_by: Option<usize>,
}

impl Authenticator<'_> {
    /// `providers`: the rule's providers, as indexes into `configured`. `Ok(None)`: no token in
    /// any location of these providers.
    pub fn authenticate<'c>(
        &mut self,
        configured: &'c [Provider],
        providers: &[usize],
        request: &Request<'_>,
    ) -> Result<Option<Verified<'c>>, AuthFailure> {
        self.authenticate_traced(configured, providers, request, &mut NoTrace)
    }

    /// [`Authenticator::authenticate`], recording each step into `trace`.
    pub fn authenticate_traced<'c, T: Trace>(
        &mut self,
        configured: &'c [Provider],
        providers: &[usize],
        request: &Request<'_>,
        trace: &mut T,
    ) -> Result<Option<Verified<'c>>, AuthFailure> {
        self.judged_by = None;
        let locations = providers
            .iter()
            .filter_map(|&index| configured.get(index))
            .flat_map(|provider| provider.locations.iter());
        let found = find_token(request, locations);
        trace.record(|| match &found {
            Ok(None) => Step::NoToken,
            Ok(Some(found)) => Step::TokenFound {
                token: found.token.clone(),
                locations: found.locations.iter().map(|l| (*l).clone()).collect(),
            },
            Err(failure) => Step::TokenUnusable(*failure),
        });
        let Some(found) = found? else {
            return Ok(None);
        };
        let now = (self.clock)().ok_or(AuthFailure::Expired)?;
        // The providers that look where the token was found, in configuration order.
        let candidates: Vec<(usize, &'c Provider)> = providers
            .iter()
            .filter_map(|&index| Some((index, configured.get(index)?)))
            .filter(|(_, p)| found.locations.iter().any(|loc| p.locations.contains(loc)))
            .collect();
        trace.record(|| Step::Candidates(candidates.iter().map(|(index, _)| *index).collect()));
        if let Some(verified) = self.cached(&candidates, &found, now, trace)? {
            return Ok(Some(Verified {
                index: verified.0,
                provider: verified.1,
                claims: verified.2,
                found,
            }));
        }
        let jws = UnverifiedJws::parse(&found.token);
        trace.record(|| Step::Parsed(jws.as_ref().map(|_| ()).map_err(|failure| *failure)));
        let jws = jws?;
        let (index, provider, passed_over) = self.choose(&candidates, &jws, now, trace)?;
        // Every check has passed: from here on the claims are verified.
        let claims = Rc::new(VerifiedClaims::new(jws.claims));
        self.cache.insert(
            &found.token,
            CachedToken {
                provider: index,
                key_version: provider.token_rules.keys.version(),
                passed_over,
                claims: claims.clone(),
            },
        );
        Ok(Some(Verified {
            index,
            provider,
            claims,
            found,
        }))
    }

    /// A cache hit still in force: the provider that accepted the token is the one this request
    /// would end up with (every candidate tried before it for this issuer refused the token for
    /// good, under the keys it has now), its keys are the same, and the time, issuer and
    /// audience checks pass again now. A hit whose claims fail those checks is refused as the
    /// full path would refuse it: with the first candidate's reason, judged by it (an expired
    /// cached token is expired; one that the first candidate refused for its audience is
    /// `bad_audience`, or expired by that provider's clock skew). Anything else falls back to
    /// the full path.
    fn cached<'c, T: Trace>(
        &mut self,
        candidates: &[(usize, &'c Provider)],
        found: &FoundToken<'_>,
        now: u64,
        trace: &mut T,
    ) -> Result<Option<Accepted<'c>>, AuthFailure> {
        let Some(hit) = self.cache.lookup(&found.token) else {
            return Ok(None);
        };
        let issuer = hit.claims.get("iss").and_then(|iss| iss.as_str());
        // The first candidate for this issuer, when it refused the token: its reason now.
        let mut first_refusal: Option<(usize, AuthFailure)> = None;
        for &(index, provider) in candidates {
            if issuer != Some(provider.token_rules.issuer.as_str()) {
                continue;
            }
            let version = provider.token_rules.keys.version();
            if index == hit.provider && version == hit.key_version {
                trace.record(|| Step::CacheHit { provider: index });
                let result = provider
                    .token_rules
                    .check_claims_traced(&hit.claims, now, trace);
                trace.record(|| Step::ProviderResult {
                    provider: index,
                    result,
                });
                if let (Err(_), Some((first, reason))) = (result, first_refusal) {
                    self.judged_by = Some(first);
                    return Err(reason);
                }
                self.judged_by = Some(index);
                result?;
                return Ok(Some((index, provider, hit.claims.clone())));
            }
            let Some(&(_, _, reason)) = hit
                .passed_over
                .iter()
                .find(|(i, v, _)| *i == index && *v == version)
            else {
                return Ok(None);
            };
            if first_refusal.is_none() {
                // Its signature was good if it got as far as the claims; those it checks again
                // now, since time may now refuse the token earlier (with its own skew).
                let reason = match provider.token_rules.check_claims(&hit.claims, now) {
                    Err(now_reason) if is_claims_refusal(reason) => now_reason,
                    _ => reason,
                };
                first_refusal = Some((index, reason));
            }
        }
        Ok(None)
    }

    /// The provider that accepts the token. Candidates that name the token's issuer are tried
    /// in configuration order (one IdP may stand behind several providers, with other
    /// audiences or keys); the first that accepts it wins. When none does, the first one's
    /// reason is the answer. A token whose issuer no candidate names is judged by the first
    /// candidate (it then fails with `bad_issuer` or earlier).
    ///
    /// Also returns the providers (with their key-set versions and reasons) that refused the
    /// token before the one that accepted it, for reasons time cannot change.
    #[allow(clippy::type_complexity)]
    fn choose<'c, T: Trace>(
        &mut self,
        candidates: &[(usize, &'c Provider)],
        jws: &UnverifiedJws<'_>,
        now: u64,
        trace: &mut T,
    ) -> Result<(usize, &'c Provider, Vec<(usize, u64, AuthFailure)>), AuthFailure> {
        let issuer = jws.claims.get("iss").and_then(|iss| iss.as_str());
        let mut first_failure = None;
        let mut passed_over = Vec::new();
        let same_issuer = candidates
            .iter()
            .filter(|(_, p)| issuer == Some(p.token_rules.issuer.as_str()));
        for &(index, provider) in same_issuer {
            self.judged_by.get_or_insert(index);
            match self.attempt(index, provider, true, jws, now, trace) {
                Ok(()) => {
                    self.judged_by = Some(index);
                    return Ok((index, provider, passed_over));
                }
                Err(failure) => {
                    // Only a token that names this provider's issuer may ask for its keys to be
                    // fetched again (at most once per min_refetch_seconds, by the root context).
                    if failure == AuthFailure::UnknownKey && provider.remote.is_some() {
                        provider.token_rules.keys.want_refetch();
                    }
                    if !failure.depends_on_time() {
                        let version = provider.token_rules.keys.version();
                        passed_over.push((index, version, failure));
                    }
                    first_failure.get_or_insert(failure);
                }
            }
        }
        if let Some(failure) = first_failure {
            return Err(failure);
        }
        let &(index, provider) = candidates.first().ok_or(AuthFailure::Malformed)?;
        self.attempt(index, provider, false, jws, now, trace)?;
        Ok((index, provider, passed_over))
    }

    /// One provider's full check of the token (key, signature, claims), traced.
    fn attempt<T: Trace>(
        &self,
        index: usize,
        provider: &Provider,
        names_issuer: bool,
        jws: &UnverifiedJws<'_>,
        now: u64,
        trace: &mut T,
    ) -> Result<(), AuthFailure> {
        trace.record(|| Step::Provider {
            provider: index,
            names_issuer,
        });
        let result = provider
            .token_rules
            .verify_traced(jws, now, self.verifier, trace);
        trace.record(|| Step::ProviderResult {
            provider: index,
            result,
        });
        result
    }
}

/// Refusals of the registered-claim checks, which come after the signature check.
fn is_claims_refusal(failure: AuthFailure) -> bool {
    matches!(
        failure,
        AuthFailure::MissingExpiration
            | AuthFailure::Expired
            | AuthFailure::NotYetValid
            | AuthFailure::IssuedInFuture
            | AuthFailure::BadIssuer
            | AuthFailure::BadAudience
            | AuthFailure::LifetimeExceeded
    )
}

#[cfg(test)]
mod tests {
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
        fn verify(
            &self,
            key: &VerificationKey,
            jws: &UnverifiedJws<'_>,
        ) -> Result<(), AuthFailure> {
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
        let exp =
            crate::token::jws::numeric_date(&UnverifiedJws::parse(&token).unwrap().claims["exp"])
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
        let exp =
            crate::token::jws::numeric_date(&UnverifiedJws::parse(&token).unwrap().claims["exp"])
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
}
