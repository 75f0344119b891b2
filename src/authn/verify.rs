//! Token verification: key selection, signature, then the registered claims (RFC 7519 §4.1).
//!
//! The signature check sits behind [`SignatureVerifier`] so another backend (Envoy's native
//! `verify_signature` foreign function, a verified-token cache) can replace the pure-Rust one
//! without touching the rules around it.

use serde_json::Value;

use crate::authn::issuer::Issuer;
use crate::authn::jwks::{KeySet, KeyStore, MAX_KEYS_PER_TOKEN, VerificationKey};
use crate::authn::signature;
use crate::reason::AuthFailure;
use crate::token::jws::{Algorithm, UnverifiedClaims, UnverifiedJws, numeric_date};
use crate::trace::{ClaimCheck, NoTrace, Step, Trace};

/// Checks one signature with one key whose algorithm already equals the token's.
pub trait SignatureVerifier {
    fn verify(&self, key: &VerificationKey, jws: &UnverifiedJws<'_>) -> Result<(), AuthFailure>;
}

/// What a provider accepts, independent of where its tokens are found.
#[derive(Debug)]
pub struct TokenRules {
    pub issuer: Issuer,
    /// Empty: any audience.
    pub audiences: Vec<String>,
    pub keys: KeyStore,
    pub clock_skew_seconds: u64,
    pub max_lifetime_seconds: Option<u64>,
    pub require_expiration: bool,
}

impl TokenRules {
    /// Verifies a parsed token at `now` (seconds since the epoch, from the host's clock).
    pub fn verify(
        &self,
        jws: &UnverifiedJws<'_>,
        now: u64,
        verifier: &dyn SignatureVerifier,
    ) -> Result<(), AuthFailure> {
        self.verify_traced(jws, now, verifier, &mut NoTrace)
    }

    /// [`TokenRules::verify`], recording each step into `trace`.
    pub fn verify_traced<T: Trace>(
        &self,
        jws: &UnverifiedJws<'_>,
        now: u64,
        verifier: &dyn SignatureVerifier,
        trace: &mut T,
    ) -> Result<(), AuthFailure> {
        let signature = self.check_signature(jws, verifier, trace);
        trace.record(|| Step::Signature(signature));
        signature?;
        self.check_claims_traced(&jws.claims, now, trace)
    }

    fn check_signature<T: Trace>(
        &self,
        jws: &UnverifiedJws<'_>,
        verifier: &dyn SignatureVerifier,
        trace: &mut T,
    ) -> Result<(), AuthFailure> {
        let mut check = |key: &VerificationKey| {
            let outcome = verifier.verify(key, jws);
            trace.record(|| Step::Key {
                kid: key.kid.clone(),
                alg: key.alg,
                valid: outcome.is_ok(),
            });
            outcome
        };
        let alg = jws.header.alg.ok_or(AuthFailure::UnsupportedAlgorithm)?;
        let keys = self.keys.current();
        // A remote key set before its first good fetch (or dropped as too old).
        if keys.is_empty() {
            return Err(AuthFailure::KeysUnavailable);
        }
        let kid = jws.header.kid.as_deref();
        let mut outcome = None;
        for key in candidates(&keys, alg, kid) {
            let result = check(key);
            if result.is_ok() {
                return result;
            }
            outcome = Some(result);
        }
        match outcome {
            Some(failure) => failure,
            // The key the token names exists, for another algorithm: the token asks for an
            // algorithm its key does not allow (alg confusion), which says more than "no key".
            None if kid.is_some_and(|kid| keys.by_kid(kid).is_some()) => {
                Err(AuthFailure::UnsupportedAlgorithm)
            }
            None => Err(AuthFailure::UnknownKey),
        }
    }

    /// The registered-claim checks (time, issuer, audience, lifetime) on verified claims; also
    /// what a cached token is checked against again on every use.
    pub fn check_claims(&self, claims: &UnverifiedClaims, now: u64) -> Result<(), AuthFailure> {
        self.check_claims_traced(claims, now, &mut NoTrace)
    }

    /// [`TokenRules::check_claims`], recording each check into `trace`.
    pub fn check_claims_traced<T: Trace>(
        &self,
        claims: &UnverifiedClaims,
        now: u64,
        trace: &mut T,
    ) -> Result<(), AuthFailure> {
        let skew = self.clock_skew_seconds;
        let date = |name: &str| claims.get(name).and_then(numeric_date);
        let exp = date("exp");
        let iat = date("iat");
        let mut check = |which: ClaimCheck, failure: Option<AuthFailure>| {
            let result = failure.map_or(Ok(()), Err);
            trace.record(|| Step::Claim {
                check: which,
                result,
            });
            result
        };
        check(
            ClaimCheck::Exp,
            match exp {
                None if self.require_expiration => Some(AuthFailure::MissingExpiration),
                // RFC 7519 §4.1.4: not accepted on or after `exp`.
                Some(exp) if now >= exp.saturating_add(skew) => Some(AuthFailure::Expired),
                _ => None,
            },
        )?;
        check(
            ClaimCheck::Nbf,
            date("nbf")
                .is_some_and(|nbf| nbf > now.saturating_add(skew))
                .then_some(AuthFailure::NotYetValid),
        )?;
        check(
            ClaimCheck::Iat,
            iat.is_some_and(|iat| iat > now.saturating_add(skew))
                .then_some(AuthFailure::IssuedInFuture),
        )?;
        check(
            ClaimCheck::Iss,
            (!self
                .issuer
                .accepts(claims.get("iss").and_then(Value::as_str)))
            .then_some(AuthFailure::BadIssuer),
        )?;
        check(
            ClaimCheck::Aud,
            (!self.audiences.is_empty() && !self.accepts_audience(claims.get("aud")))
                .then_some(AuthFailure::BadAudience),
        )?;
        if let Some(max) = self.max_lifetime_seconds {
            // Without `iat`, the remaining lifetime is what can be bounded; without `exp`, none.
            let lifetime = exp.map(|exp| exp.saturating_sub(iat.unwrap_or(now)));
            check(
                ClaimCheck::Lifetime,
                lifetime
                    .is_none_or(|lifetime| lifetime > max)
                    .then_some(AuthFailure::LifetimeExceeded),
            )?;
        }
        Ok(())
    }

    fn accepts_audience(&self, aud: Option<&Value>) -> bool {
        let accepted = |value: &Value| {
            value
                .as_str()
                .is_some_and(|aud| self.audiences.iter().any(|a| a == aud))
        };
        match aud {
            Some(Value::Array(items)) => items.iter().any(accepted),
            Some(single) => accepted(single),
            None => false,
        }
    }
}

/// The keys a token of `alg` naming `kid` (or none) is checked against, in the order they are
/// tried, at most [`MAX_KEYS_PER_TOKEN`]. Only keys of the token's `alg` are candidates: first
/// the key whose `kid` is the token's (the key the issuer meant), then every key without `kid`
/// (it names no token, so it may have signed any), in key-set order; a token without `kid` then
/// tries the keys with one, in key-set order. A key with another `kid` is never tried for a
/// token that names one.
pub fn candidates<'s>(
    keys: &'s KeySet,
    alg: Algorithm,
    kid: Option<&'s str>,
) -> impl Iterator<Item = &'s VerificationKey> {
    let named = kid.and_then(|kid| keys.by_kid(kid)).into_iter();
    let without_kid = keys.keys().iter().filter(|k| k.kid.is_none());
    let others = keys
        .keys()
        .iter()
        .filter(move |k| kid.is_none() && k.kid.is_some());
    named
        .chain(without_kid)
        .chain(others)
        .filter(move |key| key.alg == alg)
        .take(MAX_KEYS_PER_TOKEN)
}

/// Pure-Rust signature verification, inside the Wasm VM.
pub struct PureRustVerifier;

impl SignatureVerifier for PureRustVerifier {
    fn verify(&self, key: &VerificationKey, jws: &UnverifiedJws<'_>) -> Result<(), AuthFailure> {
        if signature::is_valid(key, jws.signing_input().as_bytes(), &jws.signature) {
            Ok(())
        } else {
            Err(AuthFailure::BadSignature)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::testutil;

    fn rules() -> TokenRules {
        TokenRules {
            issuer: Issuer::Fixed(testutil::issuer()),
            audiences: vec!["orders".into()],
            keys: KeyStore::new(KeySet::from_value(&testutil::jwks()).unwrap()),
            clock_skew_seconds: 60,
            max_lifetime_seconds: Some(86_400),
            require_expiration: true,
        }
    }

    fn check(rules: &TokenRules, name: &str) -> Result<(), AuthFailure> {
        let token = testutil::token(name);
        let jws = UnverifiedJws::parse(&token)?;
        rules.verify(&jws, testutil::now(), &PureRustVerifier)
    }

    #[test]
    fn every_algorithm_family_verifies() {
        let rules = rules();
        for alg in [
            "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512",
            "EdDSA", "HS256", "HS384", "HS512",
        ] {
            assert_eq!(check(&rules, &format!("valid_{alg}")), Ok(()), "{alg}");
        }
    }

    #[test]
    fn each_failure_has_its_reason() {
        let rules = rules();
        let cases = [
            ("valid_no_kid", Ok(())),
            ("audience_in_list", Ok(())),
            ("expired_within_skew", Ok(())),
            ("expired", Err(AuthFailure::Expired)),
            ("not_yet_valid", Err(AuthFailure::NotYetValid)),
            ("issued_in_future", Err(AuthFailure::IssuedInFuture)),
            ("missing_expiration", Err(AuthFailure::MissingExpiration)),
            ("bad_issuer", Err(AuthFailure::BadIssuer)),
            ("bad_audience", Err(AuthFailure::BadAudience)),
            ("lifetime_exceeded", Err(AuthFailure::LifetimeExceeded)),
            ("unknown_kid", Err(AuthFailure::UnknownKey)),
            ("alg_kid_mismatch", Err(AuthFailure::UnsupportedAlgorithm)),
            ("hs256_with_rsa_kid", Err(AuthFailure::UnsupportedAlgorithm)),
            (
                "es512_with_es256_kid",
                Err(AuthFailure::UnsupportedAlgorithm),
            ),
            ("es512_bad_signature", Err(AuthFailure::BadSignature)),
            ("bad_signature", Err(AuthFailure::BadSignature)),
            ("no_kid_bad_signature", Err(AuthFailure::BadSignature)),
        ];
        for (name, expected) in cases {
            assert_eq!(check(&rules, name), expected, "{name}");
        }
    }

    #[test]
    fn optional_expiration_and_open_audience() {
        let mut rules = rules();
        rules.require_expiration = false;
        rules.max_lifetime_seconds = None;
        rules.audiences.clear();
        assert_eq!(check(&rules, "missing_expiration"), Ok(()));
        assert_eq!(check(&rules, "bad_audience"), Ok(()));
        rules.max_lifetime_seconds = Some(3600);
        assert_eq!(
            check(&rules, "missing_expiration"),
            Err(AuthFailure::LifetimeExceeded)
        );
    }

    #[test]
    fn skew_is_applied_to_every_time_claim() {
        let mut rules = rules();
        rules.clock_skew_seconds = 0;
        assert_eq!(
            check(&rules, "expired_within_skew"),
            Err(AuthFailure::Expired)
        );
        rules.clock_skew_seconds = 7200;
        assert_eq!(check(&rules, "not_yet_valid"), Ok(()));
        assert_eq!(check(&rules, "issued_in_future"), Ok(()));
    }

    /// Any change to a valid token, in any part, must be refused (and must not panic).
    #[test]
    fn no_mutation_of_a_valid_token_is_accepted() {
        let rules = rules();
        let algs = [
            "RS256", "PS384", "ES256", "ES384", "ES512", "EdDSA", "HS256", "HS512",
        ];
        let mut tried = 0;
        for alg in algs {
            let token = testutil::token(&format!("valid_{alg}"));
            // Parts of other tokens from the same issuer and key set: another header and
            // signature (another algorithm), and other claims.
            let other = testutil::token(if alg == "ES256" {
                "valid_ES384"
            } else {
                "valid_ES256"
            });
            let other_claims = testutil::token("policy_admin");
            let mut mutants: Vec<String> = Vec::new();
            for index in 0..token.len() {
                let byte = token.as_bytes()[index];
                if byte == b'.' {
                    continue;
                }
                let replacement = if byte == b'A' { 'B' } else { 'A' };
                let mut mutant = token.clone();
                mutant.replace_range(index..=index, &replacement.to_string());
                mutants.push(mutant);
            }
            let parts: Vec<&str> = token.split('.').collect();
            let other_parts: Vec<&str> = other.split('.').collect();
            let other_payload = other_claims.split('.').nth(1).unwrap();
            mutants.extend([
                token[..token.len() - 1].to_string(),
                format!("{token}."),
                format!("{token}A"),
                format!("{}.{}.{}", other_parts[0], parts[1], parts[2]),
                format!("{}.{}.{}", parts[0], other_payload, parts[2]),
                format!("{}.{}.{}", parts[0], parts[1], other_parts[2]),
                format!("{}.{}.", parts[0], parts[1]),
            ]);
            for mutant in mutants {
                assert_ne!(mutant, token, "{alg}: a mutant must differ from the token");
                tried += 1;
                let outcome = UnverifiedJws::parse(&mutant)
                    .and_then(|jws| rules.verify(&jws, testutil::now(), &PureRustVerifier));
                assert!(outcome.is_err(), "{alg}: accepted mutant {mutant}");
            }
        }
        assert!(tried > 1000, "only {tried} mutants");
    }

    #[test]
    fn alg_none_and_stripped_signatures_are_refused() {
        use ct_codecs::{Base64UrlSafeNoPadding, Encoder};
        let rules = rules();
        let valid = testutil::token("valid_ES256");
        let (header_payload, _) = valid.rsplit_once('.').unwrap();
        let stripped = format!("{header_payload}.");
        let jws = UnverifiedJws::parse(&stripped).unwrap();
        assert_eq!(
            rules.verify(&jws, testutil::now(), &PureRustVerifier).err(),
            Some(AuthFailure::BadSignature)
        );
        let payload = header_payload.split_once('.').unwrap().1;
        let none = format!(
            "{}.{payload}.",
            Base64UrlSafeNoPadding::encode_to_string(r#"{"alg":"none"}"#).unwrap()
        );
        let jws = UnverifiedJws::parse(&none).unwrap();
        assert_eq!(
            rules.verify(&jws, testutil::now(), &PureRustVerifier).err(),
            Some(AuthFailure::UnsupportedAlgorithm)
        );
    }

    /// UnverifiedClaims for the boundary tables: `iss` the configured issuer, `aud` "orders", and the
    /// given time claims (seconds since the epoch).
    fn time_claims(exp: Option<u64>, nbf: Option<u64>, iat: Option<u64>) -> UnverifiedClaims {
        let mut claims = UnverifiedClaims::new();
        claims.insert("iss".into(), Value::from(testutil::issuer()));
        claims.insert("aud".into(), Value::from("orders"));
        for (name, value) in [("exp", exp), ("nbf", nbf), ("iat", iat)] {
            if let Some(value) = value {
                claims.insert(name.into(), Value::from(value));
            }
        }
        claims
    }

    /// The last second each time claim is accepted and the first it is refused, with and
    /// without clock skew, on a fixed clock: `exp` is refused from `exp + skew` on (RFC 7519
    /// §4.1.4), `nbf` and `iat` until `now + skew` reaches them, and the lifetime (`exp − iat`,
    /// or `exp − now` without `iat`) above `max_lifetime_seconds`. One second either way in
    /// any comparison changes one row.
    #[test]
    fn time_claims_at_their_exact_boundaries() {
        use AuthFailure::{Expired, IssuedInFuture, LifetimeExceeded, NotYetValid};
        const T: u64 = 1_800_000_000;
        const MAX: u64 = 3600;
        let mut rules = rules();
        rules.max_lifetime_seconds = Some(MAX);
        // (skew, exp, nbf, iat, now, expected)
        type Case = (
            u64,
            Option<u64>,
            Option<u64>,
            Option<u64>,
            u64,
            Result<(), AuthFailure>,
        );
        #[rustfmt::skip]
        let cases: [Case; 22] = [
            // exp: accepted up to exp + skew − 1, refused at exp + skew.
            (0, Some(T), None, None, T - 1, Ok(())),
            (0, Some(T), None, None, T, Err(Expired)),
            (60, Some(T), None, None, T + 59, Ok(())),
            (60, Some(T), None, None, T + 60, Err(Expired)),
            // nbf: refused while nbf > now + skew.
            (0, Some(T + 100), Some(T), None, T - 1, Err(NotYetValid)),
            (0, Some(T + 100), Some(T), None, T, Ok(())),
            (60, Some(T + 100), Some(T), None, T - 61, Err(NotYetValid)),
            (60, Some(T + 100), Some(T), None, T - 60, Ok(())),
            // iat in the future: the same boundary as nbf.
            (0, Some(T + 100), None, Some(T), T - 1, Err(IssuedInFuture)),
            (0, Some(T + 100), None, Some(T), T, Ok(())),
            (60, Some(T + 100), None, Some(T), T - 61, Err(IssuedInFuture)),
            (60, Some(T + 100), None, Some(T), T - 60, Ok(())),
            // Lifetime exp − iat: MAX accepted, MAX + 1 refused, whatever the time.
            (0, Some(T + MAX), None, Some(T), T, Ok(())),
            (0, Some(T + MAX + 1), None, Some(T), T, Err(LifetimeExceeded)),
            (60, Some(T + MAX), None, Some(T), T + 10, Ok(())),
            (60, Some(T + MAX + 1), None, Some(T), T + 10, Err(LifetimeExceeded)),
            // Without iat, the remaining lifetime exp − now.
            (0, Some(T + MAX), None, None, T, Ok(())),
            (0, Some(T + MAX + 1), None, None, T, Err(LifetimeExceeded)),
            (0, Some(T + MAX + 1), None, None, T + 1, Ok(())),
            // A token both expired and too long-lived is expired first (the order of checks).
            (0, Some(T + MAX + 1), None, Some(T), T + MAX + 1, Err(Expired)),
            // nbf and iat equal to now with no skew: in force.
            (0, Some(T + 1), Some(T), Some(T), T, Ok(())),
            // exp one second after nbf, judged at nbf: in force.
            (0, Some(T + 1), Some(T), None, T, Ok(())),
        ];
        for (skew, exp, nbf, iat, now, expected) in cases {
            rules.clock_skew_seconds = skew;
            let claims = time_claims(exp, nbf, iat);
            assert_eq!(
                rules.check_claims(&claims, now),
                expected,
                "skew {skew}, exp {exp:?}, nbf {nbf:?}, iat {iat:?}, now T{:+}",
                now as i64 - T as i64
            );
        }
    }

    /// With audiences configured, a token must name one of them: no `aud` at all, an empty
    /// list, a non-string or a near miss is `bad_audience`. Without audiences, any goes.
    #[test]
    fn audience_must_be_present_and_exact_when_configured() {
        const T: u64 = 1_800_000_000;
        let mut rules = rules();
        rules.audiences = vec!["orders".into(), "billing".into()];
        let cases: [(Option<Value>, bool); 11] = [
            (None, false),
            (Some(Value::Null), false),
            (Some(serde_json::json!([])), false),
            (Some(serde_json::json!(7)), false),
            (Some(serde_json::json!("order")), false),
            (Some(serde_json::json!("orders ")), false),
            (Some(serde_json::json!(["other", 1])), false),
            (Some(serde_json::json!("orders")), true),
            (Some(serde_json::json!("billing")), true),
            (Some(serde_json::json!(["other", "billing"])), true),
            (Some(serde_json::json!([1, "orders"])), true),
        ];
        for (aud, accepted) in &cases {
            let mut claims = time_claims(Some(T + 60), None, None);
            match aud {
                Some(aud) => claims.insert("aud".into(), aud.clone()),
                None => claims.remove("aud"),
            };
            let expected = if *accepted {
                Ok(())
            } else {
                Err(AuthFailure::BadAudience)
            };
            assert_eq!(rules.check_claims(&claims, T), expected, "aud {aud:?}");
        }
        rules.audiences.clear();
        for (aud, _) in cases {
            let mut claims = time_claims(Some(T + 60), None, None);
            match aud {
                Some(aud) => claims.insert("aud".into(), aud),
                None => claims.remove("aud"),
            };
            assert_eq!(rules.check_claims(&claims, T), Ok(()), "open audience");
        }
    }

    /// The issuer is compared whole: a prefix, an extension, another case, a trailing slash,
    /// a non-string or no `iss` at all is `bad_issuer`.
    #[test]
    fn issuer_must_match_exactly() {
        const T: u64 = 1_800_000_000;
        let rules = rules();
        let issuer = testutil::issuer();
        let refused = [
            Some(Value::from(&issuer[..issuer.len() - 1])),
            Some(Value::from(format!("{issuer}.evil.example"))),
            Some(Value::from(format!("{issuer}/"))),
            Some(Value::from(issuer.to_uppercase())),
            Some(Value::from("")),
            Some(serde_json::json!([issuer])),
            None,
        ];
        for iss in refused {
            let mut claims = time_claims(Some(T + 60), None, None);
            match &iss {
                Some(iss) => claims.insert("iss".into(), iss.clone()),
                None => claims.remove("iss"),
            };
            assert_eq!(
                rules.check_claims(&claims, T),
                Err(AuthFailure::BadIssuer),
                "iss {iss:?}"
            );
        }
        let claims = time_claims(Some(T + 60), None, None);
        assert_eq!(rules.check_claims(&claims, T), Ok(()));
    }
}
