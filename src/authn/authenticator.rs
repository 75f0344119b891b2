//! Authentication: find the token, consult the verified-token cache, parse, choose the
//! provider, select the key, check the signature and the registered claims. The answer is who
//! the caller is (the provider that accepted the token and its verified claims) or a 401
//! reason. Policy only ever sees claims that came out of here.

use std::rc::Rc;

use crate::authn::cache::{CachedToken, TokenCache};
use crate::authn::claims::VerifiedClaims;
use crate::authn::dpop::{ProofContext, ReplayStore};
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
    /// Where DPoP proofs' `jti`s are remembered (shared by every worker of the host).
    pub replay: &'a dyn ReplayStore,
    /// The last token came with the DPoP authorization scheme.
    pub presented_with_dpop: bool,
    /// The server nonce a `dpop_nonce_required` refusal hands the client.
    pub dpop_nonce: Option<String>,
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
        self.presented_with_dpop = false;
        self.dpop_nonce = None;
        let locations = providers
            .iter()
            .filter_map(|&index| configured.get(index))
            .flat_map(|provider| provider.locations.iter());
        let found = find_token(request, locations.clone());
        trace.record(|| match &found {
            Ok(None) => Step::NoToken,
            Ok(Some(found)) => Step::TokenFound {
                token: found.token.clone(),
                locations: found.locations.iter().map(|l| (*l).clone()).collect(),
            },
            Err(failure) => Step::TokenUnusable(*failure),
        });
        let found = match found {
            Ok(found) => found,
            Err(failure) => {
                // Refused before one token stood out (two credentials, say): the challenge is
                // DPoP's if any of them came with the DPoP scheme.
                let dpop = locations.filter(|location| location.is_dpop());
                self.presented_with_dpop = !matches!(find_token(request, dpop), Ok(None));
                return Err(failure);
            }
        };
        let Some(found) = found else {
            return Ok(None);
        };
        let with_dpop = found.locations.iter().any(|l| l.is_dpop());
        self.presented_with_dpop = with_dpop;
        // One token, presented both as DPoP-bound and as a bearer token: which scheme the
        // upstream believes is anybody's guess.
        if with_dpop && found.locations.iter().any(|l| !l.is_dpop()) {
            return Err(AuthFailure::Malformed);
        }
        let now = (self.clock)().ok_or(AuthFailure::Expired)?;
        // The providers that look where the token was found, in configuration order.
        let candidates: Vec<(usize, &'c Provider)> = providers
            .iter()
            .filter_map(|&index| Some((index, configured.get(index)?)))
            .filter(|(_, p)| found.locations.iter().any(|loc| p.locations.contains(loc)))
            .collect();
        trace.record(|| Step::Candidates(candidates.iter().map(|(index, _)| *index).collect()));
        if let Some(verified) = self.cached(&candidates, &found, now, trace)? {
            self.check_binding(verified.1, &verified.2, request, &found.token, now, trace)?;
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
        self.check_binding(provider, &claims, request, &found.token, now, trace)?;
        Ok(Some(Verified {
            index,
            provider,
            claims,
            found,
        }))
    }

    /// The accepting provider's check of the token's `cnf` against this request (never cached:
    /// a bound token is bound to the connection or proof it comes with, not to itself). Its
    /// refusal is the answer: the token is genuine, so no other provider for its issuer is tried.
    fn check_binding<T: Trace>(
        &mut self,
        provider: &Provider,
        claims: &VerifiedClaims,
        request: &Request<'_>,
        token: &str,
        now: u64,
        trace: &mut T,
    ) -> Result<(), AuthFailure> {
        let context = ProofContext {
            request,
            token,
            now,
            clock_skew_seconds: provider.token_rules.clock_skew_seconds,
            verifier: self.verifier,
            replay: self.replay,
        };
        let result = provider
            .binding
            .check(claims, self.presented_with_dpop, &context);
        if result == Err(AuthFailure::DpopNonceRequired) {
            self.dpop_nonce = provider
                .binding
                .dpop
                .as_ref()
                .and_then(|dpop| dpop.nonce.as_ref())
                .map(|nonce| nonce.current(now));
        }
        if result.is_err() {
            trace.record(|| Step::Binding(result));
        }
        result
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
            if !provider.token_rules.issuer.accepts(issuer) {
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
    /// candidate whose issuer template has its form, else by the first candidate (it then
    /// fails with `bad_issuer` or earlier).
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
            .filter(|(_, p)| p.token_rules.issuer.accepts(issuer));
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
                    if provider.remote.is_some() && wants_new_keys(provider, jws, failure) {
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
        // A token of a tenant a template does not allow is judged by that template's provider
        // (its keys, then `bad_issuer`), not by another provider's keys.
        let &(index, provider) = candidates
            .iter()
            .find(|(_, p)| p.token_rules.issuer.resembles(issuer))
            .or(candidates.first())
            .ok_or(AuthFailure::Malformed)?;
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

/// Whether the keys a token failed against may lack its key, so newer ones are worth fetching:
/// no key was a candidate, or the token names a `kid` the keys lack (keys without `kid` were
/// tried and failed, but an IdP that rotated may have published the one it names).
fn wants_new_keys(provider: &Provider, jws: &UnverifiedJws<'_>, failure: AuthFailure) -> bool {
    match failure {
        AuthFailure::UnknownKey => true,
        AuthFailure::BadSignature => jws
            .header
            .kid
            .as_deref()
            .is_some_and(|kid| provider.token_rules.keys.current().by_kid(kid).is_none()),
        _ => false,
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
#[path = "authenticator_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "kid_rule_tests.rs"]
mod kid_rule_tests;
