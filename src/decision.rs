//! The decision for one request: which rule applies, whether the caller is authenticated (401),
//! whether policy permits it (403), and what to change before the request goes upstream.

use crate::authn::Authenticator;
use crate::config::{Authentication, Config, Matcher, PathMatch, Rule};
use crate::extract::{HeaderChange, removal};
use crate::identity;
use crate::policy::{Country, Subject};
use crate::reason::{AuthFailure, Forbidden, Refusal};
use crate::request::Request;
use crate::trace::{NoTrace, Step, Trace};
use crate::verify::Claims;
use serde_json::Value;
use std::rc::Rc;

/// Set on requests a dry run lets through; a client-sent copy is always removed first.
pub const DRY_RUN_HEADER: &str = "x-jwt-guard-dry-run";

#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Let the request through after applying `changes`. `dry_run` holds the refusal that a
    /// dry run turned into an allow.
    Allow {
        changes: Vec<HeaderChange>,
        dry_run: Option<Refusal>,
    },
    Refuse(Refused),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub refusal: Refusal,
    /// The scopes a `missing_scope` refusal names in its challenge.
    pub scope_hint: Option<String>,
}

/// A local reply for Envoy to send instead of forwarding the request.
#[derive(Debug, PartialEq, Eq)]
pub struct LocalResponse {
    pub status: u32,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl Refused {
    fn new(refusal: Refusal) -> Refused {
        Refused {
            refusal,
            scope_hint: None,
        }
    }

    pub fn response(&self, realm: &str) -> LocalResponse {
        let (error, challenge) = match self.refusal {
            Refusal::Unauthorized(AuthFailure::Missing) => {
                ("invalid_token", Some(format!("Bearer realm=\"{realm}\"")))
            }
            Refusal::Unauthorized(failure) => (
                "invalid_token",
                Some(format!(
                    "Bearer realm=\"{realm}\", error=\"invalid_token\", error_description=\"{}\"",
                    failure.description()
                )),
            ),
            Refusal::Forbidden(forbidden) if forbidden.is_about_token() => {
                let mut challenge = format!(
                    "Bearer realm=\"{realm}\", error=\"insufficient_scope\", error_description=\"{}\"",
                    forbidden.description()
                );
                if let Some(scope) = &self.scope_hint {
                    challenge.push_str(&format!(", scope=\"{scope}\""));
                }
                (forbidden.error(), Some(challenge))
            }
            Refusal::Forbidden(forbidden) => (forbidden.error(), None),
        };
        let mut headers = vec![("content-type", "application/json".to_string())];
        if let Some(challenge) = challenge {
            headers.push(("www-authenticate", challenge));
        }
        let body = serde_json::json!({
            "status": self.refusal.status(),
            "error": error,
            "reason": self.refusal.code(),
        })
        .to_string();
        LocalResponse {
            status: self.refusal.status(),
            headers,
            body,
        }
    }
}

/// What [`decide`] concluded, and what outcomes and counters report of it.
#[derive(Debug)]
pub struct Verdict {
    pub decision: Decision,
    /// The rule that decided (an index into `Config::rules`); `None` when none applied.
    pub rule: Option<usize>,
    /// The provider that accepted the token or, for a refused one, judged it (see
    /// [`Authenticator::judged_by`]).
    pub provider: Option<usize>,
    /// The verified claims of an authenticated caller (never those of a refused token).
    pub claims: Option<Rc<Claims>>,
    /// The route's metadata named a rule this configuration does not have.
    pub unknown_route_rule: bool,
}

/// How the rule for a request is found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selection {
    /// This rule (an index into `Config::rules`).
    Rule(usize),
    /// No rule matches (or the host is ambiguous where rules match on hosts).
    NoRule,
    /// The route's metadata names a rule that does not exist: fail closed.
    UnknownRouteRule,
}

/// The route's metadata binds a rule by name, whatever the order and `match`; otherwise the
/// first rule whose `match` fits.
pub fn select_rule(config: &Config, request: &Request<'_>) -> Selection {
    if let Some(bound) = request.route_rule {
        return config
            .rules
            .iter()
            .position(|rule| rule.name.as_deref().map(str::as_bytes) == Some(bound))
            .map_or(Selection::UnknownRouteRule, Selection::Rule);
    }
    let target = Target::of(request);
    // When rules match on hosts, a host that is not a plain name or address matches none of
    // them: Envoy forwards `a,b` (its join of two `Host` lines; RFC 9112 §3.2 says 400),
    // `user@admin.example.com` or `admin%2eexample.com`, and an upstream that builds a URL
    // from it may well see `admin.example.com` where a rule saw something else.
    if config.needs_host && !is_plain_host(target.host) {
        return Selection::NoRule;
    }
    config
        .rules
        .iter()
        .position(|rule| rule.matcher.as_ref().is_some_and(|m| m.matches(&target)))
        .map_or(Selection::NoRule, Selection::Rule)
}

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
    let verified = auth.authenticate_traced(config, provider_indexes, request, trace);
    verdict.provider = auth.judged_by;
    let verified = verified.map_err(unauthorized)?;
    let mut changes = Vec::new();
    let claims: Option<&Claims> = match &verified {
        None if anonymous_allowed && !rule.policy.needs_token() => None,
        None => return Err(unauthorized(AuthFailure::Missing)),
        Some(verified) => {
            if !verified.provider.forward {
                changes.extend(
                    verified
                        .found
                        .locations
                        .iter()
                        .filter_map(|loc| removal(request, loc)),
                );
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
        })?;
    if let Some(verified) = &verified {
        changes.extend(
            verified
                .provider
                .identity
                .changes(&verified.claims, &verified.found.token),
        );
    }
    Ok(changes)
}

/// The trusted header (set by Envoy's geoip filter) wins; otherwise the token's claim. A header
/// that is present but holds no country code is not "absent": it makes the country
/// [`Country::Invalid`], which no country rule lets through.
fn country(config: &Config, request: &Request<'_>, claims: Option<&Claims>) -> Country {
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

/// The parts of a request that rules match on, read from the headers once per request.
struct Target<'r> {
    method: &'r [u8],
    path: &'r [u8],
    host: &'r [u8],
    route_name: Option<&'r str>,
}

impl<'r> Target<'r> {
    fn of(request: &Request<'r>) -> Target<'r> {
        Target {
            method: request.method(),
            path: request.path(),
            host: request.host(),
            route_name: request.route_name,
        }
    }
}

/// One part of a rule's `match`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchPart {
    Path,
    Method,
    Host,
    RouteName,
}

impl Matcher {
    fn matches(&self, target: &Target<'_>) -> bool {
        self.fits_path(target)
            && self.fits_method(target)
            && self.fits_host(target)
            && self.fits_route_name(target)
    }

    /// The parts of this `match` that the request does not fit, in order (none: it matches).
    /// Only for explaining a decision; `decide` never calls it.
    pub fn mismatches(&self, request: &Request<'_>) -> Vec<MatchPart> {
        let target = Target::of(request);
        [
            (MatchPart::Path, self.fits_path(&target)),
            (MatchPart::Method, self.fits_method(&target)),
            (MatchPart::Host, self.fits_host(&target)),
            (MatchPart::RouteName, self.fits_route_name(&target)),
        ]
        .into_iter()
        .filter_map(|(part, fits)| (!fits).then_some(part))
        .collect()
    }

    fn fits_path(&self, target: &Target<'_>) -> bool {
        match &self.path {
            PathMatch::Any => true,
            PathMatch::Prefix(prefix) => target.path.starts_with(prefix.as_bytes()),
            PathMatch::Exact(path) => target.path == path.as_bytes(),
        }
    }

    fn fits_method(&self, target: &Target<'_>) -> bool {
        self.methods.is_empty() || self.methods.iter().any(|m| m.as_bytes() == target.method)
    }

    fn fits_host(&self, target: &Target<'_>) -> bool {
        self.hosts.is_empty()
            || self
                .hosts
                .iter()
                .any(|pattern| host_matches(pattern, target.host))
    }

    fn fits_route_name(&self, target: &Target<'_>) -> bool {
        self.route_name
            .as_deref()
            .is_none_or(|name| target.route_name == Some(name))
    }
}

/// Letters, digits, `-`, `.` and `_` (a DNS name), or `:` inside an IPv6 literal; nothing
/// that a URL parser could read as userinfo, a list, an escape or a path.
fn is_plain_host(host: &[u8]) -> bool {
    host.iter()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b':'))
}

/// `pattern` is lower-case (compiled so); the host is compared without regard to case.
fn host_matches(pattern: &str, host: &[u8]) -> bool {
    let pattern = pattern.as_bytes();
    match pattern.strip_prefix(b"*") {
        Some(suffix) => {
            host.len() > suffix.len()
                && host
                    .get(host.len() - suffix.len()..)
                    .is_some_and(|tail| tail.eq_ignore_ascii_case(suffix))
        }
        None => pattern.eq_ignore_ascii_case(host),
    }
}

#[cfg(test)]
mod tests;
