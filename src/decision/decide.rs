//! The decision for one request: which rule applies, whether the caller is authenticated (401),
//! whether policy permits it (403), and what to change before the request goes upstream.

use crate::authn::Authenticator;
use crate::authn::claims::VerifiedClaims;
use crate::authn::dpop::DPOP_HEADER;
use crate::authz::policy::Subject;
use crate::config::{Authentication, Config, Rule};
use crate::decision::select::{is_plain_host, select_rule};
use crate::decision::verdict::{Decision, DpopChallenge, Refused, Verdict};
use crate::identity;
use crate::identity::DRY_RUN_HEADER;
use crate::reason::{AuthFailure, Forbidden, Refusal};
use crate::request::Request;
use crate::request::{Country, Selection};
use crate::token::extract::{HeaderChange, removal};
use crate::trace::{NoTrace, Step, Trace};
use serde_json::Value;

/// Decides one request: rule → authenticate → authorize → respond.
pub fn decide(config: &Config, request: &Request<'_>, auth: &mut Authenticator<'_>) -> Verdict {
    decide_traced(config, request, auth, &mut NoTrace)
}

/// [`decide`], recording each step into `trace` (see [`crate::trace`]).
pub fn decide_traced<T: Trace>(
    config: &Config,
    request: &Request<'_>,
    auth: &mut Authenticator<'_>,
    trace: &mut T,
) -> Verdict {
    let mut verdict = Verdict {
        decision: Decision::Refuse(Refused::new(Refusal::Forbidden(Forbidden::NoMatchingRule))),
        rule: None,
        provider: None,
        claims: None,
        unknown_route_rule: false,
    };
    let selected = select_rule(config, request);
    trace.record(|| Step::Rule {
        selection: selected.clone(),
        bound: request
            .route_rule
            .map(|name| String::from_utf8_lossy(name).into_owned()),
        ambiguous_host: request.route_rule.is_none()
            && config.needs_host
            && !is_plain_host(request.host()),
    });
    let found = match selected {
        Selection::Rule(index) => config.rules.get(index).map(|rule| (index, rule)),
        Selection::NoRule | Selection::UnknownRouteRule => None,
    };
    let Some((index, rule)) = found else {
        verdict.unknown_route_rule = selected == Selection::UnknownRouteRule;
        let refused = Refused::new(Refusal::Forbidden(Forbidden::NoMatchingRule));
        verdict.decision = conclude(config, config.dry_run, request, Err(refused));
        return verdict;
    };
    verdict.rule = Some(index);
    if rule.authentication == Authentication::Disabled {
        trace.record(|| Step::Disabled);
        // jwt-guard does nothing for the request, except that identity headers are never
        // taken from a client.
        let mut changes = Vec::new();
        sanitize(config, request, &mut changes);
        verdict.decision = Decision::Allow {
            changes,
            dry_run: None,
        };
        return verdict;
    }
    let judged = judge(config, rule, request, auth, &mut verdict, trace);
    verdict.decision = conclude(config, config.dry_run || rule.dry_run, request, judged);
    verdict
}

/// Client copies of the identity headers and of the dry-run header, in any spelling an
/// upstream could confuse with them, removed.
fn sanitize(config: &Config, request: &Request<'_>, changes: &mut Vec<HeaderChange>) {
    identity::sanitize(
        request,
        config
            .identity_headers
            .iter()
            .map(String::as_str)
            .chain([DRY_RUN_HEADER]),
        changes,
    );
}

/// The changes every request that goes upstream gets first: client copies of the identity
/// headers and of the dry-run header removed. Then the verdict's own.
fn conclude(
    config: &Config,
    dry_run: bool,
    request: &Request<'_>,
    verdict: Result<Vec<HeaderChange>, Refused>,
) -> Decision {
    let mut changes = Vec::new();
    sanitize(config, request, &mut changes);
    match verdict {
        Ok(token_changes) => {
            changes.extend(token_changes);
            Decision::Allow {
                changes,
                dry_run: None,
            }
        }
        Err(refused) if dry_run => {
            let refusal = refused.refusal;
            let value = format!("{} {}", refusal.status(), refusal.code());
            changes.push(HeaderChange::Set(DRY_RUN_HEADER.into(), value.into_bytes()));
            Decision::Allow {
                changes,
                dry_run: Some(refusal),
            }
        }
        Err(refused) => Decision::Refuse(refused),
    }
}

/// Authentication, then policy, for a rule that is not disabled.
fn judge<T: Trace>(
    config: &Config,
    rule: &Rule,
    request: &Request<'_>,
    auth: &mut Authenticator<'_>,
    verdict: &mut Verdict,
    trace: &mut T,
) -> Result<Vec<HeaderChange>, Refused> {
    let unauthorized = |failure| Refused::new(Refusal::Unauthorized(failure));
    let (provider_indexes, anonymous_allowed) = match &rule.authentication {
        Authentication::Required(indexes) => (indexes, false),
        Authentication::Optional(indexes) => (indexes, true),
        Authentication::Disabled => return Ok(Vec::new()),
    };
    let verified = auth.authenticate_traced(&config.providers, provider_indexes, request, trace);
    verdict.provider = auth.judged_by;
    let verified = verified.map_err(|failure| {
        let mut refused = unauthorized(failure);
        refused.dpop = dpop_challenge(config, provider_indexes, auth);
        refused
    })?;
    let mut changes = Vec::new();
    let claims: Option<&VerifiedClaims> = match &verified {
        None if anonymous_allowed && !rule.needs_token() => None,
        None => {
            let mut refused = unauthorized(AuthFailure::Missing);
            refused.dpop = dpop_challenge(config, provider_indexes, auth);
            return Err(refused);
        }
        Some(verified) => {
            if !verified.provider.forward {
                changes.extend(
                    verified
                        .found
                        .locations
                        .iter()
                        .filter_map(|loc| removal(request, loc)),
                );
                // The proof is for this hop; an upstream that wants it asks with `forward`.
                if verified.provider.binding.dpop.is_some() && request.has(DPOP_HEADER) {
                    changes.push(HeaderChange::Remove(DPOP_HEADER.into()));
                }
            }
            verdict.claims = Some(verified.claims.clone());
            Some(&verified.claims)
        }
    };
    let policy = &rule.policy;
    let client_ip = if policy.needs_client_ip() {
        config.client_ip.resolve(
            (request.peer_address)().as_deref(),
            request.values("x-forwarded-for"),
        )
    } else {
        None
    };
    if policy.needs_client_ip() {
        trace.record(|| Step::ClientIp(client_ip));
    }
    let country = if policy.countries.is_some() {
        let country = country(config, request, claims);
        trace.record(|| Step::Country(country.clone()));
        country
    } else {
        Country::Unknown
    };
    let subject = Subject {
        client_ip,
        country: &country,
        claims,
        roles_claim: &config.roles_claim,
        scopes_claim: &config.scopes_claim,
    };
    policy
        .evaluate_traced(&subject, trace)
        .map_err(|forbidden| Refused {
            refusal: Refusal::Forbidden(forbidden),
            scope_hint: match forbidden {
                Forbidden::MissingScope => policy.scopes.as_ref().map(|s| s.hint.clone()),
                _ => None,
            },
            dpop: None,
        })?;
    if let (Some(bind), Some(verified)) = (&rule.bind, &verified) {
        let matched = rule
            .matcher
            .as_ref()
            .and_then(|m| m.matching_path_pattern(request));
        let issuer = &verified.provider.token_rules.issuer;
        bind.check_traced(&verified.claims, issuer, request, matched, trace)
            .map_err(|forbidden| Refused::new(Refusal::Forbidden(forbidden)))?;
    }
    if let Some(verified) = &verified
        && let Some(identity) = config.identity.get(verified.index)
    {
        changes.extend(identity.changes(&verified.claims, &verified.found.token));
    }
    Ok(changes)
}

/// How a 401 of this rule challenges, when some of its providers take DPoP-bound tokens:
/// `None` keeps the plain `Bearer` challenge.
fn dpop_challenge(
    config: &Config,
    providers: &[usize],
    auth: &Authenticator<'_>,
) -> Option<DpopChallenge> {
    let mut algs: Vec<&str> = Vec::new();
    let mut bearer = false;
    for provider in providers.iter().filter_map(|&i| config.providers.get(i)) {
        match &provider.binding.dpop {
            None => bearer = true,
            Some(dpop) => {
                bearer |= !dpop.required;
                for alg in dpop.algs.split(' ') {
                    if !algs.contains(&alg) {
                        algs.push(alg);
                    }
                }
            }
        }
    }
    if algs.is_empty() {
        return None;
    }
    Some(DpopChallenge {
        bearer,
        algs: algs.join(" "),
        presented: auth.presented_with_dpop,
        nonce: auth.dpop_nonce.clone(),
    })
}

/// The trusted header (set by Envoy's geoip filter) wins; otherwise the token's claim. A header
/// that is present but holds no country code is not "absent": it makes the country
/// [`Country::Invalid`], which no country rule lets through.
fn country(config: &Config, request: &Request<'_>, claims: Option<&VerifiedClaims>) -> Country {
    if let Some(name) = config.country_header.as_deref() {
        let mut values = request.values(name);
        if let Some(value) = values.next() {
            // Two copies: which one an upstream reads is anybody's guess.
            return match values.next() {
                None => Country::parse(value),
                Some(_) => Country::Invalid,
            };
        }
    }
    let claim = config
        .country_claim
        .as_ref()
        .zip(claims)
        .and_then(|(path, claims)| path.lookup(claims));
    match claim {
        None => Country::Unknown,
        Some(Value::String(text)) => Country::parse(text.as_bytes()),
        Some(_) => Country::Invalid,
    }
}
