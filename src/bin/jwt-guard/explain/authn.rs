//! Explain's `authentication:` section: the token's places and fingerprint, the provider that
//! judged it, its header (alg, kid), the key and signature, and each registered-claim check.

use jwt_guard::authn::provider::Provider;
use jwt_guard::config::Authentication;
use jwt_guard::token::extract::TokenLocation;
use jwt_guard::token::jws::UnverifiedClaims;
use jwt_guard::token::jws::{decode_part, numeric_date};
use jwt_guard::trace::{ClaimCheck, Step};
use serde_json::Value;

use super::explained::{Explained, Lines, compact, fingerprint, ok_or, provider_name};

/// The `authentication:` section, for a rule with providers: where the token was looked for
/// and found, the provider that judged it, its header, key and signature, each claim check.
pub fn lines(explained: &Explained, lines: &mut Lines) {
    let config = explained.config;
    let Some(rule) = explained.selected_rule() else {
        return;
    };
    let (providers, anonymous) = match &rule.authentication {
        Authentication::Disabled => return,
        Authentication::Required(providers) => (providers, false),
        Authentication::Optional(providers) => (providers, true),
    };
    lines.add(0, "authentication:");
    let names: Vec<&str> = providers
        .iter()
        .map(|&p| provider_name(config, p))
        .collect();
    lines.add(1, format!("providers of the rule: {}", names.join(", ")));
    let claims = explained.token_claims();
    for step in explained.steps {
        match step {
            Step::NoToken => {
                let mut locations: Vec<String> = Vec::new();
                for provider in providers.iter().filter_map(|&p| config.providers.get(p)) {
                    for location in &provider.locations {
                        let text = describe_location(location);
                        if !locations.contains(&text) {
                            locations.push(text);
                        }
                    }
                }
                lines.add(1, format!("no token in: {}", locations.join(", ")));
                let outcome = if !anonymous {
                    "the rule needs a token → 401 missing".to_string()
                } else if rule.needs_token() {
                    "allow_anonymous, but roles, scopes, claims, bind_ip_claim, principals.any or bind need a token → 401 missing (after the deny rules; a fall_through may still let it through)".to_string()
                } else {
                    "allow_anonymous: an anonymous request is fine".to_string()
                };
                lines.add(1, outcome);
            }
            Step::TokenFound { token, locations } => {
                let places: Vec<String> = locations.iter().map(describe_location).collect();
                lines.add(
                    1,
                    format!(
                        "token {} ({} bytes) in {}",
                        fingerprint(token),
                        token.len(),
                        places.join(" and ")
                    ),
                );
            }
            Step::TokenUnusable(failure) => lines.add(
                1,
                format!(
                    "a token location holds no usable token (empty, not UTF-8, or two different tokens) → 401 {}",
                    failure.code()
                ),
            ),
            Step::Candidates(candidates) => {
                let names: Vec<&str> =
                    candidates.iter().map(|&p| provider_name(config, p)).collect();
                lines.add(1, format!("providers that look there: {}", names.join(", ")));
            }
            Step::CacheHit { provider } => lines.add(
                1,
                format!("verified-token cache hit ({})", provider_name(config, *provider)),
            ),
            Step::Parsed(Ok(())) => lines.add(1, header_line(explained)),
            Step::Parsed(Err(failure)) => lines.add(
                1,
                match failure {
                    jwt_guard::reason::AuthFailure::TooLarge => format!(
                        "the token is longer than {} bytes: not parsed → 401 too_large",
                        jwt_guard::token::jws::MAX_TOKEN_BYTES
                    ),
                    other => format!(
                        "not a well-formed signed JWT (compact JWS, strict base64url, JSON header and claims, no crit/JWE) → 401 {}",
                        other.code()
                    ),
                },
            ),
            Step::Provider {
                provider,
                names_issuer,
            } => {
                let name = provider_name(config, *provider);
                let issuer = config
                    .providers
                    .get(*provider)
                    .map_or("", |p| p.token_rules.issuer.as_str());
                lines.add(
                    1,
                    if *names_issuer {
                        format!("provider {name} (issuer {issuer:?}, the token's iss):")
                    } else {
                        format!(
                            "provider {name} (issuer {issuer:?}): no provider of the rule names the token's iss {}, so the first one judges it:",
                            claims
                                .as_ref()
                                .and_then(|c| c.get("iss"))
                                .map_or("(none)".to_string(), compact)
                        )
                    },
                );
            }
            Step::Key { kid, alg, valid } => lines.add(
                2,
                format!(
                    "key {} ({}): signature {}",
                    kid.as_deref()
                        .map_or("without kid".to_string(), |k| format!("kid {k:?}")),
                    alg.name(),
                    if *valid { "valid" } else { "invalid" }
                ),
            ),
            Step::Signature(Err(failure)) => {
                lines.add(2, signature_failure(*failure));
            }
            Step::Claim { check, result } => {
                if let Some(provider) = explained.judging_provider(step) {
                    lines.add(2, claim_line(explained, provider, claims.as_ref(), *check, *result));
                }
            }
            Step::ProviderResult { provider, result } => lines.add(
                2,
                match result {
                    Ok(()) => format!("→ accepted by {}", provider_name(config, *provider)),
                    Err(failure) => format!(
                        "→ refused by {}: {}",
                        provider_name(config, *provider),
                        failure.code()
                    ),
                },
            ),
            Step::Binding(Err(failure)) => lines.add(
                2,
                format!(
                    "→ the token's cnf binding is not satisfied (explain sees no client certificate) → 401 {}",
                    failure.code()
                ),
            ),
            _ => {}
        }
    }
}

fn header_line(explained: &Explained) -> String {
    let header = explained
        .token()
        .and_then(|token| token.split('.').next())
        .and_then(|part| decode_part(part).ok())
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok());
    let member = |name: &str| {
        header
            .as_ref()
            .and_then(|h| h.get(name))
            .map_or("(none)".to_string(), compact)
    };
    format!(
        "well-formed; header: alg {}, kid {}, typ {}",
        member("alg"),
        member("kid"),
        member("typ")
    )
}

fn signature_failure(failure: jwt_guard::reason::AuthFailure) -> String {
    use jwt_guard::reason::AuthFailure as F;
    let why = match failure {
        F::UnsupportedAlgorithm => {
            "the token's alg is not one jwt-guard verifies, or not the algorithm of the key its kid names"
        }
        F::UnknownKey => {
            "no key of the token's alg has its kid or no kid (a token without kid: no key of its alg)"
        }
        F::KeysUnavailable => {
            "the provider has no keys yet (remote_jwks before its first fetch: give --jwks PROVIDER=FILE)"
        }
        F::BadSignature => "no key verified the signature",
        _ => "",
    };
    format!("{why} → {}", failure.code())
}

fn claim_line(
    explained: &Explained,
    provider: &Provider,
    claims: Option<&UnverifiedClaims>,
    check: ClaimCheck,
    result: Result<(), jwt_guard::reason::AuthFailure>,
) -> String {
    let rules = &provider.token_rules;
    let now = explained.input.now;
    let skew = rules.clock_skew_seconds;
    let get = |name: &str| claims.and_then(|c| c.get(name));
    let date = |name: &str| get(name).and_then(numeric_date);
    let verdict = ok_or(result, |f| f.code());
    match check {
        ClaimCheck::Exp => match date("exp") {
            Some(exp) => format!(
                "exp {exp} ({}; clock skew {skew} s): {verdict}",
                seconds(now, exp)
            ),
            None if rules.require_expiration => {
                format!("no exp, and require_expiration: {verdict}")
            }
            None => format!("no exp (require_expiration is false): {verdict}"),
        },
        ClaimCheck::Nbf => match date("nbf") {
            Some(nbf) => format!("nbf {nbf} ({}): {verdict}", seconds(now, nbf)),
            None => format!("no nbf: {verdict}"),
        },
        ClaimCheck::Iat => match date("iat") {
            Some(iat) => format!("iat {iat} ({}): {verdict}", seconds(now, iat)),
            None => format!("no iat: {verdict}"),
        },
        ClaimCheck::Iss => format!(
            "iss {}, issuer {:?}: {verdict}",
            get("iss").map_or("(none)".to_string(), compact),
            rules.issuer.as_str()
        ),
        ClaimCheck::Aud if rules.audiences.is_empty() => {
            format!("aud: any audience accepted: {verdict}")
        }
        ClaimCheck::Aud => format!(
            "aud {}, accepted [{}]: {verdict}",
            get("aud").map_or("(none)".to_string(), compact),
            rules.audiences.join(", ")
        ),
        ClaimCheck::Lifetime => {
            let max = rules.max_lifetime_seconds.unwrap_or_default();
            match (date("exp"), date("iat")) {
                (Some(exp), Some(iat)) => format!(
                    "lifetime exp − iat = {} s, at most {max} s: {verdict}",
                    exp.saturating_sub(iat)
                ),
                (Some(exp), None) => format!(
                    "lifetime (no iat) exp − now = {} s, at most {max} s: {verdict}",
                    exp.saturating_sub(now)
                ),
                _ => format!("lifetime: no exp, max_lifetime_seconds {max}: {verdict}"),
            }
        }
    }
}

fn describe_location(location: &TokenLocation) -> String {
    match location {
        TokenLocation::Header { name, prefix } if prefix.is_empty() => format!("header {name}"),
        TokenLocation::Header { name, prefix } => format!("header {name} ({prefix:?})"),
        TokenLocation::Param(param) => format!("query parameter {param}"),
        TokenLocation::Cookie(cookie) => format!("cookie {cookie}"),
    }
}

fn seconds(now: u64, at: u64) -> String {
    if at == now {
        "now".to_string()
    } else if at > now {
        format!("in {} s", at - now)
    } else {
        format!("{} s ago", now - at)
    }
}
