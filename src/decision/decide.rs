//! The decision for one request: which rule applies, whether the caller is authenticated (401),
//! whether policy permits it (403), and what to change before the request goes upstream.

use crate::authn::claims::VerifiedClaims;
use crate::authn::dpop::DPOP_HEADER;
use crate::authn::{Authenticator, Verified};
use std::net::IpAddr;

use crate::authz::policy::{Policy, Reading, Subject};
use crate::config::{Authentication, Config, Rule, RuleAction};
use crate::decision::select::{self, is_plain_host, select_rule};
use crate::decision::verdict::{Decision, DpopChallenge, Refused, Verdict};
use crate::identity;
use crate::identity::DRY_RUN_HEADER;
use crate::reason::{AuthFailure, Forbidden, Judgement, Refusal};
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
        // Deny rules still apply, to a request without identity.
        let mut facts = Facts::default();
        if let Err(refused) = deny_rules(config, request, None, &mut facts, &mut verdict, trace) {
            verdict.decision = conclude(config, config.dry_run, request, Err(refused));
            return verdict;
        }
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
    let judged = judge(config, index, rule, request, auth, &mut verdict, trace);
    // The rule that decided (a deny rule, or the rule a fall-through reached) says whether
    // this is a dry run; deny rules have none of their own.
    let dry_run = verdict
        .rule
        .and_then(|i| config.rules.get(i))
        .is_some_and(|r| r.dry_run);
    verdict.decision = conclude(config, config.dry_run || dry_run, request, judged);
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

/// Authentication, deny rules, then the rule's conditions (and those of the rules it falls
/// through to), for a rule that is not disabled.
fn judge<T: Trace>(
    config: &Config,
    index: usize,
    rule: &Rule,
    request: &Request<'_>,
    auth: &mut Authenticator<'_>,
    verdict: &mut Verdict,
    trace: &mut T,
) -> Result<Vec<HeaderChange>, Refused> {
    let (provider_indexes, anonymous_allowed) = match &rule.authentication {
        Authentication::Required(indexes) => (indexes, false),
        Authentication::Optional(indexes) => (indexes, true),
        Authentication::Disabled => return Ok(Vec::new()),
    };
    let missing = |auth: &Authenticator<'_>| {
        let mut refused = Refused::new(Refusal::Unauthorized(AuthFailure::Missing));
        refused.dpop = dpop_challenge(config, provider_indexes, auth);
        refused
    };
    let verified = auth.authenticate_traced(&config.providers, provider_indexes, request, trace);
    verdict.provider = auth.judged_by;
    let verified = verified.map_err(|failure| {
        let mut refused = Refused::new(Refusal::Unauthorized(failure));
        refused.dpop = dpop_challenge(config, provider_indexes, auth);
        refused.answered_by(&rule.refusal)
    })?;
    let mut changes = Vec::new();
    let claims: Option<&VerifiedClaims> = match &verified {
        None if anonymous_allowed => None,
        None => return Err(missing(auth).answered_by(&rule.refusal)),
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
    let mut facts = Facts::default();
    deny_rules(config, request, claims, &mut facts, verdict, trace)?;
    // The rule's conditions; on a refusal, the rules it falls through to. The first refusal
    // stands unless one of them lets the request through.
    let mut attempt = |at: usize, candidate: &Rule, trace: &mut T| {
        let policy = &candidate.policy;
        let refused = if claims.is_none() && candidate.needs_token() {
            missing(auth)
        } else {
            let subject = facts.subject(config, request, policy, claims, trace);
            match policy
                .judge_traced(at, &subject, Reading::Allow, trace)
                .as_result()
                .and_then(|()| bound(at, candidate, request, verified.as_ref(), trace))
            {
                Ok(()) => return Ok(()),
                Err(forbidden) => Refused {
                    refusal: Refusal::Forbidden(forbidden),
                    scope_hint: match forbidden {
                        Forbidden::MissingScope => policy.scopes.as_ref().map(|s| s.hint.clone()),
                        _ => None,
                    },
                    dpop: None,
                    custom: None,
                },
            }
        };
        Err(refused.answered_by(&candidate.refusal))
    };
    if let Err(first) = attempt(index, rule, trace) {
        let mut from = (index, rule);
        loop {
            if !from.1.fall_through {
                return Err(first);
            }
            let next = select::next_allow_rule(config, request, from.0)
                .and_then(|i| config.rules.get(i).map(|r| (i, r)));
            let stop = match next {
                None => Some("no later allow rule fits the request"),
                Some((_, next)) if next.authentication != rule.authentication => Some(
                    "the next fitting rule authenticates differently (providers, allow_anonymous or disabled)",
                ),
                Some(_) => None,
            };
            trace.record(|| Step::FallThrough {
                from: from.0,
                to: next.filter(|_| stop.is_none()).map(|(i, _)| i),
                why: stop.unwrap_or(""),
            });
            let Some((at, next)) = next.filter(|_| stop.is_none()) else {
                return Err(first);
            };
            if attempt(at, next, trace).is_ok() {
                verdict.rule = Some(at);
                break;
            }
            from = (at, next);
        }
    }
    if let Some(verified) = &verified
        && let Some(identity) = config.identity.get(verified.index)
    {
        changes.extend(identity.changes(&verified.claims, &verified.found.token));
    }
    Ok(changes)
}

/// The rule's `bind`, checked after its other conditions held.
fn bound<T: Trace>(
    at: usize,
    rule: &Rule,
    request: &Request<'_>,
    verified: Option<&Verified<'_>>,
    trace: &mut T,
) -> Result<(), Forbidden> {
    let (Some(bind), Some(verified)) = (&rule.bind, verified) else {
        return Ok(());
    };
    let matched = rule
        .matcher
        .as_ref()
        .and_then(|m| m.matching_path_pattern(request));
    let issuer = &verified.provider.token_rules.issuer;
    bind.check_traced(at, &verified.claims, issuer, request, matched, trace)
}

/// The deny rules, in order, on the request and the identity authentication found (`None`:
/// anonymous, or a disabled rule): the first that applies and whose conditions all hold or
/// cannot be decided refuses, and is the rule that decided.
fn deny_rules<T: Trace>(
    config: &Config,
    request: &Request<'_>,
    claims: Option<&VerifiedClaims>,
    facts: &mut Facts,
    verdict: &mut Verdict,
    trace: &mut T,
) -> Result<(), Refused> {
    for (index, rule) in config.rules.iter().enumerate() {
        if rule.action != RuleAction::Deny {
            continue;
        }
        let applies = select::deny_rule_applies(rule.matcher.as_ref(), request);
        let denied = applies && {
            let subject = facts.subject(config, request, &rule.policy, claims, trace);
            rule.policy
                .judge_traced(index, &subject, Reading::Deny, trace)
                == Judgement::Holds
        };
        trace.record(|| Step::DenyRule {
            rule: index,
            applies,
            denied,
        });
        if denied {
            verdict.rule = Some(index);
            return Err(
                Refused::new(Refusal::Forbidden(Forbidden::Denied)).answered_by(&rule.refusal)
            );
        }
    }
    Ok(())
}

/// The client address and country, found once per request and only when a policy asks.
#[derive(Default)]
struct Facts {
    client_ip: Option<Option<IpAddr>>,
    country: Option<Country>,
}

impl Facts {
    fn subject<'a, T: Trace>(
        &'a mut self,
        config: &'a Config,
        request: &'a Request<'a>,
        policy: &Policy,
        claims: Option<&'a VerifiedClaims>,
        trace: &mut T,
    ) -> Subject<'a> {
        let client_ip = if policy.needs_client_ip() {
            *self.client_ip.get_or_insert_with(|| {
                let ip = config.client_ip.resolve(
                    (request.peer_address)().as_deref(),
                    request.values("x-forwarded-for"),
                );
                trace.record(|| Step::ClientIp(ip));
                ip
            })
        } else {
            None
        };
        if policy.countries.is_some() && self.country.is_none() {
            let found = country(config, request, claims);
            trace.record(|| Step::Country(found.clone()));
            self.country = Some(found);
        }
        Subject {
            client_ip,
            country: self.country.as_ref().unwrap_or(&Country::Unknown),
            claims,
            roles_claim: &config.roles_claim,
            scopes_claim: &config.scopes_claim,
            request,
        }
    }
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
